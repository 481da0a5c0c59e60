// Live updates: one MQTT-over-websockets connection to Mosquitto per tab,
// authenticated with the short-lived token from POST /api/v1/mqtt-token.
// The token is refreshed before it expires (the next reconnect uses the new
// one); the broker ends a connection when the token it was made with runs out,
// and MQTT.js reconnects (as after a broker restart) and resubscribes; pages
// hear "reconnected" so they can fill the gap from the HTTP API.
import mqtt from "mqtt/dist/mqtt.esm";
import { ApiError, userError } from "./http.js";
import * as api from "./api.js";
import { ancestors, parseMessage, sequenceUpdates } from "./wire.js";

const RECONNECT_MS = 1000;
const REFRESH_AT = 0.75; // refresh the token when this fraction of its life has passed
const AUTH_ERRORS = new Set([4, 5, 134, 135, 140]); // bad user/pass, not authorized, bad auth method

class Live extends EventTarget {
  constructor() {
    super();
    this.client = null;
    this.state = "off"; // off | connecting | live | offline
    this.detail = "";
    this.topics = new Map(); // topic -> Set(handler)
    this.refreshTimer = null;
    this.everConnected = false;
    this.generation = 0;
    this.refreshes = 0; // tokens fetched after the first (for the tests and the curious)
    this.connects = 0;
    this.tokenExpiresAt = 0; // of the token in the client's options (the next connect uses it)
    this.connectedUntil = 0; // when the broker ends the current connection: its token runs out
    this.renewingUntil = 0;
  }

  _setState(state, detail = "") {
    if (state === this.state && detail === this.detail) return;
    this.state = state;
    this.detail = detail;
    this.dispatchEvent(new CustomEvent("state", { detail: { state, detail } }));
  }

  /** Connect (after log-in). Safe to call twice. */
  async start() {
    if (this.client) return;
    const generation = ++this.generation;
    this._setState("connecting");
    let token;
    try {
      token = await api.mqttToken();
    } catch (e) {
      this._setState("offline", e instanceof ApiError ? e.message : String(e));
      if (!(e instanceof ApiError && e.status === 401) && generation === this.generation) {
        setTimeout(() => generation === this.generation && this.start(), 5000);
      }
      return;
    }
    if (generation !== this.generation || this.client) return;
    const client = mqtt.connect(token.url, {
      protocolVersion: token.mqttVersion,
      clean: true,
      clientId: `console-${crypto.randomUUID().slice(0, 18)}`,
      username: token.username,
      password: token.token,
      reconnectPeriod: RECONNECT_MS,
      connectTimeout: 10_000,
      keepalive: 30,
      resubscribe: true,
    });
    this.client = client;
    this.tokenExpiresAt = token.expiresAt;
    this._scheduleRefresh(token);
    client.on("connect", () => {
      const again = this.everConnected;
      this.connects++;
      this.connectedUntil = this.tokenExpiresAt;
      this.everConnected = true;
      this._setState("live");
      // MQTT.js resubscribes on its own; subscribe to anything added while offline.
      for (const topic of this.topics.keys()) client.subscribe(topic, { qos: 0 });
      if (again) this.dispatchEvent(new Event("reconnected"));
    });
    client.on("reconnect", () => this._setState("connecting", "reconnecting to the live feed"));
    // The broker ends a connection when its token runs out; the next try uses the newer one.
    // Connection losses in the few seconds after that are the renewal; later ones are not.
    const renewing = () => {
      if (Date.now() >= this.connectedUntil - 2000) {
        this.connectedUntil = Infinity;
        this.renewingUntil = Date.now() + 5000;
      }
      return Date.now() < this.renewingUntil;
    };
    client.on("offline", () => {
      if (renewing()) this._setState("connecting", "renewing the live feed's token");
      else this._setState("offline", "live updates paused: the message broker cannot be reached");
    });
    client.on("close", () => {
      if (this.state !== "live") return;
      if (renewing()) this._setState("connecting", "renewing the live feed's token");
      else this._setState("offline", "connection to the broker lost");
    });
    client.on("error", (err) => {
      if (AUTH_ERRORS.has(err.code)) {
        // The token may have expired while offline: get a new one before the next try.
        this._setState("offline", "the live feed refused the token; getting a new one");
        this.refreshToken().catch(() => {});
      } else {
        this._setState("offline", `live feed error: ${err.message}`);
      }
    });
    client.on("message", (topic, payload) => this._deliver(topic, payload));
  }

