// A file: its metadata, a preview for text and images, download, a new
// revision by upload, and the list of revisions.
import * as api from "../api.js";
import { formatBytes, formatTime, h, mount } from "../dom.js";
import { render } from "../router.js";
import { busy, formDialog, notice, showError } from "../ui.js";
import { can, deleteButton, renameButton, resourceHead } from "./resource.js";

const PREVIEW_BYTES = 256 * 1024;

export async function filePage(ctx, r) {
  const contentType = r.attributes?.content_type || "application/octet-stream";
  const preview = h("div#file-preview.preview");
  const revBody = h("tbody#revisions");
  mount(ctx.main,
    resourceHead(r, [
      h("a.button#download", { href: api.fileUrl(r.path), download: r.name }, "Download"),
      can(r, "write") && h("button#upload-revision", { type: "button", onclick: (ev) => uploadRevision(ev.target, r) }, "Upload new version"),
      renameButton(r),
      deleteButton(r),
    ]),
    h("section.card",
      h("dl.meta",
        h("dt", "Type"), h("dd#file-type", contentType),
        h("dt", "Size"), h("dd#file-size", formatBytes(r.size)),
        h("dt", "Modified"), h("dd", formatTime(r.timestamp || r.modified_at)))),
    h("section.card", h("h2", "Preview"), preview),
    h("section.card", h("h2", "Revisions"),
      h("table.listing", h("thead", h("tr", h("th", "Saved"), h("th", "Size"), h("th", ""))), revBody)),
  );
  if (!r.revision) mount(preview, h("p.muted", "This file has no content yet."));
  else if (contentType.startsWith("image/")) mount(preview, h("img", { src: api.fileUrl(r.path), alt: r.name }));
  else if (/^text\/|json|xml|csv|javascript/.test(contentType) && r.size <= PREVIEW_BYTES) {
    api.fileText(r.path).then((text) => !ctx.left() && mount(preview, h("pre#file-text", text)), showError);
  } else mount(preview, h("p.muted", "No preview for this type of file: download it to open it."));
  try {
    const data = await api.revisions(r.path);
    if (ctx.left()) return;
    mount(revBody, data.revisions.map((rev, i) => h("tr",
      h("td", formatTime(rev.timestamp), i === 0 ? " (current)" : ""),
      h("td", formatBytes(rev.size)),
      h("td", h("a", { href: api.fileUrl(r.path, rev.id), download: r.name }, "Download")))));
  } catch (e) {
    showError(e);
  }
}

async function uploadRevision(button, r) {
  const values = await formDialog(`New version of ${r.name}`, [
    { name: "file", label: "File", type: "file", required: true },
  ], { submitLabel: "Upload" });
  if (!values?.file) return;
  const done = await busy(button, () => api.replaceFile(r.path, values.file));
  if (done) {
    notice(`Saved a new version of ${r.name}.`, "ok");
    render();
  }
}
