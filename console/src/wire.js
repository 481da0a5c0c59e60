// The hub's MQTT wire format, as the console reads it: topic = folder path,
// payload = UTF-8 JSON {"type": ..., "parameters": {...}}.

/** Parse a payload; null when it is not a hub message (opaque bytes). */
export function parseMessage(payload) {
  let data;
  try {
    data = JSON.parse(new TextDecoder().decode(payload));
  } catch {
    return null;
  }
  if (!data || typeof data !== "object" || Array.isArray(data) || typeof data.type !== "string") return null;
  const parameters = data.parameters && typeof data.parameters === "object" ? data.parameters : {};
  return { type: data.type, parameters };
}

/** Resolve a sequence name or relative path against the topic's folder. */
export function joinPath(folder, relative) {
  if (relative.startsWith("/")) return relative.slice(1);
  return `${folder}/${relative}`;
}

/**
 * The sequence updates an `update_sequence` message carries: [{path, value, timestamp}],
 * timestamp in ms since the epoch or null. Parameter shapes (hub/wire.py):
 * {sequence, value, timestamp?}, {sequence, values: [{value, timestamp?}]},
 * {updates: [{sequence, value, timestamp?}]}.
 */
export function sequenceUpdates(topic, message) {
  if (!message || message.type !== "update_sequence") return [];
  const p = message.parameters;
  const one = (name, value, timestamp) =>
    typeof name === "string" && name ? { path: joinPath(topic, name), value, timestamp: toMs(timestamp) } : null;
  let out = [];
  if ("value" in p) out = [one(p.sequence, p.value, p.timestamp)];
  else if (Array.isArray(p.values)) out = p.values.map((v) => v && one(p.sequence, v.value, v.timestamp));
  else if (Array.isArray(p.updates)) out = p.updates.map((u) => u && one(u.sequence, u.value, u.timestamp));
  return out.filter(Boolean);
}

/** ISO 8601 text or epoch seconds -> ms since the epoch; null when absent or unreadable. */
export function toMs(timestamp) {
  if (typeof timestamp === "number" && Number.isFinite(timestamp)) return timestamp * 1000;
  if (typeof timestamp === "string") {
    const ms = Date.parse(timestamp);
    return Number.isNaN(ms) ? null : ms;
  }
  return null;
}

/** Every ancestor folder of a path, nearest first: a/b/c -> [a/b, a]. */
export function ancestors(path) {
  const parts = path.split("/");
  const out = [];
  for (let i = parts.length - 1; i > 0; i--) out.push(parts.slice(0, i).join("/"));
  return out;
}

const ONLINE = new Set(["online", "connected", "up", "ok"]);
const OFFLINE = new Set(["offline", "disconnected", "down", "lost"]);

/**
 * What a message on a controller's topic says about its connection: true
 * (connected), false (gone: its last will or a goodbye), or null (nothing).
 * Understood: {"type": "status", "parameters": {"connected": bool}} or
 * {"status": "online"|"offline"}; types "connected"/"disconnected"/"online"/"offline".
 */
export function connectionStatus(message) {
  if (!message) return null;
  const t = message.type.toLowerCase();
  if (ONLINE.has(t)) return true;
  if (OFFLINE.has(t)) return false;
  if (t === "status" || t === "controller_status" || t === "will") {
    const p = message.parameters;
    if (typeof p.connected === "boolean") return p.connected;
    const s = typeof p.status === "string" ? p.status.toLowerCase() : typeof p.state === "string" ? p.state.toLowerCase() : "";
    if (ONLINE.has(s)) return true;
    if (OFFLINE.has(s)) return false;
  }
  return null;
}
