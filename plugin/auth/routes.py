"""JSON API of accounts: login, refresh, logout, own account, users, API keys, audit."""

import dataclasses

from plugin.auth.accounts import AccountError
from plugin.auth.guard import SESSION_COOKIE, cookie
from plugin.http import HttpError, Response, int_param
from plugin.worklist.query import studies_of_patient


def session_cookie(token, max_age, secure):
    """The browser's session: HttpOnly (no script reads it), SameSite=Lax, path /
    (the viewer's DICOMweb requests need it too)."""
    flags = "; Secure" if secure else ""
    return f"{SESSION_COOKIE}={token}; Path=/; HttpOnly; SameSite=Lax; Max-Age={int(max_age)}{flags}"


def is_https(request, settings):
    return settings.secure_cookies or request.headers.get("x-forwarded-proto", "") == "https"


def token_answer(token, claims, user_public, settings, request, now):
    body = {
        "access_token": token,
        "token_type": "Bearer",
        "expires_in": max(0, claims.expires - int(now)),
        "csrf_token": claims.csrf,
        "user": user_public,
    }
    cookie_value = session_cookie(token, settings.session_hours * 3600, is_https(request, settings))
    return Response.json(body, headers={"Set-Cookie": cookie_value, "Cache-Control": "no-store"})


def json_fields(request, *required):
    data = request.json()
    missing = [name for name in required if name not in data]
    if missing:
        raise HttpError(400, f"missing field(s): {', '.join(missing)}")
    return data


def account_errors(handler):
    """AccountError (and the audit log's ValueError for bad filters) -> HttpError,
    so handlers can just call the services."""

    def wrapped(request, **params):
        try:
            return handler(request, **params)
        except AccountError as error:
            raise HttpError(error.status, error.message) from None
        except (ValueError, OverflowError) as error:  # OverflowError: a date or number out of range
            raise HttpError(400, str(error)) from None

    wrapped.__name__ = handler.__name__
    return wrapped


def register(router, accounts, apikeys, audit, settings, clock):
    route = lambda method, pattern: lambda f: router.add(method, pattern, account_errors(f))  # noqa: E731

    @route("POST", "/pacs/api/auth/login")
    def login(request):
        # JSON only: a cross-site form cannot send it without a CORS preflight.
        if not request.headers.get("content-type", "").startswith("application/json"):
            raise HttpError(415, "send the credentials as application/json")
        data = json_fields(request, "username", "password")
        token, claims, user = accounts.login(data["username"], data["password"], request.client_ip)
        return token_answer(token, claims, user.public(), settings, request, clock())

    @route("POST", "/pacs/api/auth/refresh")
    def refresh(request):
        scheme, _, credential = request.headers.get("authorization", "").partition(" ")
        token = credential.strip() if scheme.lower() == "bearer" else cookie(request.headers, SESSION_COOKIE)
        if not token:
            raise HttpError(401, "login required")
        token, claims = accounts.refresh(token, request.client_ip)
        return token_answer(token, claims, accounts.get_user(claims.user_id).public(), settings, request, clock())

    @route("POST", "/pacs/api/auth/logout")
    def logout(request):
        accounts.logout(request.principal, request.client_ip)
        expired = session_cookie("", 0, is_https(request, settings))
        return Response.json({"status": "logged out"}, headers={"Set-Cookie": expired})

    @route("GET", "/pacs/api/me")
    def me(request):
        principal = request.principal
        user = accounts.get_user(principal.user_id)
        return Response.json(dict(user.public(), role=principal.role, via=principal.via, csrf_token=principal.csrf))

    @route("POST", "/pacs/api/me/password")
    def change_password(request):
        data = json_fields(request, "current_password", "new_password")
        accounts.change_password(request.principal, data["current_password"], data["new_password"], request.client_ip)
        return Response.json({"status": "password changed"})

    @route("GET", "/pacs/api/users")
    def list_users(request):
        return Response.json({"items": [u.public() for u in accounts.list_users()]})

    @route("POST", "/pacs/api/users")
    def create_user(request):
        data = json_fields(request, "username", "password", "role")
        user = accounts.create_user(
            data["username"],
            data["password"],
            data["role"],
            data.get("display_name", ""),
            data.get("referring_names", []),
            actor=request.principal,
        )
        return Response.json(user.public(), status=201)

    @route("GET", "/pacs/api/users/{user_id}")
    def get_user(request, user_id):
        return Response.json(accounts.get_user(int_param(user_id, "user id")).public())

    @route("PUT", "/pacs/api/users/{user_id}")
    def update_user(request, user_id):
        data = request.json()
        unknown = set(data) - {"role", "display_name", "referring_names", "disabled"}
        if unknown:
            raise HttpError(400, f"unknown field(s): {', '.join(sorted(unknown))}")
        if "disabled" in data and not isinstance(data["disabled"], bool):
            raise HttpError(400, "disabled must be true or false")
        user = accounts.update_user(int_param(user_id, "user id"), actor=request.principal, **data)
        return Response.json(user.public())

    @route("POST", "/pacs/api/users/{user_id}/password")
    def reset_password(request, user_id):
        data = json_fields(request, "password")
        accounts.reset_password(int_param(user_id, "user id"), data["password"], request.principal)
        return Response.json({"status": "password reset; the user must change it at next login"})

    @route("GET", "/pacs/api/apikeys")
    def list_keys(request):
        return Response.json({"items": [k.public() for k in apikeys.list()]})

    @route("POST", "/pacs/api/apikeys")
    def create_key(request):
        data = json_fields(request, "name", "user_id")
        key, row = apikeys.create(
            data["name"],
            int_param(data["user_id"], "user_id"),
            data.get("role"),
            data.get("expires_days"),
            request.principal,
        )
        return Response.json(dict(row.public(), key=key), status=201)

    @route("DELETE", "/pacs/api/apikeys/{key_id}")
    def revoke_key(request, key_id):
        return Response.json(apikeys.revoke(int_param(key_id, "key id"), request.principal).public())

    @route("GET", "/pacs/api/audit")
    def audit_entries(request):
        items, total = audit.query(**audit_filters(request))
        return Response.json({"items": items, "total": total})

    @route("GET", "/pacs/api/audit.csv")
    def audit_csv(request):
        filters = audit_filters(request)
        filters.pop("page"), filters.pop("page_size")
        audit.record(
            "export",
            username=request.principal.username,
            role=request.principal.role,
            address=request.client_ip,
            details={"what": "audit log csv"},
        )
        body = audit.export_csv(**filters).encode("utf-8")
        return Response(
            200, body, "text/csv; charset=utf-8", {"Content-Disposition": 'attachment; filename="audit.csv"'}
        )

    @route("GET", "/pacs/api/audit/verify")
    def audit_verify(request):
        return Response.json(dataclasses.asdict(audit.verify()))


def audit_filters(request):
    """The audit trail's filters from the query; ``patient`` (an ID or a name) stands
    for the studies of the patients it names."""
    query = request.query
    study_uid = query.get("study_uid") or None
    if query.get("patient", "").strip():
        of_patient = studies_of_patient(query["patient"])
        study_uid = [uid for uid in of_patient if study_uid in (None, uid)]
    return {
        "username": query.get("user") or None,
        "action": query.get("action") or None,
        "study_uid": study_uid,
        "outcome": query.get("outcome") or None,
        "date_from": query.get("date_from") or None,
        "date_to": query.get("date_to") or None,
        "page": int_param(query.get("page", "1"), "page"),
        "page_size": int_param(query.get("page_size", "50"), "page_size"),
    }
