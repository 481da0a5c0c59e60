"""The component schemas of the OpenAPI document (hub/http/openapi.py).

Request schemas say exactly what the hub accepts: a request they allow is
never refused with 400 (only 401/403/404/409 for who or what it is, 422 for a
rule a schema cannot state: a weak password, a value a sequence's limits
refuse), and a request they refuse is always a 4xx. Every request body object
with named fields says `additionalProperties: false`, and `json_body` refuses
a field it does not name with 400, at any depth (hub/http/params.py
`known_fields`); free-form objects (attributes, a message's parameters, a
sequence's value) take any. The patterns come from the code that checks them (hub/paths.py,
hub/storage/users.py, hub/http/params.py).
"""

from __future__ import annotations

from typing import Any

from hub import paths
from hub.http.params import EPOCH_PATTERN, INT32
from hub.http.resource_ops import MAX_LIMIT, MAX_UNITS
from hub.storage.models import DataType, ResourceType
from hub.storage.users import EMAIL_PATTERN, MAX_EMAIL_LENGTH, MAX_PASSWORD_LENGTH, USER_NAME_PATTERN


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def nullable(kind: str, **kw: Any) -> dict[str, Any]:
    return {"type": [kind, "null"], **kw}


def obj(props: dict[str, Any], required: list[str] | None = None, **kw: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "object", "properties": props, **kw}
    if required:
        out["required"] = required
    return out


def text(max_length: int, **kw: Any) -> dict[str, Any]:
    return {"type": "string", "maxLength": max_length, **kw}


TS = {"type": "string", "format": "date-time"}
NTS = nullable("string", format="date-time")
ANY: dict[str, Any] = {}
ID = {"type": "integer", "minimum": 1, "maximum": INT32}
# enums are components, so a generated client names each once
ENUMS = {"Level": {"type": "string", "enum": ["read", "write", "admin"]},
         "Role": {"type": "string", "enum": ["member", "admin"]},
         "DataType": {"type": "string", "enum": [d.value for d in DataType]},
         "ResourceType": {"type": "string", "enum": [t.value for t in ResourceType]},
         "NewResourceType": {"type": "string", "enum": ["folder", "controller", "file", "sequence"]}}
LEVEL, ROLE, DATA_TYPE = ref("Level"), ref("Role"), ref("DataType")
PATH = text(paths.MAX_PATH_LENGTH, pattern=paths.PATH_PATTERN,
            description="a resource path: segments of letters, digits, '_', '.', '-' (not '.' or '..')")
SUBPATH = text(paths.MAX_PATH_LENGTH, pattern=paths.SUBPATH_PATTERN, description="a path inside an organization")
ORG_NAME = text(paths.MAX_SEGMENT_LENGTH, pattern=paths.SEGMENT_PATTERN)
EMAIL = text(MAX_EMAIL_LENGTH, pattern=EMAIL_PATTERN)
FULL_NAME = text(200)
# a stored value's time: an RFC 3339 date-time (at most 40 characters) or epoch seconds; null is now
TIME_IN = {"type": ["string", "number", "null"], "format": "date-time", "maxLength": 40,
           "description": "an RFC 3339 date-time or epoch seconds; not before 1970 nor more than "
                          "5 minutes in the future (else 422)"}
TIME_QUERY = {"anyOf": [{"type": "string", "format": "date-time"}, {"type": "string", "format": "date"},
                        {"type": "string", "pattern": EPOCH_PATTERN}],
              "description": "an RFC 3339 date-time, a date (midnight UTC) or epoch seconds; empty for none"}
