// #/r/<path>: one resource. Loads it, then hands it to the page for its type.
import * as api from "../api.js";
import { h, mount } from "../dom.js";
import { navigate } from "../router.js";
import { breadcrumbs, busy, confirmDialog, formDialog, notice, resourceHref, showError, typeBadge } from "../ui.js";
import { filePage } from "./file.js";
import { folderPage } from "./folder.js";
import { sequencePage } from "./sequence.js";

export async function resourcePage(ctx) {
  const path = ctx.params[0].replace(/^\/+|\/+$/g, "");
  document.title = `${path} · hub`;
  mount(ctx.main, breadcrumbs(path), h("p.muted", "Loading…"));
  let r;
  try {
    r = await api.resource(path);
  } catch (e) {
    if (ctx.left()) return;
    mount(ctx.main, breadcrumbs(path), h("h1", path.split("/").pop()),
      h("p#page-error.page-error", { role: "alert" }, e.status === 404
        ? `There is nothing at ${path} that you can see. It may have been deleted or renamed, or you may not have access to it.`
        : e.message));
    if (e.status !== 404) showError(e);
    return;
  }
  if (ctx.left()) return;
  const page = r.type === "sequence" ? sequencePage : r.type === "file" ? filePage : folderPage;
  await page(ctx, r);
}

const RANK = { read: 1, write: 2, admin: 3 };
/** Whether the caller holds `level` on resource `r` (the API's X-Access; unknown: assume so,
 * the API still refuses). Buttons for what the caller may not do are not shown. */
export const can = (r, level) => !r.access || (RANK[r.access] || 0) >= RANK[level];
/** The level that renaming or deleting `r` needs. */
const changeLevel = (r) => (r.type === "controller" ? "admin" : "write");

/** The title row every resource page shares: name, type, and action buttons. */
export function resourceHead(r, actions) {
  return [
    breadcrumbs(r.path),
    h("div.page-head",
      h("h1", h("span#resource-name", r.name), " ", typeBadge(r.type)),
      h("div.actions", actions.filter(Boolean)),
    ),
  ];
}

export function renameButton(r) {
  if (r.type === "organization" || !can(r, changeLevel(r))) return null;
  return h("button#rename", {
    type: "button",
    onclick: async (ev) => {
      const values = await formDialog(`Rename ${r.name}`, [
        { name: "name", label: "New name", value: r.name, required: true,
          help: "Letters, digits, '_', '.' and '-'. Devices that publish to the old path must be told the new one." },
      ], { submitLabel: "Rename" });
      if (!values || values.name === r.name) return;
      const parent = r.path.split("/").slice(0, -1).join("/");
      const renamed = await busy(ev.target, () => api.updateResource(r.path, { path: `${parent}/${values.name.trim()}` }));
      if (renamed) {
        notice(`Renamed to ${renamed.name}.`, "ok");
        navigate(resourceHref(renamed.path));
      }
    },
  }, "Rename");
}

export function deleteButton(r, { total = 0 } = {}) {
  if (r.type === "organization" || !can(r, changeLevel(r))) return null;
  return h("button#delete.danger", {
    type: "button",
    onclick: async (ev) => {
      const isFolder = !["file", "sequence"].includes(r.type);
      const text = isFolder && total > 0
        ? `${r.path} holds ${total} item${total === 1 ? "" : "s"}; they are all deleted with it.`
        : isFolder ? `${r.path} is empty.` : `${r.path} and its whole history are deleted.`;
      if (!(await confirmDialog(`Delete ${r.name}?`, text))) return;
      const done = await busy(ev.target, () => api.deleteResource(r.path, isFolder && total > 0));
      if (done) {
        notice(`Deleted ${r.path}.`, "ok");
        const parent = r.path.split("/").slice(0, -1).join("/");
        navigate(parent ? resourceHref(parent) : "#/");
      }
    },
  }, "Delete");
}
