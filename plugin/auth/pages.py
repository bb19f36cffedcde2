"""Browser pages of accounts: login, logout, own account, user and API-key
administration, the audit log. Forms post urlencoded with a csrf_token field."""

import hmac
import json
import secrets
import weakref
from types import SimpleNamespace

from plugin.auth.guard import SESSION_COOKIE, cookie
from plugin.auth.models import User
from plugin.auth.routes import AuditQuery, audit_filters, is_https, read_audit, session_cookie
from plugin.errors import DomainError
from plugin.http import Response, http_status, whole_number
from plugin.models import studies_by_uid
from plugin.permissions import AUTHENTICATED, PUBLIC
from plugin.routing import Route
from plugin.webui import gettext as _
from plugin.webui import render
from plugin.webui.forms import checked_form, safe_next

LOGIN = "/pacs/login"
ACCOUNT = "/pacs/account"  # where a user told to change their password is sent
USERS = "/pacs/admin/users"
KEYS = "/pacs/admin/apikeys"
LOGIN_CSRF_COOKIE = "pacs_login_csrf"


def signed_in(request):
    """base.html's user and CSRF token for whoever asks (the navigation of an error page)."""
    principal = request.principal
    user = User.get_or_none(User.id == principal.user_id) if principal is not None else None
    return {"user": user, "csrf_token": principal.csrf or None} if user is not None else {}


def with_cookie(response, value):
    response.headers["Set-Cookie"] = value
    return response


# --- login and logout ----------------------------------------------------------------


def login_page(app, request, status=200, error=None, username="", messages=()):
    token = secrets.token_urlsafe(24)
    response = render(
        "login.html",
        request,
        status,
        csrf_token=token,
        error=error,
        messages=messages,
        username=username,
        next_url=safe_next(request.query.get("next")),
    )
    secure = "; Secure" if is_https(request, app.settings) else ""
    return with_cookie(
        response, f"{LOGIN_CSRF_COOKIE}={token}; Path={LOGIN}; HttpOnly; SameSite=Strict; Max-Age=3600{secure}"
    )


def show_login(app, request):
    if request.principal is not None:
        return Response.redirect(safe_next(request.query.get("next")))
    if cookie(request.headers, SESSION_COOKIE):  # still sent, but its session has ended (signing out clears it)
        return login_page(
            app,
            request,
            messages=[{"level": "warning", "text": _("Your session expired. Please sign in again.", request)}],
        )
    return login_page(app, request)


def submit_login(app, request):
    form = request.form()
    expected = cookie(request.headers, LOGIN_CSRF_COOKIE)
    if not expected or not hmac.compare_digest(form.get("csrf_token", "").encode(), expected.encode()):
        return login_page(app, request, 403, _("The form expired; please try again.", request))
    try:
        token, _claims, user = app.accounts.login(form.get("username", ""), form.get("password", ""), request.client_ip)
    except DomainError as error:
        return login_page(app, request, http_status(error), error.message, form.get("username", ""))
    target = ACCOUNT if user.must_change_password else safe_next(form.get("next"))
    cookie_value = session_cookie(token, app.settings.session_hours * 3600, is_https(request, app.settings))
    return with_cookie(Response.redirect(target), cookie_value)


def submit_logout(app, request):
    checked_form(request)
    app.accounts.logout(request.principal, request.client_ip)
    return with_cookie(Response.redirect(LOGIN), session_cookie("", 0, is_https(request, app.settings)))


# --- own account -----------------------------------------------------------------------


def context(app, request, **extra):
    """What every page shows of whoever is signed in: who they are and their CSRF token."""
    return dict(user=app.accounts.get_user(request.principal.user_id), csrf_token=request.principal.csrf, **extra)


def account(app, request):
    user = app.accounts.get_user(request.principal.user_id)
    messages = []
    if user.must_change_password:
        messages.append({"level": "warning", "text": _("Please choose a new password before you go on.", request)})
    return render("account.html", request, messages=messages, active_nav="account", **context(app, request))


def change_password(app, request):
    form = checked_form(request)
    if form.get("new_password", "") != form.get("confirm_password", ""):
        return render(
            "account.html",
            request,
            400,
            error=_("The two new passwords differ.", request),
            active_nav="account",
            **context(app, request),
        )
    try:
        app.accounts.change_password(
            request.principal, form.get("current_password", ""), form.get("new_password", ""), request.client_ip
        )
    except DomainError as error:
        return render(
            "account.html",
            request,
            http_status(error),
            error=error.message,
            active_nav="account",
            **context(app, request),
        )
    return render(
        "account.html",
        request,
        active_nav="account",
        messages=[{"level": "success", "text": _("Password changed.", request)}],
        **context(app, request),
    )


# --- users -------------------------------------------------------------------------------


