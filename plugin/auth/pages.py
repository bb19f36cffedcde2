"""Browser pages of accounts: login, logout, own account, user and API-key
administration, the audit log. Forms post urlencoded with a csrf_token field."""

import hmac
import json
import secrets
from types import SimpleNamespace

from plugin.auth.accounts import AccountError
from plugin.auth.guard import SESSION_COOKIE, cookie
from plugin.auth.models import ROLES, User
from plugin.auth.routes import audit_filters, is_https, session_cookie
from plugin.errors import DomainError
from plugin.http import HttpError, Response, http_status, int_param
from plugin.webui import error_page, render
from plugin.webui import gettext as _
from plugin.webui.forms import checked_form, safe_next
from plugin.worklist.query import studies_by_uid

LOGIN_CSRF_COOKIE = "pacs_login_csrf"


def page(handler):
    """Errors on a page become an HTML error page, not JSON."""

    def wrapped(request, **params):
        try:
            return handler(request, **params)
        except (HttpError, AccountError) as error:
            return error_page(error.status, error.message, request, **signed_in(request))
        except DomainError as error:
            return error_page(http_status(error), error.message, request, **signed_in(request))

    wrapped.__name__ = handler.__name__
    return wrapped


def signed_in(request):
    """base.html's user and CSRF token for whoever asks (the navigation of an error page)."""
    principal = request.principal
    user = User.get_or_none(User.id == principal.user_id) if principal is not None else None
    return {"user": user, "csrf_token": principal.csrf or None} if user is not None else {}


def with_cookie(response, value):
    response.headers["Set-Cookie"] = value
    return response


