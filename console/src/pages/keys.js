// API keys: the user's own and their controllers'. A new key's secret is
// shown once, with a copy button; revoking kicks its live connections.
import * as api from "../api.js";
import { formatTime, h, mount } from "../dom.js";
import { breadcrumbs, busy, confirmDialog, copyText, emptyRow, formDialog, notice, resourceHref, showError } from "../ui.js";

export async function keysPage(ctx) {
  document.title = "Keys · hub";
  const box = h("div#keys-list", h("p.muted", "Loading…"));
  const showRevoked = h("input#show-revoked", { type: "checkbox" });
  const load = async () => {
    try {
      const data = await api.keys({ include_revoked: String(showRevoked.checked) });
      if (!ctx.left()) mount(box, keyTable(data.keys, load));
    } catch (e) {
      showError(e);
    }
  };
  showRevoked.addEventListener("change", load);
  mount(ctx.main,
    breadcrumbs(""),
    h("div.page-head", h("h1", "API keys"),
      h("div.actions", h("button#new-key.primary", { type: "button", onclick: () => newKeyDialog({ choose: true }).then(load) }, "New key"))),
    h("p.muted", "A key lets a script (or a controller) use the hub as you (or as that controller): send it as "
      + "'Authorization: Bearer <key>' to the HTTP API, or as the MQTT password."),
    h("label.check", showRevoked, " Show revoked keys"),
    box,
  );
  await load();
}

/** A table of keys with a Revoke button each; `reload` runs after a revoke. */
export function keyTable(keys, reload) {
  const rows = keys.map((k) => h("tr", { dataset: { prefix: k.prefix, revoked: String(!!k.revoked) } },
    h("td", h("code", k.prefix)),
    h("td", k.name || ""),
    h("td", k.controller ? h("a", { href: resourceHref(k.controller) }, k.controller) : k.owner || "you"),
    h("td", formatTime(k.created_at)),
    h("td.last-used", { title: "HTTP or MQTT; recorded at most once a minute" }, k.last_used_at
      ? [formatTime(k.last_used_at), k.last_used_from && h("span.muted", ` from ${k.last_used_from}`)]
      : "never"),
    h("td", k.revoked ? `revoked ${formatTime(k.revoked_at)}` : h("button.danger.small", {
      type: "button",
      onclick: async (ev) => {
        const ok = await confirmDialog(`Revoke key ${k.prefix}?`,
          "Anything using this key stops working at once: live connections with it are closed within seconds. This cannot be undone.",
          { confirmLabel: "Revoke" });
        if (!ok) return;
        const done = await busy(ev.target, () => api.revokeKey(k.prefix));
        if (done !== undefined) {
          notice(`Key ${k.prefix} revoked.`, "ok");
          await reload();
        }
      },
    }, "Revoke")),
  ));
  return h("table.listing.keys",
    h("thead", h("tr", h("th", "Prefix"), h("th", "Name"), h("th", "For"), h("th", "Created"), h("th", "Last used"), h("th", ""))),
    h("tbody", rows.length ? rows : emptyRow(6, "No keys.")));
}

/**
 * Ask for the key's name (and, with `choose`, whether it is for a controller),
 * create it, and show its secret once. `controller`: a controller folder path.
 */
export async function newKeyDialog({ controller = null, choose = false } = {}) {
  const fields = [{ name: "name", label: "Name", placeholder: "what uses it, e.g. backup script" }];
  if (choose) {
    fields.push({ name: "controller", label: "For a controller (its folder path; empty: for you)", placeholder: "acme/greenhouse/pi-01" });
  }
  const values = await formDialog(controller ? `New key for ${controller}` : "New key", fields, { submitLabel: "Create key" });
  if (!values) return;
  const target = controller || values.controller?.trim().replace(/^\/+|\/+$/g, "") || null;
  const body = { name: values.name.trim() };
  if (target) body.controller = target;
  let created;
  try {
    created = await api.createKey(body);
  } catch (e) {
    showError(e);
    return;
  }
  await showSecret(created);
}

function showSecret(created) {
  return new Promise((resolve) => {
    const input = h("input#new-key-secret.secret", { type: "text", readonly: true, value: created.key, spellcheck: "false" });
    const dialog = h("dialog.modal",
      h("form", { method: "dialog" },
        h("h2", "Your new key"),
        h("p.warning", "Copy it now: this is the only time it is shown. The hub keeps only a hash of it."),
        h("div.copy-row", input,
          h("button#copy-key", { type: "button", onclick: () => copyText(created.key, input) }, "Copy")),
        h("p.muted", created.controller ? `For controller ${created.controller}. Use it as the MQTT password.` : "For you."),
        h("menu.buttons", h("button.primary#close-key", { type: "submit" }, "I have copied it")),
      ));
    document.body.append(dialog);
    dialog.addEventListener("close", () => {
      dialog.remove();
      resolve();
    });
    dialog.showModal();
    input.select();
  });
}
