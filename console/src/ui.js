// Shared pieces of every page: notices, dialogs, breadcrumbs, buttons that wait.
import { $, formValues, h, mount } from "./dom.js";
import { ApiError } from "./http.js";

let noticeTimer = null;

/** Show a message in the page's notice bar. kind: error | info | ok. */
export function notice(message, kind = "error") {
  const bar = $("#notice");
  clearTimeout(noticeTimer);
  mount(bar, message ? h("div.notice", { class: `notice ${kind}`, role: kind === "error" ? "alert" : "status" },
    h("span.text", message),
    h("button.close", { type: "button", "aria-label": "Dismiss", onclick: () => notice("") }, "×"),
  ) : null);
  if (message && kind !== "error") noticeTimer = setTimeout(() => notice(""), 6000);
}

export function showError(e) {
  if (e?.name === "AbortError") return;
  if (e?.status === 401) return; // the app sends the user to the log-in page
  // Refusals and bad input are the user's news, not a bug in the page.
  if (e instanceof ApiError || e?.userFacing) console.warn(e.message);
  else console.error(e);
  notice(e?.message || String(e), "error");
}

/** Run `fn` with `button` disabled; errors go to the notice bar. Returns fn's result or undefined. */
export async function busy(button, fn) {
  if (button) button.disabled = true;
  try {
    return await fn();
  } catch (e) {
    showError(e);
    return undefined;
  } finally {
    if (button) button.disabled = false;
  }
}

function openDialog(content, { onClose } = {}) {
  const dialog = h("dialog.modal", content);
  document.body.append(dialog);
  dialog.addEventListener("close", () => {
    onClose?.(dialog.returnValue);
    dialog.remove();
  });
  dialog.showModal();
  return dialog;
}

/** Ask a yes/no question; resolves true when confirmed. */
export function confirmDialog(title, text, { confirmLabel = "Delete", danger = true } = {}) {
  return new Promise((resolve) => {
    const dialog = openDialog(h("form", { method: "dialog" },
      h("h2", title),
      h("p", text),
      h("menu.buttons",
        h("button", { value: "cancel", type: "submit" }, "Cancel"),
        h(danger ? "button.danger" : "button.primary", { value: "ok", type: "submit", id: "confirm-ok" }, confirmLabel),
      ),
    ), { onClose: (v) => resolve(v === "ok") });
    dialog.querySelector("#confirm-ok").focus();
  });
}

/**
 * A form in a dialog. fields: [{name, label, type?, value?, options?, required?, help?, placeholder?}]
 * Resolves with the values, or null when cancelled.
 */
export function formDialog(title, fields, { submitLabel = "Save", intro } = {}) {
  return new Promise((resolve) => {
    let values = null;
    const form = h("form", { method: "dialog" },
      h("h2", title),
      intro && h("p", intro),
      fields.map(field),
      h("menu.buttons",
        h("button", { type: "button", onclick: () => dialog.close("cancel") }, "Cancel"),
        h("button.primary", { type: "submit", value: "ok" }, submitLabel),
      ),
    );
    form.addEventListener("submit", () => {
      values = formValues(form);
    });
    const dialog = openDialog(form, { onClose: (v) => resolve(v === "ok" ? values : null) });
    form.querySelector("input, select, textarea")?.focus();
  });
}

export function field(f) {
  const id = `f-${f.name}`;
  let input;
  if (f.options) {
    input = h("select", { id, name: f.name },
      f.options.map((o) => {
        const [value, label] = Array.isArray(o) ? o : [o, o];
        return h("option", { value, selected: value === f.value }, label);
      }));
  } else if (f.type === "textarea") {
    input = h("textarea", { id, name: f.name, rows: f.rows || 4, required: f.required, placeholder: f.placeholder }, f.value ?? "");
  } else if (f.type === "checkbox") {
    return h("label.check", { for: id }, h("input", { id, name: f.name, type: "checkbox", checked: !!f.value }), " ", f.label);
  } else {
    input = h("input", {
      id, name: f.name, type: f.type || "text", value: f.value ?? "", required: f.required,
      placeholder: f.placeholder, autocomplete: f.autocomplete, step: f.step, pattern: f.pattern,
    });
  }
  return h("label.field", { for: id }, h("span.label", f.label), input, f.help && h("small.help", f.help));
}

/** Clickable path: org › folder › … ; the last segment is plain text. */
export function breadcrumbs(path) {
  const parts = path ? path.split("/") : [];
  const items = [h("li", h("a", { href: "#/" }, "All"))];
  parts.forEach((name, i) => {
    const sub = parts.slice(0, i + 1).join("/");
    items.push(h("li", i === parts.length - 1 ? h("span", { "aria-current": "page" }, name) : h("a", { href: resourceHref(sub) }, name)));
  });
  return h("nav.breadcrumbs", { "aria-label": "Breadcrumbs" }, h("ol", items));
}

export const resourceHref = (path) => `#/r/${path.split("/").map(encodeURIComponent).join("/")}`;

export function typeBadge(type) {
  return h("span.badge", { class: `badge type-${type}` }, type);
}

export function emptyRow(cols, text) {
  return h("tr.empty", h("td", { colspan: cols }, text));
}

/** Copy text to the clipboard; falls back to selecting it for Ctrl-C. */
export async function copyText(text, input) {
  try {
    await navigator.clipboard.writeText(text);
    notice("Copied to the clipboard.", "ok");
  } catch {
    if (input) {
      input.select();
      notice("Press Ctrl-C (or ⌘-C) to copy the selected text.", "info");
    }
  }
}