PHONE_PATTERN = r"^(|([ \t\n\r\f\v().-]*\+)?[ \t\n\r\f\v().-]*([0-9][ \t\n\r\f\v().-]*){6,15})$"
PIN_PATTERN = r"^[ -]*([2-9A-HJKMNP-Za-hjkmnp-z][ -]*){6}$"
SPEC_FIELDS: dict[str, Any] = {
    "data_type": DATA_TYPE, "units": text(MAX_UNITS),
    "min_value": nullable("number", minimum=-MAX_LIMIT, maximum=MAX_LIMIT),
    "max_value": nullable("number", minimum=-MAX_LIMIT, maximum=MAX_LIMIT),
    "decimal_places": nullable("integer", minimum=0, maximum=15),
    "max_history": nullable("integer", minimum=1, maximum=INT32)}


USER_NAME = {"type": "string", "pattern": USER_NAME_PATTERN, "maxLength": 50,
             "description": "optional; log-in by it or by email (unique, compared in lower case)"}


def password(min_length: int) -> dict[str, Any]:
    return {"type": "string", "minLength": min_length, "maxLength": MAX_PASSWORD_LENGTH,
            "description": f"at most {MAX_PASSWORD_LENGTH} bytes in UTF-8 and 4 different characters (else 422)"}


def _closed(schemas: dict[str, Any]) -> dict[str, Any]:
    """Request bodies name all their fields: no other is accepted."""
    return {name: {**s, "additionalProperties": False} for name, s in schemas.items()}


def _requests(min_password_length: int) -> dict[str, Any]:
    return _closed({
        "NewResource": obj({
            "type": ref("NewResourceType"),
            "attributes": {"type": "object"},
            "content": {"type": "string", "description": "text content of a new file"},
            "content_type": {"type": "string"},
            "value": {"description": "a new sequence's first value"}, "timestamp": TIME_IN,
            **SPEC_FIELDS}, ["type"],
            examples=[{"type": "sequence", "data_type": "numeric", "units": "degC", "decimal_places": 1},
                      {"type": "folder", "attributes": {"location": "north bench"}}]),
        "ResourcePatch": obj({
            "path": {**PATH, "description": "new path: rename or move"},
            "attributes": {"type": "object", "description": "merged; a null value removes the attribute"},
            **SPEC_FIELDS}, additionalProperties=False, examples=[{"attributes": {"location": "south bench"}}]),
        "SequenceWrite": obj({"value": ANY, "timestamp": TIME_IN}, ["value"],
                             examples=[{"value": 21.5}, {"value": 21.5, "timestamp": "2026-05-01T12:00:00Z"}]),
        "ValuesWrite": obj({"values": {"type": "object", "minProperties": 1, "maxProperties": 1000,
                                       "propertyNames": PATH, "additionalProperties": ANY,
                                       "description": "sequence path -> value"},
                            "timestamp": TIME_IN}, ["values"],
                           examples=[{"values": {"acme/greenhouse/pi-01/temperature": 21.5}}]),
        "NewUser": obj({"email": EMAIL, "password": password(min_password_length), "full_name": FULL_NAME,
                        "user_name": USER_NAME,
                        "is_admin": {"type": "boolean"},
                        "organization": {**ORG_NAME, "description": "add to this organization"},
                        "role": ROLE}, ["email", "password"],
                       examples=[{"email": "ada@example.com", "password": "correct horse battery",
                                  "full_name": "Ada", "organization": "acme", "role": "member"}]),
        "UserPatch": obj({"full_name": FULL_NAME, "user_name": {**USER_NAME, "type": ["string", "null"]},
                          "password": password(min_password_length),
                          "current_password": {"type": "string",
                                               "description": "needed to change your own password"},
                          "is_admin": {"type": "boolean", "description": "system admins only, not their own"}},
                         additionalProperties=False),
        "NewOrganization": obj({"name": ORG_NAME, "full_name": FULL_NAME}, ["name"],
                               examples=[{"name": "acme", "full_name": "Acme Greenhouses"}]),
        "MembershipRole": obj({"role": ROLE}, examples=[{"role": "admin"}]),
        "NewApiKey": obj({"name": text(100), "controller": {**PATH, "description": "a controller folder's path"},
                          "user_id": {**ID, "description": "another user (system admins only)"}},
                         examples=[{"name": "greenhouse script"}]),
        "NewPermission": obj({"level": LEVEL, "user_id": ID, "organization": ORG_NAME, "controller": PATH},
                             ["level"], description="exactly one of user_id, organization, controller",
                             oneOf=[{"required": ["user_id"]}, {"required": ["organization"]},
                                    {"required": ["controller"]}],
                             examples=[{"level": "read", "organization": "acme"}]),
        "Login": obj({"email": {"type": "string", "description": "the email or the user name"},
                      "password": {"type": "string"}}, ["email", "password"],
                     examples=[{"email": "ada@example.com", "password": "correct horse battery"}]),
        "Message": obj({"folder": PATH, "type": {"type": "string", "minLength": 1, "maxLength": 40},
                        "parameters": {"type": "object"}}, ["folder", "type"],
                       examples=[{"folder": "acme/greenhouse/pi-01", "type": "reboot", "parameters": {}}]),
        "PinAttach": obj({"controller": {**SUBPATH, "description": "controller folder (created if missing)"}},
                         ["controller"], examples=[{"controller": "acme/greenhouse/pi-01"}]),
        "WatchdogSet": obj({"minutes": nullable("integer", minimum=1, maximum=43200,
                                                description="silence before an alert; null turns it off"),
                            "recipients": {"type": ["array", "string", "null"], "maxItems": 10,
                                           "items": {"type": "string"},
                                           "description": "emails or phone numbers of the organization's users "
                                                          "(a list, or comma-separated text); else 422"}},
                           ["minutes"], additionalProperties=False,
                           examples=[{"minutes": 30, "recipients": ["ada@example.com"]}, {"minutes": None}]),
        "PhoneSet": obj({"phone": nullable("string", pattern=PHONE_PATTERN,
                                           description="E.164, e.g. +15551234567; null or empty clears it")},
                        examples=[{"phone": "+15551234567"}, {"phone": None}]),
    })


