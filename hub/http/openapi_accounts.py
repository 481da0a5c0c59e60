"""The OpenAPI entries of the account routes (hub/http/routes/accounts.py): paths and
component schemas, merged into the document by hub/http/openapi.py. Request bodies refuse
unknown fields (additionalProperties false), as the handlers do."""

from __future__ import annotations

from typing import Any

from hub.http.openapi_schemas import EMAIL, FULL_NAME, ID, NTS, ORG_NAME, ROLE, TS, obj, password, ref, text
from hub.storage.accounts import CODE_PATTERN

J = "application/json"
CODE = {"type": "string", "pattern": CODE_PATTERN, "maxLength": 100,
        "description": "the code from the emailed link (after #/accept/ or #/reset/)"}
CLOSED: dict[str, Any] = {"additionalProperties": False}


def schemas(min_password_length: int) -> dict[str, Any]:
    pw = password(min_password_length)
    return {
        "InvitationNew": obj({"email": EMAIL, "role": ROLE}, ["email"], **CLOSED),
        "Invitation": obj({"id": {"type": "integer"}, "email": {"type": "string"},
                           "organization": {"type": "string"}, "role": ROLE, "expires_at": TS, "created_at": TS,
                           "existing_user": {"type": "boolean"}},
                          ["id", "email", "organization", "role", "expires_at", "created_at", "existing_user"]),
        "Invitations": obj({"invitations": {"type": "array", "items": ref("Invitation")}}, ["invitations"]),
        "CodeOnly": obj({"code": CODE}, ["code"], **CLOSED),
        "InvitationAccept": obj({"code": CODE, "password": pw, "full_name": FULL_NAME}, ["code"], **CLOSED),
        "InvitationAccepted": obj({"user": ref("User"), "organization": {"type": "string"},
                                   "created": {"type": "boolean"}, "csrf_token": {"type": "string"}},
                                  ["user", "organization", "created"]),
        "ResetAsk": obj({"email": EMAIL}, ["email"], **CLOSED),
        "ResetComplete": obj({"code": CODE, "password": pw}, ["code", "password"], **CLOSED),
        "PasswordChange": obj({"current_password": {"type": "string"}, "password": pw},
                              ["current_password", "password"], **CLOSED),
        "PasswordChanged": obj({"user": ref("User"), "csrf_token": {"type": "string"}}, ["user"]),
        "Accepted": obj({"message": {"type": "string"}}, ["message"]),
        "AccountRequestNew": obj({"email": EMAIL, "full_name": FULL_NAME, "organization": ORG_NAME,
                                  "message": text(1000)}, ["email"], **CLOSED),
        "AccountRequest": obj({"id": {"type": "integer"}, "email": {"type": "string"},
                               "full_name": {"type": "string"}, "organization": {"type": ["string", "null"]},
                               "message": {"type": "string"}, "created_at": NTS, "status": {"type": "string"},
                               "invitation": ref("Invitation")},
                              ["id", "email", "full_name", "organization", "message", "created_at", "status"]),
        "AccountRequests": obj({"requests": {"type": "array", "items": ref("AccountRequest")}}, ["requests"]),
        "AccountRequestApprove": obj({"organization": ORG_NAME, "role": ROLE}, None, **CLOSED),
    }


def _ok(name: str, description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": {J: {"schema": ref(name)}}}


def _body(name: str, required: bool = True) -> dict[str, Any]:
    return {"required": required, "content": {J: {"schema": ref(name)}}}


def paths(op: Any, org_param: dict[str, Any]) -> dict[str, Any]:
    """`op` is hub.http.openapi.op (the shared error response and security)."""
    inv_id = {"name": "id", "in": "path", "required": True, "schema": ID}
    req_id = {"name": "id", "in": "path", "required": True, "schema": ID}
    off = "404 while ACCOUNT_REQUESTS is off."
    same = ("The same 202 answer for any address, known or not (409 email_off without SMTP_HOST). "
            "Rate-limited per address asked "
            "for and per client address (ACCOUNT_EMAILS_PER_HOUR): 429 with Retry-After.")
    return {
        "/api/v1/organizations/{name}/invitations": {
            "post": op("createInvitation", "Invite someone by email to an organization (its admins)", "accounts",
                       {"201": _ok("Invitation", "created; the email is queued")}, params=[org_param],
                       body=_body("InvitationNew"),
                       description="A pending invitation to the same address is replaced. 409 for a member "
                                   "already; 409 email_off without SMTP_HOST."),
            "get": op("listInvitations", "An organization's pending invitations (its admins)", "accounts",
                      {"200": _ok("Invitations")}, params=[org_param]),
        },
        "/api/v1/organizations/{name}/invitations/{id}": {"delete": op(
            "cancelInvitation", "Cancel a pending invitation (its link stops working)", "accounts",
            {"204": {"description": "cancelled"}}, params=[org_param, inv_id])},
        "/api/v1/invitations/check": {"post": op(
            "checkInvitation", "What an invitation code is for", "accounts", {"200": _ok("Invitation")},
            body=_body("CodeOnly"), public=True,
            description="404 for an unknown code, 410 for a used, replaced or expired one.")},
        "/api/v1/invitations/accept": {"post": op(
            "acceptInvitation", "Accept an invitation: a new account with `password`, or (signed in) yours",
            "accounts", {"200": _ok("InvitationAccepted", "joined; a new account is signed in")},
            body=_body("InvitationAccept"), public=True,
            description="404 unknown code, 410 used or expired, 401 when the address has an account and "
                        "its user is not the one signed in, 422 weak password (or `password` missing for a new "
                        "account, or sent for an existing one). Nothing is created on error.")},
        "/api/v1/password-reset": {"post": op(
            "requestPasswordReset", "Email a password-reset link", "accounts",
            {"202": _ok("Accepted", "accepted")}, body=_body("ResetAsk"), public=True, description=same)},
        "/api/v1/password-reset/complete": {"post": op(
            "completePasswordReset", "Set a new password with a reset code: every session of the user ends",
            "accounts", {"204": {"description": "password set"}}, body=_body("ResetComplete"), public=True,
            description="404 unknown code, 410 used or expired, 422 weak password. API keys stay.")},
        "/api/v1/me/password": {"post": op(
            "changePassword", "Change your password (the current one needed); your other sessions end",
            "accounts", {"200": _ok("PasswordChanged")}, body=_body("PasswordChange"),
            description="403 for a wrong current password, 422 for a weak new one.")},
        "/api/v1/account-requests": {
            "post": op("requestAccount", "Ask for an account", "accounts", {"202": _ok("Accepted", "accepted")},
                       body=_body("AccountRequestNew"), public=True,
                       description=f"{same} A second request for a pending address updates it. {off}"),
            "get": op("listAccountRequests", "Pending account requests (system admins; organization admins: "
                      "those naming their organizations)", "accounts", {"200": _ok("AccountRequests")},
                      description=off),
        },
        "/api/v1/account-requests/{id}/approve": {"post": op(
            "approveAccountRequest", "Approve: the person is emailed an invitation", "accounts",
            {"200": _ok("AccountRequest")}, params=[req_id], body=_body("AccountRequestApprove", required=False),
            description=f"409 once decided; 422 when neither the request nor the body names an "
                        f"organization. {off}")},
        "/api/v1/account-requests/{id}/refuse": {"post": op(
            "refuseAccountRequest", "Refuse an account request", "accounts", {"200": _ok("AccountRequest")},
            params=[req_id], description=f"409 once decided. {off}")},
    }
