"""The OpenAPI 3.1 document of the HTTP API, written once, here (component
schemas in hub/http/openapi_schemas.py).

Served at /api/v1/openapi.json (with a docs page at /api/v1/docs). A test
checks that every route the app has is in this document and vice versa, and
schemathesis runs every phase and check against it (tests/test_http_schema.py).
Links say which response feeds which operation (a created resource, user,
key, PIN or grant), so generated clients and stateful tests can follow them.
The rhizo-server dialect (docs/rhizo-compat.md) is deliberately not described.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from hub import paths
from hub.http import openapi_accounts
from hub.http.openapi_schemas import (
    EMAIL,
    ID,
    ORG_NAME,
    PIN_PATTERN,
    TIME_QUERY,
    obj,
    ref,
    schemas,
)
from hub.http.params import AFTER_PATTERN
from hub.http.routes.history import MAX_CSV_COUNT

J = "application/json"
BODY = "$response.body#"


def _json(schema: dict[str, Any], description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": {J: {"schema": schema}}}


def _body(schema: dict[str, Any], required: bool = True, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    content: dict[str, Any] = {J: {"schema": schema}}
    content.update(extra or {})
    return {"required": required, "content": content}


def _q(name: str, schema: dict[str, Any], description: str = "", required: bool = False) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": required, "schema": schema, "description": description}


def _p(name: str, schema: dict[str, Any], description: str = "") -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": schema, "description": description}


def link(operation_id: str, parameters: dict[str, str] | None = None,
         body: dict[str, Any] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"operationId": operation_id}
    if parameters:
        out["parameters"] = parameters
    if body:
        out["requestBody"] = body
    return out


PATH_PARAM = _p("path", {"type": "string", "pattern": paths.URL_PATH_PATTERN, "maxLength": paths.MAX_PATH_LENGTH,
                         "examples": ["acme"]},
                "resource path, e.g. acme/greenhouse/pi-01/temperature (slashes unescaped)")
GRANT_ID = _q("id", ID, required=True)
USER_ID = _p("user_id", ID)
ORG_PARAM = _p("name", {**ORG_NAME, "examples": ["acme"]})
PIN_PARAM = _p("pin", {"type": "string", "pattern": PIN_PATTERN}, "e.g. 7K3Q9X (case, spaces and dashes ignored)")
LIMIT = {"type": "integer", "minimum": 1, "maximum": 1000}
BOOL = {"type": "boolean"}


def op(operation_id: str, summary: str, tag: str, responses: dict[str, Any], *,
       params: list[dict[str, Any]] | None = None, body: dict[str, Any] | None = None, public: bool = False,
       description: str = "", links: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    if links:
        ok = next(code for code in responses if code.startswith("2"))
        responses = {**responses, ok: {**responses[ok], "links": links}}
    out: dict[str, Any] = {"operationId": operation_id, "summary": summary, "tags": [tag], "responses": {
        **responses, "default": _json(ref("Error"), "an error: {error: {code, message}}; 400 when the request "
                                                   "breaks this document, 422 when it breaks a rule the "
                                                   "document cannot state")}}
    if description:
        out["description"] = description
    if params:
        out["parameters"] = params
    if body:
        out["requestBody"] = body
    if public:
        out["security"] = []
    return out


def _on_path(expr: str) -> dict[str, dict[str, Any]]:
    """Links from a response naming a resource path (`expr`) to what works on it."""
    p = {"path": expr}
    return {"GetResource": link("getResource", p), "PutResource": link("putResource", p),
            "PatchResource": link("patchResource", p), "DeleteResource": link("deleteResource", p),
            "CreateChild": link("createResource", {"path": "{" + expr + "}/child"}),
            "ListRevisions": link("listRevisions", p), "GetHistory": link("getHistory", p),
            "ListPermissions": link("listPermissions", p), "GrantPermission": link("grantPermission", p),
            "GetController": link("getController", p), "SetWatchdog": link("setWatchdog", p),
            "CreateControllerKey": link("createKey", body={"controller": expr}),
            "PutValues": link("putValues", body={"values": {expr: 1}}),
            "ListControllerKeys": link("listKeys", {"controller": expr})}


def _on_user(expr: str) -> dict[str, dict[str, Any]]:
    u = {"user_id": expr}
    return {"GetUser": link("getUser", u), "PatchUser": link("patchUser", u), "DeleteUser": link("deleteUser", u),
            "GetPhone": link("getPhone", u), "SetPhone": link("setPhone", u), "ListKeys": link("listKeys", u),
            "CreateKey": link("createKey", body=u)}


def _on_org(expr: str) -> dict[str, dict[str, Any]]:
    n = {"name": expr}
    return {"GetOrganization": link("getOrganization", n), "ListMembers": link("listMembers", n),
            "SetMember": link("setMember", n), "GetFolder": link("getResource", {"path": expr}),
            "CreateFolder": link("createResource", {"path": "{" + expr + "}/new"}),
            "ListPermissions": link("listPermissions", {"path": expr}),
            "GrantToOrganization": link("grantPermission", {"path": expr}, body={"organization": expr})}


RAW_FILE = {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
            "multipart/form-data": {"schema": obj({"file": {"type": "string", "format": "binary"}}, ["file"],
                                                  additionalProperties=False)}}
RES = "/api/v1/resources/{path}"
HEALTH = {"200": _json(ref("Health")), "503": _json(ref("Health"), "a dependency is down")}

PATHS: dict[str, Any] = {
    # --- auth -----------------------------------------------------------------
    "/api/v1/login": {"post": op(
        "login", "Log in: sets the session cookie", "auth", {"200": _json(ref("LoginResult"))},
        body=_body(ref("Login")), public=True, links=_on_user(f"{BODY}/user/id"),
        description="Rate-limited per account and address: 429 with Retry-After.")},
    "/api/v1/logout": {"post": op("logout", "Log out: clears the session cookies", "auth",
                                  {"204": {"description": "logged out"}}, public=True)},
    "/api/v1/me": {"get": op("getMe", "Who am I", "auth", {"200": _json(ref("Me"))},
                             links=_on_user(f"{BODY}/user/id"))},
    "/api/v1/mqtt-token": {"post": op("createMqttToken", "A short-lived MQTT token for the browser", "auth",
                                      {"200": _json(ref("MqttToken"))},
                                      description="Connect to `url` with `username` and the token as "
                                                  "password. Users only.")},
    # --- resources ------------------------------------------------------------
    "/api/v1/resources": {
        "get": op("listTopFolders", "Top-level folders the caller can read", "resources",
                  {"200": _json(ref("TopFolders"))}, links=_on_path(f"{BODY}/children/0/path")),
        "put": op("putValues", "Many sequence values at once (rhizo-compatible)", "resources",
                  {"200": _json(ref("ValuesWritten"))}, body=_body(ref("ValuesWrite")),
                  description="Needs write access to every sequence; all or nothing.")},
    RES: {
        "get": op("getResource", "Read a resource", "resources", {
            "200": {"description": "folder: a page of children; sequence: spec and latest value; "
                                   "file: its content (meta=true: metadata)",
                    "content": {J: {"schema": {"anyOf": [ref("Resource"), ref("RevisionValue")]}},
                                "*/*": {"schema": {"type": "string", "format": "binary"}}},
                    "headers": {"X-Access": {"description": "on JSON answers: the caller's own level here",
                                             "schema": {"type": "string", "enum": ["read", "write", "admin"]}}}}},
            params=[PATH_PARAM, _q("limit", LIMIT), _q("after", {"type": "string", "pattern": AFTER_PATTERN},
                                                    "child name to continue after"),
                    _q("meta", BOOL, "a file's metadata instead of its content"),
                    _q("revision", {"type": "integer", "minimum": 1, "maximum": 2**62}, "an older revision's id")],
            links={"NextPage": link("getResource", {"path": "$request.path.path", "after": f"{BODY}/next"})},
            description="`GET /resources/{path}/history` (when no resource is named so) answers as "
                        "`GET /history/{path}`."),
        "post": op("createResource", "Create a resource", "resources", {"201": _json(ref("Resource"), "created")},
                   params=[PATH_PARAM, _q("type", {"type": "string", "enum": ["file", ""]},
                                          "file: a file upload even for a JSON body")],
                   body=_body(ref("NewResource"), False, RAW_FILE), links=_on_path(f"{BODY}/path"),
                   description="JSON creates a folder, controller, sequence or text file; any other "
                               "body (raw or multipart `file`) creates a file. 409 at the top level "
                               "(organizations) or under a sequence or file. No body: an empty file."),
        "put": op("putResource", "Set a file's content or a sequence's value", "resources", {
            "200": {"description": "the stored value or the file's new revision", "content": {J: {
                "schema": {"anyOf": [ref("WriteResult"), ref("Resource")]}}}}},
            params=[PATH_PARAM], body=_body(ref("SequenceWrite"), False, RAW_FILE),
            links={"GetHistory": link("getHistory", {"path": f"{BODY}/path"}),
                   "ListRevisions": link("listRevisions", {"path": f"{BODY}/path"})},
            description="No body: an empty file. 422 for a sequence without a JSON body or for a value "
                        "the sequence's type or limits refuse."),
        "patch": op("patchResource", "Rename, move, or change attributes or a sequence's spec", "resources",
                    {"200": _json(ref("Resource"))}, params=[PATH_PARAM], body=_body(ref("ResourcePatch")),
                    links={"GetMoved": link("getResource", {"path": f"{BODY}/path"})}),
        "delete": op("deleteResource", "Delete (soft)", "resources", {"200": _json(ref("Deleted"))},
                     params=[PATH_PARAM, _q("recursive", BOOL, "needed for a folder with children")]),
    },
    "/api/v1/revisions/{path}": {"get": op(
        "listRevisions", "A file's or sequence's revisions, newest first", "resources",
        {"200": _json(ref("Revisions"))},
        params=[PATH_PARAM, _q("limit", LIMIT), _q("before", TIME_QUERY, "page: next_before of the last page")],
        links={"Older": link("listRevisions", {"path": "$request.path.path", "before": f"{BODY}/next_before"})})},
    "/api/v1/history/{path}": {"get": op(
        "getHistory", "A sequence's values over time, downsampled or as CSV", "resources", {
            "200": {"description": "values, buckets (points=N) or CSV (format=csv: the values, or with points "
                                   "the buckets)",
                    "content": {J: {"schema": ref("History")}, "text/csv": {"schema": {"type": "string"}}}}},
        params=[PATH_PARAM, _q("start", TIME_QUERY), _q("end", TIME_QUERY, "exclusive"),
                _q("count", {"type": "integer", "minimum": 1, "maximum": MAX_CSV_COUNT},
                   "at most this many values (a JSON answer holds at most 10000; CSV has no such limit)"),
                _q("order", {"type": "string", "enum": ["asc", "desc"]}),
                _q("points", {"type": "integer", "minimum": 1, "maximum": 10000},
                   "about this many buckets of count/min/max/mean (numeric sequences, else 422)"),
                _q("format", {"type": "string", "enum": ["json", "csv"]})])},
    # --- permissions ----------------------------------------------------------
    "/api/v1/permissions/{path}": {
        "get": op("listPermissions", "Permissions on a folder", "permissions", {"200": _json(ref("Permissions"))},
                  params=[PATH_PARAM],
                  links={"Revoke": link("revokePermission", {"path": "$request.path.path",
                                                             "id": f"{BODY}/permissions/0/id"})}),
        "post": op("grantPermission", "Grant a permission", "permissions", {"201": _json(ref("Permission"), "granted")},
                   params=[PATH_PARAM], body=_body(ref("NewPermission")),
                   links={"Revoke": link("revokePermission", {"path": "$request.path.path", "id": f"{BODY}/id"}),
                          "List": link("listPermissions", {"path": "$request.path.path"})}),
        "delete": op("revokePermission", "Revoke a permission", "permissions", {"204": {"description": "revoked"}},
                     params=[PATH_PARAM, GRANT_ID]),
    },
    # --- users and organizations ----------------------------------------------
    "/api/v1/users": {
        "get": op("listUsers", "Users the caller may see", "users", {"200": _json(ref("Users"))},
                  params=[_q("email", EMAIL, "one exact address (system and organization admins): that user, or none")],
                  links=_on_user(f"{BODY}/users/0/id")),
        "post": op("createUser", "Create a user", "users", {"201": _json(ref("User"), "created")},
                   body=_body(ref("NewUser")), links=_on_user(f"{BODY}/id")),
    },
    "/api/v1/users/{user_id}": {
        "get": op("getUser", "A user", "users", {"200": _json(ref("User"))}, params=[USER_ID]),
        "patch": op("patchUser", "Change a user", "users", {"200": _json(ref("User"))}, params=[USER_ID],
                    body=_body(ref("UserPatch")),
                    description="409 for a system admin removing their own system admin."),
        "delete": op("deleteUser", "Delete a user (revokes their keys)", "users", {"204": {"description": "deleted"}},
                     params=[USER_ID]),
    },
    "/api/v1/organizations": {
        "get": op("listOrganizations", "Organizations the caller belongs to (all, for system admins)",
                  "organizations", {"200": _json(ref("Organizations"))},
                  links=_on_org(f"{BODY}/organizations/0/name")),
        "post": op("createOrganization", "Create an organization and its folder", "organizations",
                   {"201": _json(ref("Organization"), "created")}, body=_body(ref("NewOrganization")),
                   links=_on_org(f"{BODY}/name")),
    },
    "/api/v1/organizations/{name}": {"get": op("getOrganization", "An organization", "organizations",
                                               {"200": _json(ref("Organization"))}, params=[ORG_PARAM])},
    "/api/v1/organizations/{name}/members": {"get": op(
        "listMembers", "Members", "organizations", {"200": _json(ref("Members"))}, params=[ORG_PARAM],
        links={"GetUser": link("getUser", {"user_id": f"{BODY}/members/0/user/id"}),
               "SetMember": link("setMember", {"name": "$request.path.name",
                                               "user_id": f"{BODY}/members/0/user/id"})})},
    "/api/v1/organizations/{name}/members/{user_id}": {
        "put": op("setMember", "Add a member or set their role", "organizations", {"200": _json(ref("Membership"))},
                  params=[ORG_PARAM, USER_ID], body=_body(ref("MembershipRole"), required=False),
                  links={"Remove": link("removeMember", {"name": "$request.path.name",
                                                         "user_id": "$request.path.user_id"}),
                         "Members": link("listMembers", {"name": "$request.path.name"})}),
        "delete": op("removeMember", "Remove a member", "organizations", {"204": {"description": "removed"}},
                     params=[ORG_PARAM, USER_ID]),
    },
    # --- keys -------------------------------------------------------------------
    "/api/v1/keys": {
        "get": op("listKeys", "API keys: yours, a controller's, or a user's", "keys", {"200": _json(ref("ApiKeys"))},
                  params=[_q("controller", PATH_PARAM["schema"]), _q("user_id", ID), _q("include_revoked", BOOL)],
                  links={"Revoke": link("revokeKey", {"prefix": f"{BODY}/keys/0/prefix"})}),
        "post": op("createKey", "Create an API key (the secret is shown once)", "keys",
                   {"201": _json(ref("ApiKey"), "created")}, body=_body(ref("NewApiKey"), required=False),
                   links={"Revoke": link("revokeKey", {"prefix": f"{BODY}/prefix"})}),
    },
    "/api/v1/keys/{prefix}": {"delete": op(
        "revokeKey", "Revoke a key (its live MQTT connections are closed within seconds)", "keys",
        {"200": _json(ref("ApiKey"))}, params=[_p("prefix", {"type": "string", "pattern": "^[a-z2-7]{10}$"})],
        description="409 for the key this request is authenticated with.")},
    # --- controller life cycle -------------------------------------------------------
    "/api/v1/pins": {"post": op(
        "createPin", "Ask for a provisioning PIN (a controller does this)", "controllers",
        {"201": _json(ref("NewPin"), "created")}, public=True,
        links={"Attach": link("attachPin", {"pin": f"{BODY}/pin"}),
               "Claim": link("claimPin", {"pin": f"{BODY}/pin", "pin_code": f"{BODY}/pin_code"})},
        description="Rate-limited per client address (PIN_CREATE_PER_HOUR). The PIN lives PIN_TTL_SECONDS.")},
    "/api/v1/pins/{pin}": {
        "put": op("attachPin", "Attach a PIN to a controller folder (needs write access there)", "controllers",
                  {"200": _json(ref("PinAttached"))}, params=[PIN_PARAM], body=_body(ref("PinAttach")),
                  links={"GetController": link("getController", {"path": f"{BODY}/controller"}),
                         "ListControllerKeys": link("listKeys", {"controller": f"{BODY}/controller"}),
                         "SetWatchdog": link("setWatchdog", {"path": f"{BODY}/controller"})}),
        "get": op("claimPin", "Collect the controller's key (polled by the controller)", "controllers",
                  {"200": _json(ref("PinClaim"), "waiting, or ready with the key (once)")}, public=True,
                  params=[PIN_PARAM, _q("pin_code", {"type": "string", "minLength": 1}, required=True)],
                  description="403 for a wrong pin code (PIN_MAX_ATTEMPTS kill the PIN), 404 for an unknown, "
                              "expired or dead PIN, 409 once the key was collected."),
    },
    "/api/v1/controllers/{path}": {"get": op(
        "getController", "A controller's status: version, last connect and message, reported status, watchdog",
        "controllers", {"200": _json(ref("ControllerStatus"))}, params=[PATH_PARAM])},
    "/api/v1/watchdog/{path}": {"put": op(
        "setWatchdog", "Set or clear a controller's watchdog (needs write access)", "controllers",
        {"200": _json(ref("ControllerStatus"))}, params=[PATH_PARAM], body=_body(ref("WatchdogSet")),
        links={"GetController": link("getController", {"path": f"{BODY}/path"})})},
    "/api/v1/users/{user_id}/phone": {
        "get": op("getPhone", "A user's phone number (yourself, or any as system admin)", "users",
                  {"200": _json(ref("Phone"))}, params=[USER_ID]),
        "put": op("setPhone", "Set or clear a user's phone number for text messages", "users",
                  {"200": _json(ref("Phone"))}, params=[USER_ID], body=_body(ref("PhoneSet"))),
    },
    # --- messages ---------------------------------------------------------------
    "/api/v1/messages": {"post": op("publishMessage", "Publish a message to a folder's topic", "messages",
                                    {"202": _json(ref("Published"), "accepted by the broker")},
                                    body=_body(ref("Message")),
                                    description="Needs write access to the folder. `update_sequence` "
                                                "messages are stored by the persister.")},
    # --- operations ----------------------------------------------------------------
    "/api/v1/health": {"get": op("getHealth", "Health of the database, storage, broker and persister (detail: admins)",
                                 "operations", HEALTH, public=True)},
    "/health": {"get": op("getRootHealth", "The same health report at the root, for load balancers", "operations",
                          HEALTH, public=True)},
    "/metrics": {"get": op("getMetrics", "Prometheus metrics", "operations", {"200": {
        "description": "text exposition format", "content": {"text/plain": {"schema": {"type": "string"}}}}},
        public=True)},
    "/api/v1/openapi.json": {"get": op("getOpenapi", "This document", "operations", {"200": _json({"type": "object"})},
                                       public=True)},
    "/api/v1/docs": {"get": op("getDocs", "Interactive API docs", "operations", {"200": {
        "description": "HTML", "content": {"text/html": {"schema": {"type": "string"}}}}}, public=True)},
}
PATHS.update(openapi_accounts.paths(op, ORG_PARAM))


@cache
def document(min_password_length: int = 10) -> dict[str, Any]:
    """The document for a hub whose MIN_PASSWORD_LENGTH is `min_password_length`."""
    return {
        "openapi": "3.1.0",
        "info": {"title": "hub HTTP API", "version": "1",
                 "description": "Resources, history, users, organizations, API keys, permissions, MQTT tokens "
                                "and messages. Errors are always `{\"error\": {\"code\", \"message\"}}`: 400 "
                                "when a request breaks this document, 422 when it breaks a rule the document "
                                "cannot state (a weak password, a value a sequence refuses), 401/403/404/409 "
                                "for who asks and what exists. Authenticate with `Authorization: Bearer <API "
                                "key>`, or log in for a session cookie; cookie-authenticated writes need the "
                                "`X-CSRF-Token` header."},
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}, {"basic": []}, {"session": [], "csrf": []}],
        "components": {
            "schemas": {**schemas(min_password_length), **openapi_accounts.schemas(min_password_length)},
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "description": "an API key: hk_<prefix>_<secret>"},
                "basic": {"type": "http", "scheme": "basic",
                          "description": "an API key as the password, any user name (rhizo controllers)"},
                "session": {"type": "apiKey", "in": "cookie", "name": "hub_session"},
                "csrf": {"type": "apiKey", "in": "header", "name": "X-CSRF-Token",
                         "description": "csrf_token from /login or /me; writes only"},
            },
        },
        "paths": PATHS,
    }


DOCUMENT: dict[str, Any] = document()
