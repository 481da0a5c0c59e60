"""The OpenAPI 3.1 document of the HTTP API, written once, here.

Served at /api/v1/openapi.json (with a docs page at /api/v1/docs). A test
checks that every route the app has is in this document and vice versa, and
schemathesis checks responses against it.
"""

from __future__ import annotations

from typing import Any

from hub.storage.models import DataType, ResourceType

J = "application/json"
_ERR_STATUSES = ("400", "401", "403", "404", "409", "413", "415", "422", "429", "503")


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def nullable(kind: str, **kw: Any) -> dict[str, Any]:
    return {"type": [kind, "null"], **kw}


def obj(props: dict[str, Any], required: list[str] | None = None, **kw: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "object", "properties": props, **kw}
    if required:
        out["required"] = required
    return out


TS = {"type": "string", "format": "date-time"}
NTS = nullable("string", format="date-time")
ANY: dict[str, Any] = {}

SCHEMAS: dict[str, Any] = {
    "Error": obj({"error": obj({"code": {"type": "string"}, "message": {"type": "string"}},
                               ["code", "message"])}, ["error"]),
    "SequenceSpec": obj({
        "data_type": {"type": "string", "enum": [d.value for d in DataType]},
        "units": {"type": "string", "maxLength": 40},
        "min_value": nullable("number"), "max_value": nullable("number"),
        "decimal_places": nullable("integer", minimum=0, maximum=15),
        "max_history": nullable("integer", minimum=1)}),
    "Resource": obj({
        "path": {"type": "string"}, "name": {"type": "string"},
        "type": {"type": "string", "enum": [t.value for t in ResourceType]},
        "attributes": {"type": "object"}, "created_at": TS, "modified_at": TS,
        "sequence": ref("SequenceSpec"),
        "value": ANY, "timestamp": NTS, "revision": nullable("integer"), "size": {"type": "integer"},
        "children": {"type": "array", "items": ref("Resource")},
        "next": nullable("string", description="pass as `after` for the next page"),
        "total": {"type": "integer"}},
        ["path", "name", "type", "attributes", "created_at", "modified_at"]),
    "NewResource": obj({
        "type": {"type": "string", "enum": ["folder", "controller", "file", "sequence"]},
        "attributes": {"type": "object"},
        "content": {"type": "string", "description": "text content of a new file"},
        "content_type": {"type": "string"},
        "value": {"description": "a new sequence's first value"}, "timestamp": {"type": "string"},
        "data_type": {"type": "string", "enum": [d.value for d in DataType]},
        "units": {"type": "string"}, "min_value": {"type": "number"}, "max_value": {"type": "number"},
        "decimal_places": {"type": "integer"}, "max_history": {"type": "integer"}}, ["type"]),
    "ResourcePatch": obj({
        "path": {"type": "string", "description": "new path: rename or move"},
        "attributes": {"type": "object", "description": "merged; a null value removes the attribute"},
        "data_type": {"type": "string"}, "units": {"type": "string"},
        "min_value": nullable("number"), "max_value": nullable("number"),
        "decimal_places": nullable("integer"), "max_history": nullable("integer")},
        additionalProperties=False),
    "SequenceWrite": obj({"value": ANY, "timestamp": {"type": "string", "description": "ISO 8601"}},
                         ["value"]),
    "WriteResult": obj({"path": {"type": "string"}, "timestamp": TS, "stored": {"type": "boolean"}},
                       ["path", "timestamp", "stored"]),
    "RevisionValue": obj({"path": {"type": "string"}, "revision": {"type": "integer"}, "timestamp": TS,
                          "value": ANY}, ["path", "revision", "timestamp", "value"]),
    "Revisions": obj({"path": {"type": "string"}, "revisions": {"type": "array", "items": obj({
        "id": {"type": "integer"}, "timestamp": TS, "size": {"type": "integer"}}, ["id", "timestamp", "size"])},
        "next_before": NTS}, ["path", "revisions", "next_before"]),
    "History": obj({
        "path": {"type": "string"}, "data_type": {"type": "string"}, "units": {"type": "string"},
        "values": {"type": "array", "items": obj({"timestamp": TS, "value": ANY}, ["timestamp", "value"])},
        "points": {"type": "integer"}, "start": NTS, "end": NTS,
        "buckets": {"type": "array", "items": obj({
            "timestamp": TS, "count": {"type": "integer"}, "min": nullable("number"),
            "max": nullable("number"), "mean": nullable("number")}, ["timestamp", "count", "min", "max", "mean"])}},
        ["path", "data_type", "units"]),
    "TopFolders": obj({"children": {"type": "array", "items": obj({
        "path": {"type": "string"}, "name": {"type": "string"}, "type": {"type": "string"}})}}, ["children"]),
    "Deleted": obj({"path": {"type": "string"}, "deleted": {"type": "integer"}}, ["path", "deleted"]),
    "User": obj({"id": {"type": "integer"}, "email": {"type": "string"}, "full_name": {"type": "string"},
                 "is_admin": {"type": "boolean"}, "created_at": TS},
                ["id", "email", "full_name", "is_admin", "created_at"]),
    "NewUser": obj({"email": {"type": "string"}, "password": {"type": "string"},
                    "full_name": {"type": "string"}, "is_admin": {"type": "boolean"},
                    "organization": {"type": "string", "description": "add to this organization"},
                    "role": {"type": "string", "enum": ["member", "admin"]}}, ["email", "password"]),
    "UserPatch": obj({"full_name": {"type": "string"}, "password": {"type": "string"},
                      "current_password": {"type": "string",
                                           "description": "needed to change your own password"},
                      "is_admin": {"type": "boolean", "description": "system admins only"}}),
    "Users": obj({"users": {"type": "array", "items": ref("User")}}, ["users"]),
    "Organization": obj({"name": {"type": "string"}, "full_name": {"type": "string"}, "created_at": TS,
                         "role": nullable("string", description="the caller's role in it")},
                        ["name", "full_name", "created_at"]),
    "NewOrganization": obj({"name": {"type": "string"}, "full_name": {"type": "string"}}, ["name"]),
    "Organizations": obj({"organizations": {"type": "array", "items": ref("Organization")}},
                         ["organizations"]),
    "Members": obj({"members": {"type": "array", "items": obj({"user": ref("User"), "role": {"type": "string"}},
                                                               ["user", "role"])}}, ["members"]),
    "Membership": obj({"organization": {"type": "string"}, "user_id": {"type": "integer"},
                       "role": {"type": "string", "enum": ["member", "admin"]}},
                      ["organization", "user_id", "role"]),
    "MembershipRole": obj({"role": {"type": "string", "enum": ["member", "admin"]}}),
    "ApiKey": obj({
        "prefix": {"type": "string"}, "name": {"type": "string"}, "owner": {"type": "string"},
        "user_id": nullable("integer"), "controller": nullable("string"), "created_by": nullable("integer"),
        "created_at": TS, "last_used_at": NTS, "revoked_at": NTS, "revoked_by": nullable("integer"),
        "revoked": {"type": "boolean"},
        "key": {"type": "string", "description": "the secret: only in the create response, shown once"}},
        ["prefix", "name", "owner", "created_at", "revoked"]),
    "NewApiKey": obj({"name": {"type": "string", "maxLength": 100},
                      "controller": {"type": "string", "description": "a controller folder's path"},
                      "user_id": {"type": "integer", "description": "another user (system admins only)"}}),
    "ApiKeys": obj({"keys": {"type": "array", "items": ref("ApiKey")}}, ["keys"]),
    "Permission": obj({"id": {"type": "integer"}, "path": {"type": "string"},
                       "level": {"type": "string", "enum": ["read", "write", "admin"]},
                       "user_id": nullable("integer"), "organization": nullable("string"),
                       "controller": nullable("string")}, ["id", "path", "level"]),
    "NewPermission": obj({"level": {"type": "string", "enum": ["read", "write", "admin"]},
                          "user_id": {"type": "integer"}, "organization": {"type": "string"},
                          "controller": {"type": "string"}}, ["level"],
                         description="exactly one of user_id, organization, controller"),
    "Permissions": obj({"permissions": {"type": "array", "items": ref("Permission")}}, ["permissions"]),
    "Login": obj({"email": {"type": "string"}, "password": {"type": "string"}}, ["email", "password"]),
    "LoginResult": obj({"user": ref("User"), "csrf_token": {"type": "string"}}, ["user", "csrf_token"]),
    "Me": obj({"via": {"type": "string", "enum": ["session", "key"]}, "user": {"anyOf": [ref("User"),
                                                                                       {"type": "null"}]},
               "controller": nullable("string"),
               "memberships": {"type": "array", "items": obj({"organization": {"type": "string"},
                                                               "role": {"type": "string"}})},
               "csrf_token": {"type": "string", "description": "session callers only"}},
              ["via", "user", "controller", "memberships"]),
    "MqttToken": obj({"token": {"type": "string"}, "username": {"type": "string"},
                      "url": {"type": "string", "description": "the websocket URL to connect to"},
                      "expires_at": {"type": "integer"}, "ttl": {"type": "integer"}},
                     ["token", "username", "url", "expires_at", "ttl"]),
    "Message": obj({"folder": {"type": "string"}, "type": {"type": "string", "minLength": 1, "maxLength": 40},
                    "parameters": {"type": "object"}}, ["folder", "type"]),
    "Published": obj({"topic": {"type": "string"}, "type": {"type": "string"}}, ["topic", "type"]),
    "Health": obj({"status": {"type": "string", "enum": ["ok", "degraded", "down"]},
                   "checks": {"type": "object", "additionalProperties": obj(
                       {"ok": {"type": "boolean"}, "detail": {"type": "string"}}, ["ok", "detail"])},
                   "persister": nullable("object"), "broker_plugin": nullable("object")},
                  ["status", "checks"]),
    # --- controller life cycle (PIN provisioning, status, watchdog, phone) ----------
    "NewPin": obj({"pin": {"type": "string", "description": "show this to the person setting it up"},
                   "pin_code": {"type": "string", "description": "keep secret: needed to collect the key"},
                   "expires_at": TS}, ["pin", "pin_code", "expires_at"]),
    "PinAttach": obj({"controller": {"type": "string", "description": "controller folder (created if missing)"}},
                     ["controller"]),
    "PinAttached": obj({"pin": {"type": "string"}, "controller": {"type": "string"}, "attached_at": TS,
                        "expires_at": TS}, ["pin", "controller", "attached_at", "expires_at"]),
    "PinClaim": obj({"status": {"type": "string", "enum": ["waiting", "ready"]},
                     "controller": {"type": "string"},
                     "key": {"type": "string", "description": "the controller's new API key: shown once"}},
                    ["status"]),
    "ControllerStatus": obj({
        "path": {"type": "string"}, "client_version": nullable("string"), "last_connect": NTS,
        "last_message": NTS, "status": nullable("object"), "status_at": NTS,
        "watchdog": obj({"minutes": nullable("integer"), "recipients": {"type": "array", "items": {"type": "string"}},
                         "alerted_at": NTS}, ["minutes", "recipients", "alerted_at"])},
        ["path", "client_version", "last_connect", "last_message", "status", "status_at", "watchdog"]),
    "WatchdogSet": obj({"minutes": nullable("integer", minimum=1, maximum=43200,
                                            description="silence before an alert; null turns it off"),
                        "recipients": {"type": "array", "maxItems": 10, "items": {"type": "string"},
                                       "description": "emails or phone numbers of the organization's users"}},
                       ["minutes"], additionalProperties=False),
    "ValuesWrite": obj({"values": {"type": "object", "minProperties": 1, "maxProperties": 1000,
                                   "description": "absolute sequence path -> value", "additionalProperties": ANY},
                        "timestamp": {"type": "string", "description": "ISO 8601, for every value"}}, ["values"]),
    "ValuesWritten": obj({"stored": {"type": "integer"}, "values": {"type": "array", "items": ref("WriteResult")}},
                         ["stored", "values"]),
    "Phone": obj({"user_id": {"type": "integer"}, "phone": nullable("string")}, ["user_id", "phone"]),
    "PhoneSet": obj({"phone": nullable("string", description="E.164, e.g. +15551234567; null clears it")}),
}


