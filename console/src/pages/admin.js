// #/admin: organizations and users (system admins; organization admins see
// their organizations). #/admin/org/<name>: an organization's members.
import * as api from "../api.js";
import { userError } from "../http.js";
import { formValues, formatTime, h, mount } from "../dom.js";
import { session } from "../session.js";
import { accountRequestsSection, invitationsSection } from "./invitations.js";
import { breadcrumbs, busy, confirmDialog, emptyRow, field, formDialog, notice, resourceHref, showError } from "../ui.js";

export async function adminPage(ctx) {
  document.title = "Admin · hub";
  const orgBody = h("tbody#organizations");
  const userBody = h("tbody#users");
  const loadOrgs = async () => {
    const data = await api.organizations();
    if (ctx.left()) return;
    mount(orgBody, data.organizations.length ? data.organizations.map((o) => h("tr", { dataset: { name: o.name } },
      h("td", h("a", { href: `#/admin/org/${encodeURIComponent(o.name)}` }, o.name)),
      h("td", o.full_name || ""),
      h("td", o.role || (session.isAdmin() ? "(system admin)" : "")),
      h("td", h("a", { href: resourceHref(o.name) }, "Browse")),
    )) : emptyRow(4, "No organizations yet."));
  };
  const loadUsers = async () => {
    const data = await api.users();
    if (ctx.left()) return;
    mount(userBody, data.users.map((u) => h("tr", { dataset: { id: u.id, email: u.email } },
      h("td", u.email), h("td", u.full_name || ""), h("td", u.is_admin ? "system admin" : ""),
      h("td", formatTime(u.created_at)),
      h("td", u.id !== session.me.id && h("button.danger.small", {
        type: "button",
        onclick: async (ev) => {
          if (!(await confirmDialog(`Delete user ${u.email}?`, "They can no longer log in; their keys stop working and their live connections are closed."))) return;
          if ((await busy(ev.target, () => api.deleteUser(u.id))) !== undefined) {
            notice(`Deleted ${u.email}.`, "ok");
            loadUsers();
          }
        },
      }, "Delete")),
    )));
  };
  const admin = session.isAdmin();
  mount(ctx.main,
    breadcrumbs(""),
    h("h1", "Administration"),
    h("section.card",
      h("div.card-head", h("h2", "Organizations"),
        admin && h("button#new-organization", { type: "button", onclick: () => newOrganization().then((ok) => ok && loadOrgs()) }, "New organization")),
      h("table.listing", h("thead", h("tr", h("th", "Name"), h("th", "Full name"), h("th", "Your role"), h("th", ""))), orgBody)),
    admin && h("section.card",
      h("div.card-head", h("h2", "Users"),
        h("button#new-user", { type: "button", onclick: () => newUser().then((ok) => ok && loadUsers()) }, "New user")),
      h("table.listing", h("thead", h("tr", h("th", "Email"), h("th", "Name"), h("th", ""), h("th", "Created"), h("th", ""))), userBody)),
    accountRequestsSection(ctx),
  );
  await Promise.all([loadOrgs(), admin && loadUsers()].filter(Boolean)).catch(showError);
}

async function newOrganization() {
  const v = await formDialog("New organization", [
    { name: "name", label: "Name (the top folder of its tree)", required: true, help: "Letters, digits, '_', '.' and '-'." },
    { name: "full_name", label: "Full name" },
  ], { submitLabel: "Create" });
  if (!v) return false;
  return busy(null, async () => {
    await api.createOrganization({ name: v.name.trim(), full_name: v.full_name.trim() });
    notice(`Created organization ${v.name.trim()}.`, "ok");
    return true;
  });
}

async function newUser() {
  const v = await formDialog("New user", [
    { name: "email", label: "Email", type: "email", required: true },
    { name: "full_name", label: "Full name" },
    { name: "password", label: "Password", type: "password", required: true, autocomplete: "new-password", help: "Tell them to change it." },
    { name: "is_admin", label: "System admin (can do everything)", type: "checkbox" },
  ], { submitLabel: "Create" });
  if (!v) return false;
  return busy(null, async () => {
    await api.createUser({ email: v.email.trim(), full_name: v.full_name.trim(), password: v.password, is_admin: v.is_admin });
    notice(`Created user ${v.email.trim()}.`, "ok");
    return true;
  });
}

