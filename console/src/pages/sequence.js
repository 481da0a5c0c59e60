// A sequence: its latest value, a chart of its history (downsampled by the
// server), then live updates from MQTT as the controller publishes them.
import * as api from "../api.js";
import { SequenceChart } from "../chart.js";
import { formatTime, h, mount } from "../dom.js";
import { live } from "../live.js";
import { render } from "../router.js";
import { busy, formDialog, notice, showError } from "../ui.js";
import { formatValue, imageUrl } from "../values.js";
import { can, deleteButton, renameButton, resourceHead } from "./resource.js";

const CHART_POINTS = 400;
const RECENT = 20;
const RANGES = [["all", "All"], ["1h", "Last hour"], ["24h", "Last day"], ["7d", "Last week"], ["30d", "Last 30 days"]];
const RANGE_MS = { "1h": 3600e3, "24h": 86400e3, "7d": 7 * 86400e3, "30d": 30 * 86400e3 };

export async function sequencePage(ctx, r) {
  const spec = r.sequence || {};
  const numeric = spec.data_type === "numeric";
  const latestValue = h("div#latest-value.latest-value");
  const latestTime = h("div#latest-time.latest-time");
  const latestImage = h("img#latest-image.latest-image", { alt: `latest ${r.name}`, hidden: true });
  const chartBox = h("div#chart.chart", { dataset: { points: "0" } });
  const recentBody = h("tbody#recent-values");
  let latestTs = r.timestamp ? Date.parse(r.timestamp) : -Infinity;
  let range = "all";

  const showLatest = (value, timestamp) => {
    latestValue.textContent = formatValue(value, spec);
    latestTime.textContent = timestamp ? `at ${formatTime(timestamp)}` : "";
    if (spec.data_type === "image" && value) {
      latestImage.src = imageUrl(value);
      latestImage.hidden = false;
    }
  };
  const recentRow = (timestamp, value) => h("tr",
    h("td.time", formatTime(timestamp)), h("td.value", formatValue(value, spec, { short: true })));

  let chart = null;
  if (numeric) {
    chart = new SequenceChart(chartBox, { units: spec.units, decimals: spec.decimal_places });
    ctx.onLeave(() => chart.destroy());
  }

  const loadHistory = async () => {
    try {
      if (numeric) {
        const query = { points: CHART_POINTS };
        if (RANGE_MS[range]) query.start = new Date(Date.now() - RANGE_MS[range]).toISOString();
        const data = await api.history(r.path, query);
        if (!ctx.left()) chart.load(data.buckets.filter((b) => b.count > 0));
      } else {
        const data = await api.history(r.path, { count: RECENT, order: "desc" });
        if (!ctx.left()) mount(recentBody, data.values.map((v) => recentRow(v.timestamp, v.value)));
      }
    } catch (e) {
      showError(e);
    }
  };

  const offLive = live.watchSequence(r.path, (u) => {
    const ts = u.timestamp ?? Date.now();
    if (ts >= latestTs) {
      latestTs = ts;
      showLatest(u.value, new Date(ts).toISOString());
    }
    if (chart) chart.push(ts, typeof u.value === "string" ? Number(u.value) : u.value);
    else {
      recentBody.prepend(recentRow(new Date(ts).toISOString(), u.value));
      while (recentBody.children.length > RECENT) recentBody.lastChild.remove();
    }
  });
  ctx.onLeave(offLive);
  // After a broker restart: fetch what was published while the feed was down.
  const onReconnect = async () => {
    try {
      const fresh = await api.resource(r.path);
      if (ctx.left()) return;
      if (fresh.timestamp && Date.parse(fresh.timestamp) >= latestTs) {
        latestTs = Date.parse(fresh.timestamp);
        showLatest(fresh.value, fresh.timestamp);
      }
      await loadHistory();
    } catch (e) {
      showError(e);
    }
  };
  live.addEventListener("reconnected", onReconnect);
  ctx.onLeave(() => live.removeEventListener("reconnected", onReconnect));

  const rangeSelect = h("select#range", { "aria-label": "Time range" },
    RANGES.map(([v, label]) => h("option", { value: v }, label)));
  rangeSelect.addEventListener("change", () => {
    range = rangeSelect.value;
    loadHistory();
  });

  mount(ctx.main,
    resourceHead(r, [
      can(r, "write") && h("button#set-value", { type: "button", onclick: () => setValue(r, spec) }, "Set value"),
      can(r, "write") && h("button#settings", { type: "button", onclick: () => editSettings(r, spec) }, "Settings"),
      h("a.button#download-csv", { href: api.historyCsvUrl(r.path), download: `${r.path.replaceAll("/", "_")}.csv` }, "Download CSV"),
      renameButton(r),
      deleteButton(r),
    ]),
    h("section.card.latest",
      h("div.label", "Latest value"), latestValue, latestTime, latestImage,
      h("div.meta", describeSpec(spec))),
    numeric
      ? h("section.card", h("div.card-head", h("h2", "History"), rangeSelect), chartBox)
      : h("section.card", h("h2", "Recent values"),
        h("table.listing", h("thead", h("tr", h("th", "Time"), h("th", "Value"))), recentBody)),
  );
  showLatest(r.value, r.timestamp);
  await loadHistory();
}