RESPONSES: dict[str, Any] = {
    "Error": obj({"error": obj({"code": {"type": "string"}, "message": {"type": "string"}},
                               ["code", "message"])}, ["error"]),
    "SequenceSpec": obj(SPEC_FIELDS),
    "Resource": obj({
        "path": {"type": "string"}, "name": {"type": "string"},
        "type": ref("ResourceType"),
        "attributes": {"type": "object"}, "created_at": TS, "modified_at": TS,
        "sequence": ref("SequenceSpec"),
        "value": ANY, "timestamp": NTS, "revision": nullable("integer"), "size": {"type": "integer"},
        "children": {"type": "array", "items": ref("Resource")},
        "next": nullable("string", description="pass as `after` for the next page"),
        "total": {"type": "integer"}},
        ["path", "name", "type", "attributes", "created_at", "modified_at"]),
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
    "User": obj({"id": {"type": "integer"}, "email": {"type": "string"},
                 "user_name": nullable("string", description="log-in by it or by email"),
                 "full_name": {"type": "string"},
                 "is_admin": {"type": "boolean"}, "created_at": TS},
                ["id", "email", "full_name", "is_admin", "created_at"]),
    "Users": obj({"users": {"type": "array", "items": ref("User")}}, ["users"]),
    "Organization": obj({"name": {"type": "string"}, "full_name": {"type": "string"}, "created_at": TS,
                         "role": nullable("string", description="the caller's role in it")},
                        ["name", "full_name", "created_at"]),
    "Organizations": obj({"organizations": {"type": "array", "items": ref("Organization")}},
                         ["organizations"]),
    "Members": obj({"members": {"type": "array", "items": obj({"user": ref("User"), "role": {"type": "string"}},
                                                               ["user", "role"])}}, ["members"]),
    "Membership": obj({"organization": {"type": "string"}, "user_id": {"type": "integer"}, "role": ROLE},
                      ["organization", "user_id", "role"]),
    "ApiKey": obj({
        "prefix": {"type": "string"}, "name": {"type": "string"}, "owner": {"type": "string"},
        "user_id": nullable("integer"), "controller": nullable("string"), "created_by": nullable("integer"),
        "created_at": TS, "last_used_at": NTS, "revoked_at": NTS, "revoked_by": nullable("integer"),
        "last_used_from": nullable("string", description="the client's address at last_used_at"),
        "revoked": {"type": "boolean"},
        "key": {"type": "string", "description": "the secret: only in the create response, shown once"}},
        ["prefix", "name", "owner", "created_at", "revoked"]),
    "ApiKeys": obj({"keys": {"type": "array", "items": ref("ApiKey")}}, ["keys"]),
    "Permission": obj({"id": {"type": "integer"}, "path": {"type": "string"}, "level": LEVEL,
                       "user_id": nullable("integer"), "organization": nullable("string"),
                       "controller": nullable("string")}, ["id", "path", "level"]),
    "Permissions": obj({"permissions": {"type": "array", "items": ref("Permission")}}, ["permissions"]),
    "LoginResult": obj({"user": ref("User"), "csrf_token": {"type": "string"}}, ["user", "csrf_token"]),
    "Me": obj({"via": {"type": "string", "enum": ["session", "key"]},
               "user": {"anyOf": [ref("User"), {"type": "null"}]}, "controller": nullable("string"),
               "memberships": {"type": "array", "items": obj({"organization": {"type": "string"},
                                                               "role": {"type": "string"}})},
               "csrf_token": {"type": "string", "description": "session callers only"}},
              ["via", "user", "controller", "memberships"]),
    "MqttToken": obj({"token": {"type": "string"}, "username": {"type": "string"},
                      "url": {"type": "string", "description": "the websocket URL to connect to"},
                      "expires_at": {"type": "integer"}, "ttl": {"type": "integer"},
                      "mqtt_version": {"type": "integer", "enum": [4, 5],
                                       "description": "the MQTT protocol level to speak: 5, or 4 (3.1.1) on a "
                                                      "RabbitMQ broker"}},
                     ["token", "username", "url", "expires_at", "ttl", "mqtt_version"]),
    "Published": obj({"topic": {"type": "string"}, "type": {"type": "string"}}, ["topic", "type"]),
    "Health": obj({"status": {"type": "string", "enum": ["ok", "degraded", "down"]},
                   "failing": {"type": "array", "items": {"type": "string", "enum": [
                       "database", "bulk", "broker", "persister", "notifier", "history_blocks"]},
                       "description": "the parts that failed their check (names only)"},
                   "checks": {"type": "object", "description": "system admins and direct local callers only",
                              "additionalProperties": obj(
                                  {"ok": {"type": "boolean"}, "detail": {"type": "string"}}, ["ok", "detail"])},
                   "persister": nullable("object"), "broker_plugin": nullable("object"),
                   "corrupt_blocks": {"type": "array", "items": {"type": "object"},
                                      "description": "damaged history blocks (detail)"}},
                  ["status", "failing"]),
    "NewPin": obj({"pin": {"type": "string", "description": "show this to the person setting it up"},
                   "pin_code": {"type": "string", "description": "keep secret: needed to collect the key"},
                   "expires_at": TS}, ["pin", "pin_code", "expires_at"]),
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
    "ValuesWritten": obj({"stored": {"type": "integer"}, "values": {"type": "array", "items": ref("WriteResult")}},
                         ["stored", "values"]),
    "Phone": obj({"user_id": {"type": "integer"}, "phone": nullable("string")}, ["user_id", "phone"]),
}


def schemas(min_password_length: int) -> dict[str, Any]:
    """Every component schema; passwords need `min_password_length` (MIN_PASSWORD_LENGTH)."""
    return {**ENUMS, **RESPONSES, **_requests(min_password_length)}
