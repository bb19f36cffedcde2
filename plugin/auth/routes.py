"""JSON API of accounts: login, refresh, logout, own account, users, API keys, audit.
Each handler gets the App."""

import dataclasses
import datetime
import time
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, WithJsonSchema, model_validator

from plugin.audit import MAX_PAGE_SIZE
from plugin.auth.guard import SESSION_COOKIE, cookie
from plugin.errors import Invalid, Unauthenticated, Unsupported
from plugin.http import DB_INT, Response, whole_number
from plugin.listquery import Date, ListQuery
from plugin.listquery import Text as QueryText
from plugin.listquery import Whole as QueryWhole
from plugin.models import MAX_SEARCH_TEXT, studies_of_patient
from plugin.permissions import AUTHENTICATED, PUBLIC, ROLES
from plugin.routing import Route, validate

# Also written into the viewer's keep-alive script (plugin/viewer/app_config.py).
REFRESH = "/pacs/api/auth/refresh"

USERS = "/pacs/api/users"
USER = "/pacs/api/users/{id}"
KEYS = "/pacs/api/apikeys"
LAST_AUDIT_PAGE = (DB_INT - 1) // MAX_PAGE_SIZE + 1  # the database's integers hold the offset of every page


def session_cookie(token, max_age, secure):
    """The browser's session: HttpOnly (no script reads it), SameSite=Lax, path /
    (the viewer's DICOMweb requests need it too)."""
    flags = "; Secure" if secure else ""
    return f"{SESSION_COOKIE}={token}; Path=/; HttpOnly; SameSite=Lax; Max-Age={int(max_age)}{flags}"


def is_https(request, settings):
    return settings.secure_cookies or request.headers.get("x-forwarded-proto", "") == "https"


def token_answer(token, claims, user_public, settings, request):
    body = {
        "access_token": token,
        "token_type": "Bearer",
        "expires_in": max(0, claims.expires - int(time.time())),
        "csrf_token": claims.csrf,
        "user": user_public,
    }
    cookie_value = session_cookie(token, settings.session_hours * 3600, is_https(request, settings))
    return Response.json(body, headers={"Set-Cookie": cookie_value, "Cache-Control": "no-store"})


# --- bodies ---------------------------------------------------------------------------
# The services check the values they are given and say what is wrong in their own words:
# a body's fields reach them as sent, typed here for the OpenAPI document.

Text = Annotated[Any, WithJsonSchema({"type": "string"})]
Whole = Annotated[Any, WithJsonSchema({"type": "integer"})]
Flag = Annotated[Any, WithJsonSchema({"type": "boolean"})]
Names = Annotated[Any, WithJsonSchema({"type": "array", "items": {"type": "string"}})]
Role = Annotated[Any, WithJsonSchema({"enum": list(ROLES)})]


class Body(BaseModel):
    """A JSON object with every required field present ("missing field(s): ..." otherwise)."""

    @model_validator(mode="before")
    @classmethod
    def required_fields(cls, data):
        missing = [name for name, field in cls.model_fields.items() if field.is_required() and name not in data]
        if missing:
            raise ValueError(f"missing field(s): {', '.join(missing)}")
        return data


class Credentials(Body):
    username: Text
    password: Text


class PasswordChange(Body):
    current_password: Text
    new_password: Text


class NewUser(Body):
    username: Text
    password: Text
    role: Role
    display_name: Text = ""
    referring_names: Names = []


class UserChanges(Body):
    """Only the fields sent are changed."""

    role: Text = None
    display_name: Text = None
    referring_names: Names = None
    disabled: Flag = None

    @model_validator(mode="before")
    @classmethod
    def known_fields(cls, data):
        unknown = set(data) - set(cls.model_fields)
        if unknown:
            raise ValueError(f"unknown field(s): {', '.join(sorted(unknown))}")
        if "disabled" in data and not isinstance(data["disabled"], bool):
            raise ValueError("disabled must be true or false")
        return data


class PasswordReset(Body):
    password: Text