def users_page(app, request, status=200, error=None, messages=()):
    users = [
        SimpleNamespace(
            id=u.id,
            username=u.username,
            display_name=u.display_name,
            role=u.role,
            referrer_names=u.referring_name_list,
            disabled=u.disabled,
            last_login=u.last_login_at,
        )
        for u in app.accounts.list_users()
    ]
    return render(
        "admin_users.html",
        request,
        status,
        users=users,
        error=error,
        messages=list(messages),
        active_nav="users",
        **context(app, request),
    )


def user_action(app, request, action, done):
    """The users page again, saying what was done or why not."""
    try:
        action()
    except DomainError as error:
        return users_page(app, request, http_status(error), error.message)
    return users_page(app, request, messages=[{"level": "success", "text": done}])


def users(app, request):
    return users_page(app, request)


def create_user(app, request):
    form = checked_form(request)
    return user_action(
        app,
        request,
        lambda: app.accounts.create_user(
            form.get("username", ""),
            form.get("password", ""),
            form.get("role", ""),
            form.get("display_name", ""),
            form.get("referrer_names", ""),
            actor=request.principal,
        ),
        _("User created.", request),
    )


def edit_user(app, request, user_id):
    form = checked_form(request)
    user = _user_id(user_id)  # a malformed id is the error page, not the users page
    return user_action(
        app,
        request,
        lambda: app.accounts.update_user(
            user,
            actor=request.principal,
            role=form.get("role"),
            display_name=form.get("display_name"),
            referring_names=form.get("referrer_names", ""),
            disabled=form.get("disabled") == "1",
        ),
        _("User saved.", request),
    )


def reset_password(app, request, user_id):
    form = checked_form(request)
    user = _user_id(user_id)  # a malformed id is the error page, not the users page
    return user_action(
        app,
        request,
        lambda: app.accounts.reset_password(user, form.get("new_password", ""), request.principal),
        _("Password reset; the user must change it at next login.", request),
    )


# --- API keys ----------------------------------------------------------------------------


def keys_page(app, request, status=200, error=None, new_key=None):
    keys = [
        SimpleNamespace(
            id=k.id,
            name=k.name,
            username=k.user.username,
            role=k.role,
            created_at=k.created_at,
            expires_at=k.expires_at,
            last_used_at=k.last_used_at,
            revoked=k.revoked_at is not None,
        )
        for k in app.apikeys.list()
    ]
    users = [SimpleNamespace(id=u.id, username=u.username) for u in app.accounts.list_users()]
    return render(
        "admin_apikeys.html",
        request,
        status,
        api_keys=keys,
        users=users,
        new_key=new_key,
        error=error,
        active_nav="apikeys",
        **context(app, request),
    )


def keys(app, request):
    return keys_page(app, request)


def create_key(app, request):
    form = checked_form(request)
    days = form.get("expires_in_days", "").strip()
    user_id = _user_id(form.get("user_id"))  # malformed numbers are the error page, not the keys page
    expires_days = whole_number(days, "expires in days") if days else None
    try:
        key, row = app.apikeys.create(
            form.get("name", ""), user_id, form.get("role") or None, expires_days, request.principal
        )
    except DomainError as error:
        return keys_page(app, request, http_status(error), error.message)
    return keys_page(app, request, new_key=SimpleNamespace(name=row.name, secret=key))


def revoke_key(app, request, key_id):
    checked_form(request)
    app.apikeys.revoke(_user_id(key_id), request.principal)
    return keys_page(app, request)


# --- audit log ---------------------------------------------------------------------------

# Walking the whole chain is slow: on a trail's first view and on request only.
_LAST_CHECK = weakref.WeakKeyDictionary()  # AuditLog -> its last verification
AUDIT_FILTERS = ("user", "action", "study_uid", "patient", "outcome", "date_from", "date_to")


def chain_status(app, request):
    checked = _LAST_CHECK.get(app.audit)
    if checked is None or request.query.get("verify") == "1":
        checked = _LAST_CHECK[app.audit] = app.audit.verify()
        app.audit.record(
            "audit_verified",
            username=request.principal.username,
            role=request.principal.role,
            address=request.client_ip,
            outcome="success" if checked.ok else "failure",
        )
    return checked


def audit_log(app, request, query):
    filters = audit_filters(query)
    items, total = read_audit(app.audit.query, filters)
    studies = studies_by_uid(e["study_uid"] for e in items)
    labels = action_labels(request)
    entries = [audit_entry(e, studies.get(e["study_uid"]), labels) for e in items]
    shown = {name: request.query.get(name, "") for name in AUDIT_FILTERS}  # the form as it was filled in
    return render(
        "admin_audit.html",
        request,
        chain=chain_status(app, request),
        filters=shown,
        entries=entries,
        page=filters["page"],
        page_size=filters["page_size"],
        total=total,
        actions=sorted(labels.items(), key=lambda item: item[1]),
        active_nav="audit",
        **context(app, request),
    )


