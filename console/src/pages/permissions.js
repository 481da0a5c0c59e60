// #/permissions/<path>: who may read, write or administer a folder (and
// everything below it); grant and revoke.
import * as api from "../api.js";
import { userError } from "../http.js";
import { formValues, h, mount } from "../dom.js";
import { breadcrumbs, busy, confirmDialog, emptyRow, field, notice, resourceHref, showError } from "../ui.js";

const LEVEL_HELP = {
  read: "see it and watch it live",
  write: "also change values, upload files, send commands",
  admin: "also manage permissions, controllers and their keys",
};

export async function permissionsPage(ctx) {
  const path = ctx.params[0].replace(/^\/+|\/+$/g, "");
  document.title = `Permissions of ${path} · hub`;
  const tbody = h("tbody#permissions");
  let emails = new Map(); // user id -> email, for the users this person may see
  const load = async () => {
    try {
      const [data, people] = await Promise.all([api.permissions(path), api.users().catch(() => ({ users: [] }))]);
      if (ctx.left()) return;
      emails = new Map(people.users.map((u) => [u.id, u.email]));
      const subjectLabel = (p) => label(p, emails);
      const rows = data.permissions.map((p) => h("tr", { dataset: { id: p.id } },
        h("td", subjectLabel(p)),
        h("td", h("span.level", p.level), h("small.muted", ` ${LEVEL_HELP[p.level] || ""}`)),
        h("td", p.path === path ? "this folder" : h("a", { href: resourceHref(p.path) }, `inherited from ${p.path}`)),
        h("td", p.path === path && h("button.danger.small", {
          type: "button",
          onclick: async (ev) => {
            if (!(await confirmDialog("Revoke this permission?", `${subjectLabel(p)} loses ${p.level} access to ${path}.`,
              { confirmLabel: "Revoke" }))) return;
            const done = await busy(ev.target, () => api.revokePermission(path, p.id));
            if (done !== undefined) {
              notice("Permission revoked.", "ok");
              load();
            }
          },
        }, "Revoke")),
      ));
      mount(tbody, rows.length ? rows : emptyRow(4, "No permissions on this folder: only organization admins can see it."));
    } catch (e) {
      if (ctx.left()) return;
      mount(tbody, emptyRow(4, e.status === 403 ? "You need admin access to this folder to see and change its permissions." : e.message));
      if (e.status !== 403) showError(e);
    }
  };

  const form = h("form#grant-form.inline-form",
    field({ name: "kind", label: "Grant to", options: [["user", "a user (email)"], ["organization", "every member of an organization"], ["controller", "a controller (folder path)"]], value: "user" }),
    field({ name: "who", label: "Who", required: true, placeholder: "name@example.com" }),
    field({ name: "level", label: "Access", options: [["read", "read"], ["write", "write"], ["admin", "admin"]], value: "read" }),
    h("div.buttons", h("button#grant.primary", { type: "submit" }, "Grant")),
  );
  const kind = form.querySelector("[name=kind]");
  const who = form.querySelector("[name=who]");
  kind.addEventListener("change", () => {
    who.placeholder = { user: "name@example.com", organization: path.split("/")[0], controller: `${path}/pi-01` }[kind.value];
  });
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const v = formValues(form);
    const who = v.who.trim().replace(/^\/+|\/+$/g, "");
    const done = await busy(form.querySelector("button"), async () => {
      const body = { level: v.level };
      if (v.kind === "user") body.user_id = await userId(who, emails);
      else body[v.kind] = who;
      return api.grant(path, body);
    });
    if (done) {
      notice("Permission granted.", "ok");
      form.querySelector("[name=who]").value = "";
      load();
    }
  });

  mount(ctx.main,
    breadcrumbs(path),
    h("div.page-head", h("h1", "Permissions of ", h("a", { href: resourceHref(path) }, path))),
    h("p.muted", "A permission applies to this folder and everything below it. Organization admins always have admin access."),
    h("table.listing", h("thead", h("tr", h("th", "Who"), h("th", "Access"), h("th", "Where"), h("th", ""))), tbody),
    h("section.card", h("h2", "Grant access"), form),
  );
  await load();
}

function label(p, emails) {
  if (p.organization) return `members of ${p.organization}`;
  if (p.controller) return `controller ${p.controller}`;
  if (p.user_id) return emails.get(p.user_id) || `user #${p.user_id}`;
  return "?";
}

async function userId(email, known) {
  for (const [id, e] of known) if (e.toLowerCase() === email.toLowerCase()) return id;
  if (/^\d+$/.test(email)) return Number(email);
  if (email.includes("@")) {
    // organization and system admins may look up one exact address elsewhere on the hub
    const found = (await api.users({ email }).catch(() => ({ users: [] }))).users || [];
    const user = found.find((u) => u.email.toLowerCase() === email.toLowerCase());
    if (user) return user.id;
  }
  throw userError(`There is no user ${email} that you can see. Check the spelling, or grant access to their organization instead.`);
}
