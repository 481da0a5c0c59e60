// The controller panel on a controller folder's page: connected or not (from
// its status messages and last will, live), sending it a command, its keys.
import * as api from "../api.js";
import { formValues, formatTime, h, mount } from "../dom.js";
import { live } from "../live.js";
import { busy, field, formDialog, notice } from "../ui.js";
import { connectionStatus } from "../wire.js";
import { keyTable, newKeyDialog } from "./keys.js";
import { can } from "./resource.js";

const LABELS = { true: "connected", false: "disconnected", null: "unknown" };

export function controllerPanel(ctx, r) {
  const attrs = r.attributes || {};
  let connected = typeof attrs.connected === "boolean" ? attrs.connected : null;
  const status = h("span#controller-status.status");
  const seen = h("span#controller-seen.muted");
  const show = (value, when) => {
    connected = value;
    status.dataset.connected = String(value);
    status.textContent = LABELS[String(value)];
    if (when) seen.textContent = ` since ${formatTime(when)}`;
  };
  show(connected, attrs.last_connect || attrs.last_seen || null);

  const off = live.subscribe(r.path, (message) => {
    const said = connectionStatus(message);
    if (said !== null) show(said, Date.now());
    else if (message && connected !== true) show(true, Date.now()); // it is talking, so it is connected
  });
  ctx.onLeave(off);

  const result = h("p#command-result.muted", { role: "status" });
  const form = h("form#command-form.inline-form",
    field({ name: "type", label: "Message type", required: true, placeholder: "e.g. reboot", pattern: ".{1,40}" }),
    field({ name: "parameters", label: "Parameters (JSON)", type: "textarea", rows: 2, value: "{}" }),
    h("div.buttons", h("button#send-command.primary", { type: "submit" }, "Send")),
  );
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const values = formValues(form);
    let parameters;
    try {
      parameters = JSON.parse(values.parameters || "{}");
      if (!parameters || typeof parameters !== "object" || Array.isArray(parameters)) throw new Error();
    } catch {
      notice('Parameters must be a JSON object, e.g. {"seconds": 5}.');
      return;
    }
    await busy(form.querySelector("button"), async () => {
      await live.publish(r.path, values.type.trim(), parameters);
      result.textContent = `Sent "${values.type.trim()}" at ${formatTime(Date.now())}.`;
    });
  });

  const details = h("dl#controller-details.meta");
  const watchdog = h("span#watchdog");
  const loadDetails = async () => {
    let d;
    try {
      d = await api.controllerStatus(r.path);
    } catch {
      return; // a hub without controller status: the live indicator is all there is
    }
    if (ctx.left()) return;
    if (connected === null && typeof d.status?.connected === "boolean") show(d.status.connected, d.status_at);
    mount(details,
      h("dt", "Last connected"), h("dd", d.last_connect ? formatTime(d.last_connect) : "not recorded"),
      h("dt", "Last message"), h("dd", d.last_message ? formatTime(d.last_message) : "not recorded"),
      d.client_version && [h("dt", "Client version"), h("dd", d.client_version)],
      d.status && [h("dt", "Reported status"), h("dd", h("code", JSON.stringify(d.status)))],
    );
    const w = d.watchdog || {};
    watchdog.textContent = w.minutes
      ? `alerts ${w.recipients.join(", ") || "nobody"} after ${w.minutes} minutes of silence`
      : "off";
    watchdog.dataset.minutes = w.minutes ?? "";
    watchdog.dataset.recipients = (w.recipients || []).join(", ");
  };
  loadDetails();
  const editWatchdog = async (ev) => {
    const v = await formDialog("Watchdog", [
      { name: "minutes", label: "Alert after this many minutes of silence (empty: off)", type: "number", step: "1", value: watchdog.dataset.minutes || "" },
      { name: "recipients", label: "Who to alert (emails or phone numbers, comma-separated)", value: watchdog.dataset.recipients || "",
        help: "They must be users of this organization." },
    ]);
    if (!v) return;
    const minutes = v.minutes === "" ? null : Number(v.minutes);
    const recipients = v.recipients.split(",").map((x) => x.trim()).filter(Boolean);
    if ((await busy(ev.target, () => api.setWatchdog(r.path, minutes, recipients))) !== undefined) {
      notice(minutes ? "Watchdog saved." : "Watchdog turned off.", "ok");
      loadDetails();
    }
  };

  const keysBox = h("div#controller-keys");
  const loadKeys = async () => {
    const data = await api.keys({ controller: r.path });
    if (!ctx.left()) mount(keysBox, keyTable(data.keys, loadKeys));
  };
  const adminNote = "Only people with admin access to this controller can see its keys.";
  if (can(r, "admin")) loadKeys().catch((e) => mount(keysBox, h("p.muted", e.status === 403 ? adminNote : e.message)));
  else mount(keysBox, h("p.muted", adminNote));
  const writer = can(r, "write");

  return h("section.card.controller",
    h("div.card-head", h("h2", "Controller"), h("div.status-line", status, seen)),
    details,
    h("p.watchdog", "Watchdog: ", watchdog, " ",
      writer && h("button#edit-watchdog.small", { type: "button", onclick: editWatchdog }, "Change")),
    writer && h("h3", "Send a command"),
    writer && form, writer && result,
    h("div.card-head", h("h3", "Keys"),
      can(r, "admin") && h("button#new-controller-key", { type: "button", onclick: () => newKeyDialog({ controller: r.path }).then(loadKeys) }, "New key")),
    keysBox,
  );
}