# What each audit action means, for people reading the trail (the code stays in the CSV and the API).
AUDIT_ACTIONS = {
    "login": "Signed in",
    "logout": "Signed out",
    "login_failed": "Sign-in failed",
    "lockout": "Sign-ins locked",
    "access_denied": "Access denied",
    "password_changed": "Password changed",
    "password_reset": "Password reset",
    "user_created": "User created",
    "user_updated": "User changed",
    "user_disabled": "User disabled",
    "user_enabled": "User enabled",
    "user_unlocked": "User unlocked",
    "apikey_created": "API key created",
    "apikey_revoked": "API key revoked",
    "study_viewed": "Study opened",
    "images_retrieved": "Images viewed",
    "report_saved": "Report draft saved",
    "report_finalized": "Report signed",
    "report_addended": "Addendum signed",
    "report_printed": "Report PDF opened",
    "export": "Exported",
    "send": "Sent to a DICOM node",
    "delete": "Deleted",
    "study_claimed": "Study claimed",
    "study_released": "Study released",
    "study_assigned": "Study assigned",
    "priority_changed": "Priority changed",
    "report_viewed": "Report opened",
    "node_saved": "DICOM node saved",
    "node_deleted": "DICOM node removed",
    "node_queried": "DICOM node queried",
    "retrieve": "Retrieved from a DICOM node",
    "resource_read": "Archive data read",
    "archive_downloaded": "Study downloaded (ZIP)",
    "media_downloaded": "Study downloaded (DICOMDIR)",
    "search": "Searched",
    "thumbnail_viewed": "Thumbnail viewed",
    "dicom_query": "Queried by a DICOM node",
    "dicom_retrieve": "Retrieved by a DICOM node",
    "order_created": "Order created",
    "order_updated": "Order changed",
    "order_cancelled": "Order cancelled",
    "audit_exported": "Audit trail exported",
    "audit_verified": "Audit trail verified",
}


def action_labels(request):
    return {code: _(label, request) for code, label in AUDIT_ACTIONS.items()}


def audit_entry(entry, study, labels):
    """An audit entry as the page shows it: a readable action, and the patient and
    accession of its study (from the study index; a study since deleted shows the
    patient ID the entry recorded, if any)."""
    details = entry.get("details")
    patient_id = (
        study.patient_dicom_id if study else (details.get("patient_id", "") if isinstance(details, dict) else "")
    )
    return SimpleNamespace(
        id=entry["id"],
        timestamp=_shown_time(entry["at"]),
        username=entry["username"],
        action=entry["action"],
        action_label=labels.get(entry["action"], entry["action"]),
        study_uid=entry["study_uid"],
        study_known=study is not None,
        patient_name=study.patient_name if study else "",
        patient_id=patient_id,
        accession_number=study.accession_number if study else "",
        outcome=entry["outcome"],
        ip_address=entry["address"],
        detail=_detail_text(details),
    )


def _shown_time(iso):
    """ "2026-12-05T07:42:46.656288Z" -> "2026-12-05 07:42:46 UTC"."""
    return f"{iso[:19].replace('T', ' ')} UTC" if isinstance(iso, str) and len(iso) >= 19 else iso


def _detail_text(details):
    """Details as "name: value" pairs ("taken over from: rad1; version: 3")."""
    if not details:
        return None
    if not isinstance(details, dict):
        return str(details)

    def value(item):
        return item if isinstance(item, str) else json.dumps(item, ensure_ascii=False, sort_keys=True)

    return "; ".join(f"{key.replace('_', ' ')}: {value(item)}" for key, item in sorted(details.items()))


def _user_id(value):
    return whole_number(value, "id", minimum=1)


ROUTES = (
    Route("GET", LOGIN, show_login, PUBLIC, page=True),
    Route("POST", LOGIN, submit_login, PUBLIC, page=True),
    Route("POST", "/pacs/logout", submit_logout, AUTHENTICATED, page=True),
    Route("GET", ACCOUNT, account, AUTHENTICATED, page=True),
    Route("POST", "/pacs/account/password", change_password, AUTHENTICATED, page=True),
    Route("GET", USERS, users, "users.manage", page=True),
    Route("POST", USERS, create_user, "users.manage", page=True),
    Route("POST", "/pacs/admin/users/{user_id}", edit_user, "users.manage", page=True),
    Route("POST", "/pacs/admin/users/{user_id}/password", reset_password, "users.manage", page=True),
    Route("GET", KEYS, keys, "users.manage", page=True),
    Route("POST", KEYS, create_key, "users.manage", page=True),
    Route("POST", "/pacs/admin/apikeys/{key_id}/revoke", revoke_key, "users.manage", page=True),
    Route("GET", "/pacs/admin/audit", audit_log, "audit.read", page=True, query=AuditQuery),
)
