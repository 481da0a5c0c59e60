// A folder, organization or controller folder: its children, the latest value
// of each sequence (live), and create / rename / delete / permissions.
import * as api from "../api.js";
import { formatTime, h, mount } from "../dom.js";
import { live } from "../live.js";
import { navigate } from "../router.js";
import { busy, emptyRow, formDialog, notice, resourceHref, showError, typeBadge } from "../ui.js";
import { formatValue } from "../values.js";
import { sequenceUpdates } from "../wire.js";
import { controllerPanel } from "./controller.js";
import { can, deleteButton, renameButton, resourceHead } from "./resource.js";

const NAME_HELP = "Letters, digits, '_', '.' and '-'.";
const FETCH_CONCURRENCY = 6;

export async function folderPage(ctx, r) {
  const tbody = h("tbody");
  const table = h("table#children.listing",
    h("thead", h("tr", h("th", "Name"), h("th", "Type"), h("th", "Latest value"), h("th", "Updated"))),
    tbody);
  const more = h("div.more");
  const rows = new Map(); // child path -> {row, valueCell, timeCell, spec}
  const watching = new Map(); // sequence path -> off()
  ctx.onLeave(() => watching.forEach((off) => off()));

  const addRows = (children) => {
    for (const c of children) {
      if (rows.has(c.path)) continue;
      const valueCell = h("td.value", c.type === "sequence" ? "…" : "");
      const timeCell = h("td.time", c.type === "sequence" ? "" : formatTime(c.modified_at));
      const row = h("tr", { dataset: { path: c.path, type: c.type } },
        h("td", h("a", { href: resourceHref(c.path) }, c.name)),
        h("td", typeBadge(c.type)), valueCell, timeCell);
      rows.set(c.path, { row, valueCell, timeCell, spec: null });
      tbody.append(row);
    }
    if (rows.size && tbody.querySelector("tr.empty")) tbody.querySelector("tr.empty").remove();
  };

  const showValue = (path, value, timestamp, { flash = false } = {}) => {
    const entry = rows.get(path);
    if (!entry) return;
    entry.valueCell.textContent = formatValue(value, entry.spec, { short: true });
    entry.timeCell.textContent = timestamp ? formatTime(timestamp) : "";
    if (!flash) return;
    entry.row.classList.remove("flash");
    void entry.row.offsetWidth; // restart the highlight
    entry.row.classList.add("flash");
  };

  const loadValues = async (children) => {
    const seqs = children.filter((c) => c.type === "sequence");
    for (const c of seqs) {
      if (!watching.has(c.path)) watching.set(c.path, live.watchSequence(c.path, (u) => showValue(u.path, u.value, u.timestamp ?? Date.now(), { flash: true })));
    }
    // A listing that already carries each sequence's latest value needs no more requests.
    const queue = [];
    for (const c of seqs) {
      const entry = rows.get(c.path);
      if ("value" in c && c.sequence && entry) {
        entry.spec = c.sequence;
        showValue(c.path, c.value, c.timestamp);
      } else queue.push(c);
    }
    const worker = async () => {
      while (queue.length && !ctx.left()) {
        const c = queue.shift();
        try {
          const s = await api.resource(c.path);
          const entry = rows.get(c.path);
          if (!entry || ctx.left()) continue;
          entry.spec = s.sequence;
          if (entry.valueCell.textContent === "…") showValue(c.path, s.value, s.timestamp);
          if (s.value === null) entry.valueCell.textContent = "no value yet";
        } catch (e) {
          const entry = rows.get(c.path);
          if (entry) entry.valueCell.textContent = "(unavailable)";
        }
      }
    };
    await Promise.all(Array.from({ length: FETCH_CONCURRENCY }, worker));
  };

  const showMore = (next) => {
    mount(more, next && h("button#more", {
      type: "button",
      onclick: (ev) => busy(ev.target, async () => {
        const page = await api.resource(r.path, { after: next });
        if (ctx.left()) return;
        addRows(page.children);
        showMore(page.next);
        loadValues(page.children);
      }),
    }, "Show more"));
  };

  // A sequence created by its first update (or elsewhere) appears without a reload.
  let reloadTimer = null;
  const offFolder = live.subscribe(r.path, (message, topic) => {
    const unknown = sequenceUpdates(topic, message)
      .some((u) => u.path.startsWith(`${r.path}/`) && !u.path.slice(r.path.length + 1).includes("/") && !rows.has(u.path));
    if (!unknown || reloadTimer) return;
    reloadTimer = setTimeout(async () => {
      reloadTimer = null;
      try {
        const fresh = await api.resource(r.path);
        if (ctx.left()) return;
        const added = fresh.children.filter((c) => !rows.has(c.path));
        addRows(added);
        loadValues(added);
      } catch (e) {
        showError(e);
      }
    }, 300);
  });
  ctx.onLeave(() => {
    offFolder();
    clearTimeout(reloadTimer);
  });
  const onReconnect = () => loadValues([...rows.entries()].filter(([, e]) => e.spec).map(([path]) => ({ path, type: "sequence" })));
  live.addEventListener("reconnected", onReconnect);
  ctx.onLeave(() => live.removeEventListener("reconnected", onReconnect));

  mount(ctx.main,
    resourceHead(r, [
      can(r, "write") && h("button#new-folder", { type: "button", onclick: () => createChild(r, "folder") }, "New folder"),
      can(r, "admin") && h("button#new-controller", { type: "button", onclick: () => createChild(r, "controller") }, "New controller"),
      can(r, "write") && h("button#new-sequence", { type: "button", onclick: () => createChild(r, "sequence") }, "New sequence"),
      can(r, "write") && h("button#upload", { type: "button", onclick: () => uploadDialog(r) }, "Upload file"),
      can(r, "admin") && h("a.button#permissions-link", { href: `#/permissions/${r.path}` }, "Permissions"),
      renameButton(r),
      deleteButton(r, { total: r.total }),
    ]),
    r.type === "controller" && controllerPanel(ctx, r),
    h("h2", "Contents", h("span.count", r.total ? ` (${r.total})` : "")),
    table,
    more,
  );
  if (!r.children.length) tbody.append(emptyRow(4, "This folder is empty."));
  addRows(r.children);
  showMore(r.next);
  await loadValues(r.children);
}