class NewApiKey(Body):
    name: Text
    user_id: Whole
    role: Text = None
    expires_days: Whole = None


class Token(BaseModel):
    """A login's answer; the session cookie carries the same token."""

    access_token: str
    token_type: Literal["Bearer"]
    expires_in: int
    csrf_token: str
    user: dict


class AuditQuery(ListQuery):
    """The audit trail's filters (each optional) and page."""

    user: str = Field("", description="username")
    action: str = Field("", description="action name")
    study_uid: str = Field("", description="StudyInstanceUID")
    patient: Annotated[str, QueryText(MAX_SEARCH_TEXT)] = Field(
        "", description="a patient ID, or words of a patient's name: entries of their studies"
    )
    outcome: str = Field("", description="success, failure, denied")
    date_from: Annotated[datetime.date | None, Date(times=True)] = Field(
        None, description="YYYY-MM-DD (or an ISO date-time)"
    )
    date_to: Annotated[datetime.date | None, Date(times=True)] = Field(
        None, description="YYYY-MM-DD, the whole day (or an ISO date-time)"
    )
    page: Annotated[int, QueryWhole(maximum=LAST_AUDIT_PAGE)] = Field(1, description="1-based")
    page_size: Annotated[int, QueryWhole()] = Field(50, description=f"at most {MAX_PAGE_SIZE}")


# --- handlers -------------------------------------------------------------------------


def login(app, request):
    # JSON only: a cross-site form cannot send it without a CORS preflight.
    if not request.headers.get("content-type", "").startswith("application/json"):
        raise Unsupported("send the credentials as application/json")
    credentials = validate(Credentials, request.json(), "body")
    token, claims, user = app.accounts.login(credentials.username, credentials.password, request.client_ip)
    return token_answer(token, claims, user.public(), app.settings, request)


def refresh(app, request):
    scheme, _, credential = request.headers.get("authorization", "").partition(" ")
    token = credential.strip() if scheme.lower() == "bearer" else cookie(request.headers, SESSION_COOKIE)
    if not token:
        raise Unauthenticated("login required")
    token, claims = app.accounts.refresh(token, request.client_ip)
    user = app.accounts.get_user(claims.user_id)
    return token_answer(token, claims, user.public(), app.settings, request)


def logout(app, request):
    app.accounts.logout(request.principal, request.client_ip)
    expired = session_cookie("", 0, is_https(request, app.settings))
    return Response.json({"status": "logged out"}, headers={"Set-Cookie": expired})


def me(app, request):
    principal = request.principal
    user = app.accounts.get_user(principal.user_id)
    return dict(user.public(), role=principal.role, via=principal.via, csrf_token=principal.csrf)


def change_password(app, request, body):
    app.accounts.change_password(request.principal, body.current_password, body.new_password, request.client_ip)
    return {"status": "password changed"}


def list_users(app, request):
    return {"items": [user.public() for user in app.accounts.list_users()]}


def create_user(app, request, body):
    user = app.accounts.create_user(
        body.username, body.password, body.role, body.display_name, body.referring_names, actor=request.principal
    )
    return Response.json(user.public(), status=201)


def get_user(app, request, id):
    return app.accounts.get_user(whole_number(id, "user id")).public()


def update_user(app, request, id, body):
    changes = body.model_dump(exclude_unset=True)
    return app.accounts.update_user(whole_number(id, "user id"), actor=request.principal, **changes).public()


def reset_password(app, request, id, body):
    app.accounts.reset_password(whole_number(id, "user id"), body.password, request.principal)
    return {"status": "password reset; the user must change it at next login"}


def list_keys(app, request):
    return {"items": [key.public() for key in app.apikeys.list()]}


def create_key(app, request, body):
    key, row = app.apikeys.create(
        body.name, whole_number(body.user_id, "user_id"), body.role, body.expires_days, request.principal
    )
    return Response.json(dict(row.public(), key=key), status=201)


def revoke_key(app, request, id):
    return app.apikeys.revoke(whole_number(id, "key id"), request.principal).public()