def _json(schema: dict[str, Any], description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": {J: {"schema": schema}}}


def _body(schema: dict[str, Any], required: bool = True, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    content: dict[str, Any] = {J: {"schema": schema}}
    content.update(extra or {})
    return {"required": required, "content": content}


def _q(name: str, schema: dict[str, Any], description: str = "") -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": description}


def _p(name: str, schema: dict[str, Any], description: str = "") -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": schema, "description": description}


PATH_PARAM = _p("path", {"type": "string", "pattern": r"^[A-Za-z0-9_.\-]+(/[A-Za-z0-9_.\-]+)*$"},
                "resource path, e.g. acme/greenhouse/pi-01/temperature (slashes unescaped)")
INT32 = 2**31 - 1
GRANT_ID = {**_q("id", {"type": "integer", "minimum": 1, "maximum": 2**62}), "required": True}
USER_Q = _q("user_id", {"type": "integer", "minimum": 1, "maximum": INT32})
USER_ID = _p("user_id", {"type": "integer", "minimum": 1, "maximum": INT32})
ORG_NAME = _p("name", {"type": "string", "pattern": r"^[A-Za-z0-9_.\-]{1,100}$"})
PIN_PARAM = _p("pin", {"type": "string", "pattern": "^[2-9A-HJ-NP-Za-hj-np-z-]{6,12}$"}, "e.g. 7K3Q9X")
TIME = {"type": "string", "description": "ISO 8601 (UTC if no offset) or epoch seconds"}


def op(summary: str, tag: str, responses: dict[str, Any], *, params: list[dict[str, Any]] | None = None,
       body: dict[str, Any] | None = None, public: bool = False, description: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {"summary": summary, "tags": [tag], "responses": {
        **responses, "default": _json(ref("Error"), "an error: {error: {code, message}}")}}
    if description:
        out["description"] = description
    if params:
        out["parameters"] = params
    if body:
        out["requestBody"] = body
    if public:
        out["security"] = []
    return out


RAW_FILE = {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
            "multipart/form-data": {"schema": obj({"file": {"type": "string", "format": "binary"}}, ["file"])}}
FILE_BODY = {"required": True, "content": RAW_FILE}
RES = "/api/v1/resources/{path}"

PATHS: dict[str, Any] = {
    # --- auth -----------------------------------------------------------------
    "/api/v1/login": {"post": op("Log in: sets the session cookie", "auth", {"200": _json(ref("LoginResult"))},
                                 body=_body(ref("Login")), public=True,
                                 description="Rate-limited per account and address: 429 with Retry-After.")},
    "/api/v1/logout": {"post": op("Log out: clears the session cookies", "auth",
                                  {"204": {"description": "logged out"}}, public=True)},
    "/api/v1/me": {"get": op("Who am I", "auth", {"200": _json(ref("Me"))})},
    "/api/v1/mqtt-token": {"post": op("A short-lived MQTT token for the browser", "auth",
                                      {"200": _json(ref("MqttToken"))},
                                      description="Connect to `url` with `username` and the token as "
                                                  "password. Users only.")},
    # --- resources ------------------------------------------------------------
    "/api/v1/resources": {"get": op("Top-level folders the caller can read", "resources",
                                    {"200": _json(ref("TopFolders"))}),
                          "put": op("Many sequence values at once (rhizo-compatible)", "resources",
                                    {"200": _json(ref("ValuesWritten"))}, body=_body(ref("ValuesWrite"), extra={
                                        "application/x-www-form-urlencoded": {"schema": obj({
                                            "values": {"type": "string", "description": "the object as JSON"},
                                            "timestamp": {"type": "string"}}, ["values"])}}),
                                    description="Needs write access to every sequence; all or nothing. "
                                                "The form (values as JSON text) is rhizo-server's.")},
    RES: {
        "get": op("Read a resource", "resources", {
            "200": {"description": "folder: a page of children; sequence: spec and latest value; "
                                   "file: its content (meta=true: metadata)",
                    "content": {J: {"schema": {"anyOf": [ref("Resource"), ref("RevisionValue")]}},
                                "*/*": {"schema": {"type": "string", "format": "binary"}}},
                    "headers": {"X-Access": {"description": "on JSON answers: the caller's own level here",
                                             "schema": {"type": "string", "enum": ["read", "write", "admin"]}}}}},
            params=[PATH_PARAM, _q("limit", {"type": "integer", "minimum": 1, "maximum": 1000}),
                    _q("after", {"type": "string"}, "child name to continue after"),
                    _q("meta", {"type": "boolean"}, "a file's metadata instead of its content"),
                    _q("revision", {"type": "integer", "minimum": 1, "maximum": 2**62}, "an older revision's id")],
            description="`GET /resources/{path}/history` (when no resource is named so) answers as "
                        "`GET /history/{path}`."),
        "post": op("Create a resource", "resources", {"201": _json(ref("Resource"), "created")},
                   params=[PATH_PARAM, _q("type", {"type": "string", "enum": ["file"]},
                                          "force a file upload even for a JSON body")],
                   body=_body(ref("NewResource"), extra=RAW_FILE),
                   description="JSON creates a folder, controller, sequence or text file; any other "
                               "body (raw or multipart `file`) creates a file."),
        "put": op("Set a file's content or a sequence's value", "resources", {
            "200": {"description": "the stored value or the file's new revision", "content": {J: {
                "schema": {"anyOf": [ref("WriteResult"), ref("Resource")]}}}}},
            params=[PATH_PARAM], body=_body(ref("SequenceWrite"), extra=RAW_FILE)),
        "patch": op("Rename, move, or change attributes or a sequence's spec", "resources",
                    {"200": _json(ref("Resource"))}, params=[PATH_PARAM], body=_body(ref("ResourcePatch"))),
        "delete": op("Delete (soft)", "resources", {"200": _json(ref("Deleted"))},
                     params=[PATH_PARAM, _q("recursive", {"type": "boolean"}, "needed for a folder with children")]),
    },
    "/api/v1/revisions/{path}": {"get": op("A file's or sequence's revisions, newest first", "resources",
                                           {"200": _json(ref("Revisions"))},
                                           params=[PATH_PARAM, _q("limit", {"type": "integer", "minimum": 1,
                                                                            "maximum": 1000}),
                                                   _q("before", TIME, "page: next_before of the last page")])},
    "/api/v1/history/{path}": {"get": op(
        "A sequence's values over time, downsampled or as CSV", "resources", {
            "200": {"description": "values, buckets (points=N) or CSV (format=csv)",
                    "content": {J: {"schema": ref("History")}, "text/csv": {"schema": {"type": "string"}}}}},
        params=[PATH_PARAM, _q("start", TIME), _q("end", TIME, "exclusive"),
                _q("count", {"type": "integer", "minimum": 1, "maximum": 10000}),
                _q("order", {"type": "string", "enum": ["asc", "desc"]}),
                _q("points", {"type": "integer", "minimum": 1, "maximum": 10000},
                   "about this many buckets of count/min/max/mean (numeric sequences)"),
                _q("format", {"type": "string", "enum": ["json", "csv"]})])},
    # --- permissions ----------------------------------------------------------
    "/api/v1/permissions/{path}": {
        "get": op("Permissions on a folder", "permissions", {"200": _json(ref("Permissions"))},
                  params=[PATH_PARAM]),
        "post": op("Grant a permission", "permissions", {"201": _json(ref("Permission"), "granted")},
                   params=[PATH_PARAM], body=_body(ref("NewPermission"))),
        "delete": op("Revoke a permission", "permissions", {"204": {"description": "revoked"}},
                     params=[PATH_PARAM, GRANT_ID]),
    },
    # --- users and organizations ----------------------------------------------
    "/api/v1/users": {
        "get": op("Users the caller may see", "users", {"200": _json(ref("Users"))},
                  params=[_q("email", {"type": "string"}, "one exact address (system and organization admins): "
                                                          "that user, or none")]),
        "post": op("Create a user", "users", {"201": _json(ref("User"), "created")}, body=_body(ref("NewUser"))),
    },
    "/api/v1/users/{user_id}": {
        "get": op("A user", "users", {"200": _json(ref("User"))}, params=[USER_ID]),
        "patch": op("Change a user", "users", {"200": _json(ref("User"))}, params=[USER_ID],
                    body=_body(ref("UserPatch"))),
        "delete": op("Delete a user (revokes their keys)", "users", {"204": {"description": "deleted"}},
                     params=[USER_ID]),
    },
    "/api/v1/organizations": {
        "get": op("Organizations the caller belongs to (all, for system admins)", "organizations",
                  {"200": _json(ref("Organizations"))}),
        "post": op("Create an organization and its folder", "organizations",
                   {"201": _json(ref("Organization"), "created")}, body=_body(ref("NewOrganization"))),
    },
    "/api/v1/organizations/{name}": {"get": op("An organization", "organizations",
                                               {"200": _json(ref("Organization"))}, params=[ORG_NAME])},
    "/api/v1/organizations/{name}/members": {"get": op("Members", "organizations", {"200": _json(ref("Members"))},
                                                       params=[ORG_NAME])},
    "/api/v1/organizations/{name}/members/{user_id}": {
        "put": op("Add a member or set their role", "organizations", {"200": _json(ref("Membership"))},
                  params=[ORG_NAME, USER_ID], body=_body(ref("MembershipRole"), required=False)),
        "delete": op("Remove a member", "organizations", {"204": {"description": "removed"}},
                     params=[ORG_NAME, USER_ID]),
    },
    # --- keys -------------------------------------------------------------------
    "/api/v1/keys": {
        "get": op("API keys: yours, a controller's, or a user's", "keys", {"200": _json(ref("ApiKeys"))},
                  params=[_q("controller", {"type": "string"}), USER_Q,
                          _q("include_revoked", {"type": "boolean"})]),
        "post": op("Create an API key (the secret is shown once)", "keys", {"201": _json(ref("ApiKey"), "created")},
                   body=_body(ref("NewApiKey"), required=False)),
    },
    "/api/v1/keys/{prefix}": {"delete": op(
        "Revoke a key (its live MQTT connections are closed within seconds)", "keys",
        {"200": _json(ref("ApiKey"))}, params=[_p("prefix", {"type": "string", "pattern": "^[a-z2-7]{10}$"})])},
    # --- controller life cycle -------------------------------------------------------
    "/api/v1/pins": {"post": op(
        "Ask for a provisioning PIN (a controller does this)", "controllers",
        {"201": _json(ref("NewPin"), "created")}, public=True,
        description="Rate-limited per client address (PIN_CREATE_PER_HOUR). The PIN lives PIN_TTL_SECONDS.")},
    "/api/v1/pins/{pin}": {
        "put": op("Attach a PIN to a controller folder (needs write access there)", "controllers",
                  {"200": _json(ref("PinAttached"))}, params=[PIN_PARAM], body=_body(ref("PinAttach"))),
        "get": op("Collect the controller's key (polled by the controller)", "controllers",
                  {"200": _json(ref("PinClaim"), "waiting, or ready with the key (once)")}, public=True,
                  params=[PIN_PARAM, {**_q("pin_code", {"type": "string", "minLength": 1}), "required": True}],
                  description="403 for a wrong pin code (PIN_MAX_ATTEMPTS kill the PIN), 404 for an unknown, "
                              "expired or dead PIN, 409 once the key was collected."),
    },
    "/api/v1/controllers/{path}": {"get": op(
        "A controller's status: version, last connect and message, reported status, watchdog", "controllers",
        {"200": _json(ref("ControllerStatus"))}, params=[PATH_PARAM])},
    "/api/v1/watchdog/{path}": {"put": op(
        "Set or clear a controller's watchdog (needs write access)", "controllers",
        {"200": _json(ref("ControllerStatus"))}, params=[PATH_PARAM], body=_body(ref("WatchdogSet")))},
    "/api/v1/users/{user_id}/phone": {
        "get": op("A user's phone number (yourself, or any as system admin)", "users", {"200": _json(ref("Phone"))},
                  params=[USER_ID]),
        "put": op("Set or clear a user's phone number for text messages", "users", {"200": _json(ref("Phone"))},
                  params=[USER_ID], body=_body(ref("PhoneSet"))),
    },
    # --- messages ---------------------------------------------------------------
    "/api/v1/messages": {"post": op("Publish a message to a folder's topic", "messages",
                                    {"202": _json(ref("Published"), "accepted by the broker")},
                                    body=_body(ref("Message")),
                                    description="Needs write access to the folder. `update_sequence` "
                                                "messages are stored by the persister.")},
    # --- operations ----------------------------------------------------------------
    "/api/v1/health": {"get": op("Health of the database, bulk storage, broker and persister", "operations",
                                 {"200": _json(ref("Health")), "503": _json(ref("Health"), "a dependency is down")},
                                 public=True)},
    "/health": {"get": op("The same health report at the root, for load balancers", "operations",
                          {"200": _json(ref("Health")), "503": _json(ref("Health"), "a dependency is down")},
                          public=True)},
    "/metrics": {"get": op("Prometheus metrics", "operations", {"200": {
        "description": "text exposition format", "content": {"text/plain": {"schema": {"type": "string"}}}}},
        public=True)},
    "/api/v1/openapi.json": {"get": op("This document", "operations", {"200": _json({"type": "object"})},
                                       public=True)},
    "/api/v1/docs": {"get": op("Interactive API docs", "operations", {"200": {
        "description": "HTML", "content": {"text/html": {"schema": {"type": "string"}}}}}, public=True)},
}

DOCUMENT: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {"title": "hub HTTP API", "version": "1",
             "description": "Resources, history, users, organizations, API keys, permissions, MQTT tokens "
                            "and messages. Errors are always `{\"error\": {\"code\", \"message\"}}`. "
                            "Authenticate with `Authorization: Bearer <API key>`, or log in for a session "
                            "cookie; cookie-authenticated writes need the `X-CSRF-Token` header."},
    "servers": [{"url": "/"}],
    "security": [{"bearer": []}, {"basic": []}, {"session": [], "csrf": []}],
    "components": {
        "schemas": SCHEMAS,
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