  /** Disconnect and forget everything (after log-out). */
  stop() {
    this.generation++;
    clearTimeout(this.refreshTimer);
    if (this.client) this.client.end(true);
    this.client = null;
    this.everConnected = false;
    this._setState("off");
  }

  async refreshToken() {
    const token = await api.mqttToken();
    this.refreshes++;
    if (this.client) {
      this.client.options.password = token.token;
      if (token.username !== undefined) this.client.options.username = token.username;
      this.tokenExpiresAt = token.expiresAt;
    }
    this._scheduleRefresh(token);
    return token;
  }

  _scheduleRefresh(token) {
    clearTimeout(this.refreshTimer);
    const lifeMs = Math.max(10_000, token.expiresAt - Date.now());
    this.refreshTimer = setTimeout(() => {
      this.refreshToken().catch(() => {
        // A network blip: try again soon; a 401 sends the app to the log-in page.
        this.refreshTimer = setTimeout(() => this.refreshToken().catch(() => {}), 10_000);
      });
    }, lifeMs * REFRESH_AT);
  }

  /** Receive every message on `topic` (an exact folder path): handler(message|null, topic, payload). */
  subscribe(topic, handler) {
    let set = this.topics.get(topic);
    if (!set) {
      set = new Set();
      this.topics.set(topic, set);
      if (this.client?.connected) this.client.subscribe(topic, { qos: 0 });
    }
    set.add(handler);
    return () => {
      set.delete(handler);
      if (set.size === 0 && this.topics.get(topic) === set) {
        this.topics.delete(topic);
        if (this.client) this.client.unsubscribe(topic);
      }
    };
  }

  /** handler({path, value, timestamp}) for each update of the sequence at `path`. */
  watchSequence(path, handler) {
    const onMessage = (message, topic) => {
      for (const u of sequenceUpdates(topic, message)) if (u.path === path) handler(u);
    };
    // An update may be published on any folder above the sequence (a controller
    // publishes on its own folder). The organization's top folder is left out: few
    // may read it, and the broker logs every refused subscription.
    const topics = ancestors(path).filter((topic, i) => i === 0 || topic.includes("/"));
    const offs = topics.map((topic) => this.subscribe(topic, onMessage));
    return () => offs.forEach((off) => off());
  }

  /** Publish a hub message to a folder (QoS 1: the broker's refusal comes back as an error). */
  publish(folder, type, parameters) {
    const client = this.client;
    if (!client?.connected) {
      return Promise.reject(userError("The live connection to the broker is down; wait until it says 'live' and try again."));
    }
    const payload = JSON.stringify({ type, parameters });
    return new Promise((resolve, reject) => {
      client.publish(folder, payload, { qos: 1 }, (err) => {
        if (!err) return resolve();
        const refused = err.code === 135 || /not authori/i.test(err.message);
        reject(userError(refused ? `You may not send messages to ${folder} (write access is needed).`
          : `The broker did not accept the message: ${err.message}`));
      });
    });
  }

  _deliver(topic, payload) {
    const set = this.topics.get(topic);
    if (!set) return;
    const message = parseMessage(payload);
    for (const handler of [...set]) {
      try {
        handler(message, topic, payload);
      } catch (e) {
        console.error("live handler failed", e);
      }
    }
  }
}

export const live = new Live();