function describeSpec(spec) {
  const parts = [`type ${spec.data_type}`];
  if (spec.units) parts.push(`units ${spec.units}`);
  if (spec.min_value !== null && spec.min_value !== undefined) parts.push(`min ${spec.min_value}`);
  if (spec.max_value !== null && spec.max_value !== undefined) parts.push(`max ${spec.max_value}`);
  if (spec.decimal_places !== null && spec.decimal_places !== undefined) parts.push(`${spec.decimal_places} decimal places`);
  parts.push(spec.max_history ? `keeps the last ${spec.max_history} values` : "keeps every value");
  return parts.join(" · ");
}

async function setValue(r, spec) {
  const values = await formDialog(`Set ${r.name}`, [
    {
      name: "value", label: "Value", required: true, type: spec.data_type === "numeric" ? "number" : spec.data_type === "json" ? "textarea" : "text",
      step: "any", help: spec.data_type === "json" ? "JSON, e.g. {\"on\": true}" : spec.data_type === "image" ? "Base64 of the image." : undefined,
    },
  ], { submitLabel: "Set" });
  if (!values) return;
  let value = values.value;
  try {
    if (spec.data_type === "numeric") value = Number(value);
    if (spec.data_type === "json") value = JSON.parse(value);
  } catch {
    notice("That is not valid JSON: check the quotes and brackets.");
    return;
  }
  await busy(null, async () => {
    await api.setSequenceValue(r.path, value);
    notice(`${r.name} set.`, "ok");
    document.querySelector("#latest-value").textContent = formatValue(value, spec);
    document.querySelector("#latest-time").textContent = `at ${formatTime(new Date())}`;
  });
}

async function editSettings(r, spec) {
  const num = (v) => (v === null || v === undefined ? "" : String(v));
  const values = await formDialog(`Settings of ${r.name}`, [
    { name: "units", label: "Units", value: spec.units || "" },
    { name: "min_value", label: "Minimum", type: "number", step: "any", value: num(spec.min_value) },
    { name: "max_value", label: "Maximum", type: "number", step: "any", value: num(spec.max_value) },
    { name: "decimal_places", label: "Decimal places", type: "number", step: "1", value: num(spec.decimal_places) },
    { name: "max_history", label: "Keep at most this many values", type: "number", step: "1", value: num(spec.max_history), help: "Empty: keep everything." },
  ]);
  if (!values) return;
  const body = { units: values.units };
  for (const k of ["min_value", "max_value", "decimal_places", "max_history"]) body[k] = values[k] === "" ? null : Number(values[k]);
  await busy(null, async () => {
    await api.updateResource(r.path, body);
    notice("Settings saved.", "ok");
    render();
  });
}