export async function organizationPage(ctx) {
  const name = ctx.params[0];
  document.title = `${name} members · hub`;
  const tbody = h("tbody#members");
  const canManage = session.isOrgAdmin(name);
  const load = async () => {
    try {
      const data = await api.members(name);
      if (ctx.left()) return;
      mount(tbody, data.members.length ? data.members.map((m) => h("tr", { dataset: { email: m.user.email } },
        h("td", m.user.email), h("td", m.user.full_name || ""),
        h("td", canManage ? roleSelect(name, m, load) : m.role),
        h("td", canManage && h("button.danger.small", {
          type: "button",
          onclick: async (ev) => {
            if (!(await confirmDialog(`Remove ${m.user.email} from ${name}?`, "They lose what membership gave them in this organization.", { confirmLabel: "Remove" }))) return;
            if ((await busy(ev.target, () => api.removeMember(name, m.user.id))) !== undefined) {
              notice(`Removed ${m.user.email}.`, "ok");
              load();
            }
          },
        }, "Remove")),
      )) : emptyRow(4, "No members yet."));
    } catch (e) {
      if (!ctx.left()) mount(tbody, emptyRow(4, e.message));
    }
  };
  const form = h("form#add-member-form.inline-form",
    field({ name: "email", label: "User's email", type: "email", required: true }),
    field({ name: "role", label: "Role", options: [["member", "member"], ["admin", "organization admin"]], value: "member" }),
    h("div.buttons", h("button.primary", { type: "submit" }, "Add")),
  );
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const v = formValues(form);
    const done = await busy(form.querySelector("button"), async () => {
      const user = await findUser(v.email.trim());
      await api.setMember(name, user.id, v.role);
      return true;
    });
    if (done) {
      notice(`Added ${v.email.trim()} to ${name}.`, "ok");
      form.reset();
      load();
    }
  });
  const newUser = async (ev) => {
    const v = await formDialog(`New user in ${name}`, [
      { name: "email", label: "Email", type: "email", required: true },
      { name: "full_name", label: "Full name" },
      { name: "password", label: "Password", type: "password", required: true, autocomplete: "new-password", help: "Tell them to change it." },
      { name: "role", label: "Role", options: [["member", "member"], ["admin", "organization admin"]], value: "member" },
    ], { submitLabel: "Create" });
    if (!v) return;
    const done = await busy(ev.target, () => api.createUser({
      email: v.email.trim(), full_name: v.full_name.trim(), password: v.password, organization: name, role: v.role,
    }));
    if (done) {
      notice(`Created ${v.email.trim()} in ${name}.`, "ok");
      load();
    }
  };
  mount(ctx.main,
    breadcrumbs(name),
    h("div.page-head", h("h1", `Members of ${name}`),
      h("div.actions",
        canManage && h("button#new-org-user", { type: "button", onclick: newUser }, "New user"),
        h("a.button", { href: "#/admin" }, "All organizations"))),
    h("table.listing", h("thead", h("tr", h("th", "Email"), h("th", "Name"), h("th", "Role"), h("th", ""))), tbody),
    canManage && h("section.card", h("h2", "Add a member"), form),
    canManage && invitationsSection(ctx, name),
  );
  await load();
}

function roleSelect(org, m, reload) {
  const select = h("select", { "aria-label": `Role of ${m.user.email}` },
    h("option", { value: "member", selected: m.role === "member" }, "member"),
    h("option", { value: "admin", selected: m.role === "admin" }, "organization admin"));
  select.addEventListener("change", async () => {
    if ((await busy(select, () => api.setMember(org, m.user.id, select.value))) !== undefined) {
      notice(`${m.user.email} is now ${select.value === "admin" ? "an organization admin" : "a member"} of ${org}.`, "ok");
    }
    reload();
  });
  return select;
}

async function findUser(email) {
  const data = await api.users({ email });
  const user = data.users.find((u) => u.email.toLowerCase() === email.toLowerCase());
  if (!user) throw userError(`There is no user with the email ${email}. A system admin can create one.`);
  return user;
}
