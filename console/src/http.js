// The HTTP transport: JSON in and out, the session cookie (sent by the browser),
// the CSRF header on writes, and one error type that pages can show as is.

const BASE = "/api/v1";
const CSRF_COOKIE = "hub_csrf";
const CSRF_HEADER = "X-CSRF-Token";
let csrfFallback = null; // from the login or /me response, if the cookie is not readable
const listeners = new Set();

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/** An error whose message is for the user (shown as is, not logged as a bug). */
export function userError(message) {
  const e = new Error(message);
  e.userFacing = true;
  return e;
}

/** Called with the ApiError of every 401 (the session has ended). */
export function onUnauthenticated(fn) {
  listeners.add(fn);
  return () => listeners.delete(fn);
}

export function setCsrfToken(token) {
  if (token) csrfFallback = token;
}

function csrfToken() {
  for (const part of document.cookie.split(";")) {
    const [name, ...rest] = part.trim().split("=");
    if (name === CSRF_COOKIE) return decodeURIComponent(rest.join("="));
  }
  return csrfFallback;
}

/** The path part of a URL for a resource path: each segment encoded, slashes kept. */
export function encodePath(path) {
  return String(path).split("/").filter(Boolean).map(encodeURIComponent).join("/");
}

export function apiUrl(path, query) {
  const url = new URL(BASE + path, location.origin);
  for (const [k, v] of Object.entries(query || {})) {
    if (v !== undefined && v !== null && v !== "") url.searchParams.set(k, String(v));
  }
  return url.pathname + url.search;
}

/**
 * request("GET", "/me") -> parsed JSON (or null for 204).
 * opts: {query, json, body, headers, raw (return the Response), signal}
 */
export async function request(method, path, opts = {}) {
  const headers = { Accept: "application/json", ...(opts.headers || {}) };
  let body = opts.body;
  if (opts.json !== undefined) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(opts.json);
  }
  if (method !== "GET" && method !== "HEAD") {
    const token = csrfToken();
    if (token) headers[CSRF_HEADER] = token;
  }
  let response;
  try {
    response = await fetch(apiUrl(path, opts.query), {
      method, headers, body, credentials: "same-origin", signal: opts.signal,
    });
  } catch (e) {
    if (e.name === "AbortError") throw e;
    throw new ApiError(0, "network", "The hub server cannot be reached. Check your connection and try again.");
  }
  if (!response.ok) throw await toError(response);
  if (opts.raw) return response;
  if (response.status === 204) return null;
  const type = response.headers.get("Content-Type") || "";
  return type.includes("json") ? response.json() : response.text();
}

async function toError(response) {
  let code = "error";
  let message = "";
  try {
    const data = await response.json();
    code = data?.error?.code || code;
    message = data?.error?.message || "";
  } catch {
    /* not JSON: fall back to the status below */
  }
  const err = new ApiError(response.status, code, plainWords(response.status, message));
  if (response.status === 401) for (const fn of listeners) fn(err);
  return err;
}

function plainWords(status, message) {
  const m = message ? message.charAt(0).toUpperCase() + message.slice(1) : "";
  switch (status) {
    case 401:
      return m || "Your session has ended. Please log in again.";
    case 403:
      return `You do not have permission to do this. ${m}`.trim();
    case 404:
      return m || "Not found: it may have been deleted or renamed, or you may not have access to it.";
    case 413:
      return m || "That is too large for the hub to accept.";
    case 429:
      return m || "Too many attempts. Wait a minute and try again.";
    default:
      if (status >= 500) return "The hub server had a problem. Try again in a moment; if it keeps happening, tell your administrator.";
      return m || `The request failed (HTTP ${status}).`;
  }
}

export const get = (path, query) => request("GET", path, { query });
export const post = (path, json) => request("POST", path, { json });
export const put = (path, json) => request("PUT", path, { json });
export const patch = (path, json) => request("PATCH", path, { json });
export const del = (path, query) => request("DELETE", path, { query });