async function createChild(r, type) {
  const fields = [{ name: "name", label: "Name", required: true, help: NAME_HELP }];
  if (type === "sequence") {
    fields.push(
      { name: "data_type", label: "Data type", options: [["numeric", "Number"], ["text", "Text"], ["json", "JSON"], ["image", "Image"]], value: "numeric" },
      { name: "units", label: "Units", placeholder: "e.g. °C" },
      { name: "min_value", label: "Minimum", type: "number", step: "any" },
      { name: "max_value", label: "Maximum", type: "number", step: "any" },
      { name: "decimal_places", label: "Decimal places", type: "number", step: "1" },
      { name: "max_history", label: "Keep at most this many values", type: "number", step: "1", help: "Empty: keep everything." },
    );
  }
  const label = { folder: "folder", controller: "controller folder", sequence: "sequence" }[type];
  const values = await formDialog(`New ${label} in ${r.name}`, fields, {
    submitLabel: "Create",
    intro: type === "controller" ? "A controller folder is where one device publishes. Create a key for it on its page." : undefined,
  });
  if (!values) return;
  const body = { type };
  for (const [k, v] of Object.entries(values)) {
    if (k === "name" || v === "") continue;
    body[k] = ["min_value", "max_value", "decimal_places", "max_history"].includes(k) ? Number(v) : v;
  }
  try {
    const created = await api.createResource(`${r.path}/${values.name.trim()}`, body);
    notice(`Created ${created.path}.`, "ok");
    navigate(resourceHref(created.path));
  } catch (e) {
    showError(e);
  }
}

async function uploadDialog(r) {
  const values = await formDialog(`Upload a file to ${r.name}`, [
    { name: "file", label: "File", type: "file", required: true },
    { name: "name", label: "Name (empty: the file's own name)", help: NAME_HELP },
  ], { submitLabel: "Upload" });
  const file = values?.file;
  if (!file) return;
  const name = (values.name || file.name).trim().replace(/[^A-Za-z0-9_.-]/g, "_");
  try {
    const created = await api.uploadFile(`${r.path}/${name}`, file);
    notice(`Uploaded ${created.path}.`, "ok");
    navigate(resourceHref(created.path));
  } catch (e) {
    showError(e);
  }
}