def register(router, accounts, apikeys, audit, settings):
    route = lambda method, pattern: lambda f: router.add(method, pattern, page(f))  # noqa: E731

    def user_of(request):
        return accounts.get_user(request.principal.user_id)

    def context(request, **extra):
        return dict(user=user_of(request), csrf_token=request.principal.csrf, **extra)

    # --- login and logout ----------------------------------------------------

    def login_page(request, status=200, error=None, username="", messages=()):
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
        secure = "; Secure" if is_https(request, settings) else ""
        return with_cookie(
            response, f"{LOGIN_CSRF_COOKIE}={token}; Path=/pacs/login; HttpOnly; SameSite=Strict; Max-Age=3600{secure}"
        )

    @route("GET", "/pacs/login")
    def show_login(request):
        if request.principal is not None:
            return Response.redirect(safe_next(request.query.get("next")))
        if cookie(request.headers, SESSION_COOKIE):  # still sent, but its session has ended (signing out clears it)
            return login_page(
                request,
                messages=[{"level": "warning", "text": _("Your session expired. Please sign in again.", request)}],
            )
        return login_page(request)

    @route("POST", "/pacs/login")
    def submit_login(request):
        form = request.form()
        expected = cookie(request.headers, LOGIN_CSRF_COOKIE)
        if not expected or not hmac.compare_digest(form.get("csrf_token", "").encode(), expected.encode()):
            return login_page(request, 403, _("The form expired; please try again.", request))
        try:
            token, _claims, user = accounts.login(form.get("username", ""), form.get("password", ""), request.client_ip)
        except AccountError as error:
            return login_page(request, error.status, error.message, form.get("username", ""))
        target = "/pacs/account" if user.must_change_password else safe_next(form.get("next"))
        cookie_value = session_cookie(token, settings.session_hours * 3600, is_https(request, settings))
        return with_cookie(Response.redirect(target), cookie_value)

    @route("POST", "/pacs/logout")
    def submit_logout(request):
        checked_form(request)
        accounts.logout(request.principal, request.client_ip)
        return with_cookie(Response.redirect("/pacs/login"), session_cookie("", 0, is_https(request, settings)))

    # --- own account ---------------------------------------------------------

    @route("GET", "/pacs/account")
    def account(request):
        user = user_of(request)
        messages = []
        if user.must_change_password:
            messages.append({"level": "warning", "text": _("Please choose a new password before you go on.", request)})
        return render("account.html", request, messages=messages, active_nav="account", **context(request))

    @route("POST", "/pacs/account/password")
    def change_password(request):
        form = checked_form(request)
        if form.get("new_password", "") != form.get("confirm_password", ""):
            return render(
                "account.html",
                request,
                400,
                error=_("The two new passwords differ.", request),
                active_nav="account",
                **context(request),
            )
        try:
            accounts.change_password(
                request.principal, form.get("current_password", ""), form.get("new_password", ""), request.client_ip
            )
        except AccountError as error:
            return render(
                "account.html", request, error.status, error=error.message, active_nav="account", **context(request)
            )
        return render(
            "account.html",
            request,
            active_nav="account",
            messages=[{"level": "success", "text": _("Password changed.", request)}],
            **context(request),
        )

    # --- users ------------------------------------------------------------------

    def users_page(request, status=200, error=None, messages=()):
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
            for u in accounts.list_users()
        ]
        return render(
            "admin_users.html",
            request,
            status,
            users=users,
            roles=list(ROLES),
            error=error,
            messages=list(messages),
            active_nav="users",
            **context(request),
        )

    def user_action(request, action, done):
        try:
            action()
        except AccountError as error:
            return users_page(request, error.status, error.message)
        return users_page(request, messages=[{"level": "success", "text": done}])

    @route("GET", "/pacs/admin/users")
    def users(request):
        return users_page(request)

    @route("POST", "/pacs/admin/users")
    def create_user(request):
        form = checked_form(request)
        return user_action(
            request,
            lambda: accounts.create_user(
                form.get("username", ""),
                form.get("password", ""),
                form.get("role", ""),
                form.get("display_name", ""),
                form.get("referrer_names", ""),
                actor=request.principal,
            ),
            _("User created.", request),
        )

    @route("POST", "/pacs/admin/users/{user_id}")
    def edit_user(request, user_id):
        form = checked_form(request)
        return user_action(
            request,
            lambda: accounts.update_user(
                _user_id(user_id),
                actor=request.principal,
                role=form.get("role"),
                display_name=form.get("display_name"),
                referring_names=form.get("referrer_names", ""),
                disabled=form.get("disabled") == "1",
            ),
            _("User saved.", request),
        )

    @route("POST", "/pacs/admin/users/{user_id}/password")
    def reset_password(request, user_id):
        form = checked_form(request)
        return user_action(
            request,
            lambda: accounts.reset_password(_user_id(user_id), form.get("new_password", ""), request.principal),
            _("Password reset; the user must change it at next login.", request),
        )

    # --- API keys -----------------------------------------------------------------

    def keys_page(request, status=200, error=None, new_key=None):
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
            for k in apikeys.list()
        ]
        users = [SimpleNamespace(id=u.id, username=u.username) for u in accounts.list_users()]
        return render(
            "admin_apikeys.html",
            request,
            status,
            api_keys=keys,
            users=users,
            roles=list(ROLES),
            new_key=new_key,
            error=error,
            active_nav="apikeys",
            **context(request),
        )

    @route("GET", "/pacs/admin/apikeys")
    def keys(request):
        return keys_page(request)

    @route("POST", "/pacs/admin/apikeys")
    def create_key(request):
        form = checked_form(request)
        days = form.get("expires_in_days", "").strip()
        try:
            key, row = apikeys.create(
                form.get("name", ""),
                _user_id(form.get("user_id")),
                form.get("role") or None,
                int_param(days, "expires in days") if days else None,
                request.principal,
            )
        except AccountError as error:
            return keys_page(request, error.status, error.message)
        return keys_page(request, new_key=SimpleNamespace(name=row.name, secret=key))

    @route("POST", "/pacs/admin/apikeys/{key_id}/revoke")
    def revoke_key(request, key_id):
        checked_form(request)
        apikeys.revoke(_user_id(key_id), request.principal)
        return keys_page(request)

    # --- audit log ---------------------------------------------------------------

    last_check = []  # walking the whole chain is slow: on first view and on request only

    def chain_status(request):
        if not last_check or request.query.get("verify") == "1":
            last_check[:] = [audit.verify()]
            audit.record(
                "audit_verified",
                username=request.principal.username,
                role=request.principal.role,
                address=request.client_ip,
                outcome="success" if last_check[0].ok else "failure",
            )
        return last_check[0]

    @route("GET", "/pacs/admin/audit")
    def audit_log(request):
        filters = audit_filters(request)
        try:
            items, total = audit.query(**filters)
        except ValueError as error:
            raise HttpError(400, str(error)) from None
        studies = studies_by_uid(e["study_uid"] for e in items)
        labels = action_labels(request)
        entries = [audit_entry(e, studies.get(e["study_uid"]), labels) for e in items]
        shown = {k: v for k, v in filters.items() if k not in ("page", "page_size")}
        shown["user"] = shown.pop("username")
        shown["study_uid"] = request.query.get("study_uid", "")
        shown["patient"] = request.query.get("patient", "")
        return render(
            "admin_audit.html",
            request,
            chain=chain_status(request),
            filters=shown,
            entries=entries,
            page=filters["page"],
            page_size=filters["page_size"],
            total=total,
            actions=sorted(labels.items(), key=lambda item: item[1]),
            active_nav="audit",
            **context(request),
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
    return int_param(value, "id", minimum=1)
