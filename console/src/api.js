// Every HTTP API call the console makes, in one place (see /api/v1/openapi.json).
import { encodePath, get, patch, post, put, del, request, setCsrfToken } from "./http.js";

const res = (path) => `/resources/${encodePath(path)}`;

// -- session ----------------------------------------------------------------
export async function login(email, password) {
  const data = await post("/login", { email, password });
  setCsrfToken(data?.csrf_token);
  return data;
}
export const logout = () => post("/logout", {});
// The loaded extensions and their console panels (hub/extensions/http.py; not under /api/v1).
export const extensions = () =>
  fetch("/ext/index.json", { credentials: "same-origin" }).then((r) => (r.ok ? r.json() : { extensions: [] }));
export async function me() {
  const data = await get("/me");
  setCsrfToken(data?.csrf_token);
  return data;
}

/** {token, url, username, expiresAt (ms)} for the broker's websocket listener. */
export async function mqttToken() {
  const data = await post("/mqtt-token", {});
  let expiresAt = Date.now() + 60_000;
  if (typeof data.expires_at === "number") expiresAt = data.expires_at * 1000;
  else if (typeof data.expires_at === "string") expiresAt = Date.parse(data.expires_at);
  else if (typeof data.expires_in === "number") expiresAt = Date.now() + data.expires_in * 1000;
  let url = data.url || data.ws_url;
  if (!url) url = `${location.protocol === "https:" ? "wss" : "ws"}://${location.hostname}:9001`;
  const mqttVersion = data.mqtt_version === 4 ? 4 : 5; // 4 (3.1.1) on a RabbitMQ broker
  return { token: data.token, url, username: data.username ?? "token", expiresAt, mqttVersion };
}

// -- resources --------------------------------------------------------------
export const roots = () => get("/resources");
/** A folder (with a page of children), sequence (with its latest value) or a file's metadata. */
export async function resource(path, query) {
  const response = await request("GET", res(path), { query: { meta: "true", ...(query || {}) }, raw: true });
  const data = await response.json();
  const access = response.headers.get("X-Access"); // the caller's level here: read, write or admin
  if (access && data && typeof data === "object") data.access = access;
  return data;
}
export const createResource = (path, body) => post(res(path), body);
export const updateResource = (path, body) => patch(res(path), body);
export const deleteResource = (path, recursive) => del(res(path), recursive ? { recursive: "true" } : undefined);
export const setSequenceValue = (path, value) => put(res(path), { value });
export const history = (path, query) => get(`/history/${encodePath(path)}`, query);
export const historyCsvUrl = (path) => `/api/v1/history/${encodePath(path)}?format=csv`;
export const revisions = (path, query) => get(`/revisions/${encodePath(path)}`, query);
export const fileUrl = (path, revision) => `/api/v1${res(path)}${revision ? `?revision=${encodeURIComponent(revision)}` : ""}`;
export const fileText = (path) => request("GET", res(path), { raw: true }).then((r) => r.text());
export const uploadFile = (path, file) =>
  request("POST", res(path), {
    query: { type: "file" }, body: file, headers: { "Content-Type": file.type || "application/octet-stream" },
  });
export const replaceFile = (path, file) =>
  request("PUT", res(path), { body: file, headers: { "Content-Type": file.type || "application/octet-stream" } });
export const sendMessage = (folder, type, parameters) => post("/messages", { folder, type, parameters });

// -- keys -------------------------------------------------------------------
export const keys = (query) => get("/keys", query);
export const createKey = (body) => post("/keys", body);
export const revokeKey = (prefix) => del(`/keys/${encodeURIComponent(prefix)}`);

// -- permissions ------------------------------------------------------------
const perm = (path) => `/permissions/${encodePath(path)}`;
export const permissions = (path) => get(perm(path));
/** body: {level: read|write|admin} and one of {user_id}, {organization}, {controller} */
export const grant = (path, body) => post(perm(path), body);
export const revokePermission = (path, id) => del(perm(path), { id });

// -- organizations and users ------------------------------------------------
export const organizations = () => get("/organizations");
export const createOrganization = (body) => post("/organizations", body);
export const deleteOrganization = (name) => del(`/organizations/${encodeURIComponent(name)}`);
export const members = (org) => get(`/organizations/${encodeURIComponent(org)}/members`);
export const setMember = (org, userId, role) =>
  put(`/organizations/${encodeURIComponent(org)}/members/${encodeURIComponent(userId)}`, { role });
export const removeMember = (org, userId) =>
  del(`/organizations/${encodeURIComponent(org)}/members/${encodeURIComponent(userId)}`);
export const users = (query) => get("/users", query);
export const createUser = (body) => post("/users", body);
export const updateUser = (id, body) => patch(`/users/${encodeURIComponent(id)}`, body);
export const deleteUser = (id) => del(`/users/${encodeURIComponent(id)}`);

// -- controllers (status kept by the notifier) --------------------------------
export const controllerStatus = (path) => get(`/controllers/${encodePath(path)}`);
/** minutes: integer or null (off); recipients: emails or E.164 phone numbers */
export const setWatchdog = (path, minutes, recipients) => put(`/watchdog/${encodePath(path)}`, { minutes, recipients });

// -- accounts (invitations, password resets and changes, account requests) ----
const invitationsOf = (org) => `/organizations/${encodeURIComponent(org)}/invitations`;
export const invite = (org, email, role) => post(invitationsOf(org), { email, role });
export const invitations = (org) => get(invitationsOf(org));
export const cancelInvitation = (org, id) => del(`${invitationsOf(org)}/${encodeURIComponent(id)}`);
export const checkInvitation = (code) => post("/invitations/check", { code });
export async function acceptInvitation(body) {
  const data = await post("/invitations/accept", body);
  if (data?.csrf_token) setCsrfToken(data.csrf_token);
  return data;
}
export const requestPasswordReset = (email) => post("/password-reset", { email });
export const completePasswordReset = (code, password) => post("/password-reset/complete", { code, password });
export async function changePassword(currentPassword, password) {
  const data = await post("/me/password", { current_password: currentPassword, password });
  if (data?.csrf_token) setCsrfToken(data.csrf_token);
  return data;
}
export const requestAccount = (body) => post("/account-requests", body);
export const accountRequests = () => get("/account-requests");
export const approveAccountRequest = (id, body) => post(`/account-requests/${encodeURIComponent(id)}/approve`, body);
export const refuseAccountRequest = (id) => post(`/account-requests/${encodeURIComponent(id)}/refuse`, {});