def audit_entries(app, request, query):
    items, total = read_audit(app.audit.query, audit_filters(query))
    return {"items": items, "total": total}


def audit_csv(app, request, query):
    filters = audit_filters(query)
    filters.pop("page"), filters.pop("page_size")
    app.audit.record(
        "export",
        username=request.principal.username,
        role=request.principal.role,
        address=request.client_ip,
        details={"what": "audit log csv"},
    )
    body = read_audit(app.audit.export_csv, filters).encode("utf-8")
    return Response(200, body, "text/csv; charset=utf-8", {"Content-Disposition": 'attachment; filename="audit.csv"'})


def audit_verify(app, request):
    return dataclasses.asdict(app.audit.verify())


def audit_filters(query):
    """The audit trail's filters from its checked `AuditQuery`; ``patient`` (an ID or
    a name) stands for the studies of the patients it names."""
    study_uid = query.study_uid or None
    if query.patient:
        of_patient = studies_of_patient(query.patient)
        study_uid = [uid for uid in of_patient if study_uid in (None, uid)]
    return {
        "username": query.user or None,
        "action": query.action or None,
        "study_uid": study_uid,
        "outcome": query.outcome or None,
        "date_from": query.date_from,
        "date_to": query.date_to,
        "page": query.page,
        "page_size": query.page_size,
    }


def read_audit(read, filters):
    """``read(**filters)``, the audit trail's query or export. The trail refuses a filter
    it cannot apply (an unknown action, a date it cannot read) with ValueError: here,
    where the filters are the asker's, that is their bad input."""
    try:
        return read(**filters)
    except ValueError as error:
        raise Invalid(str(error)) from None


ROUTES = (
    Route(
        "POST",
        "/pacs/api/auth/login",
        login,
        PUBLIC,
        summary="Log in: a token and a session cookie (send {username, password} as application/json)",
        answer=Token,
        responses=(("415", "not sent as application/json"), ("423", "locked after repeated failures")),
    ),
    Route("POST", REFRESH, refresh, PUBLIC, summary="A new token for a session still open", answer=Token),
    Route("POST", "/pacs/api/auth/logout", logout, AUTHENTICATED, summary="End the session"),
    Route("GET", "/pacs/api/me", me, AUTHENTICATED, summary="The caller's account"),
    Route(
        "POST",
        "/pacs/api/me/password",
        change_password,
        AUTHENTICATED,
        summary="Change own password (ends the caller's other sessions)",
        body=PasswordChange,
        responses=(("423", "locked after repeated failures"),),
    ),
    Route("GET", USERS, list_users, "users.manage", summary="List users"),
    Route(
        "POST",
        USERS,
        create_user,
        "users.manage",
        summary="Create a user",
        body=NewUser,
        responses=(("201", "created"),),
    ),
    Route("GET", USER, get_user, "users.manage", summary="One user"),
    Route(
        "PUT",
        USER,
        update_user,
        "users.manage",
        summary="Change role, display name, referring names, disabled",
        body=UserChanges,
    ),
    Route(
        "POST",
        "/pacs/api/users/{id}/password",
        reset_password,
        "users.manage",
        summary="Reset a password",
        body=PasswordReset,
    ),
    Route("GET", KEYS, list_keys, "users.manage", summary="List API keys"),
    Route(
        "POST",
        KEYS,
        create_key,
        "users.manage",
        summary="Create an API key (the key is shown once)",
        body=NewApiKey,
        responses=(("201", "created; 'key' holds the secret"),),
    ),
    Route("DELETE", "/pacs/api/apikeys/{id}", revoke_key, "users.manage", summary="Revoke an API key"),
    Route(
        "GET", "/pacs/api/audit", audit_entries, "audit.read", summary="The audit trail, newest first", query=AuditQuery
    ),
    Route(
        "GET",
        "/pacs/api/audit.csv",
        audit_csv,
        "audit.read",
        summary="The audit trail as CSV (same filters)",
        query=AuditQuery,
    ),
    Route("GET", "/pacs/api/audit/verify", audit_verify, "audit.read", summary="Check the hash chain"),
)
