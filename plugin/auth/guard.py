"""The guard: one decision for every HTTP request, made from the permission
table. Orthanc's HTTP filter calls it for every request (every image frame
included), so a decision must take microseconds: tokens are checked without
the database (decoded tokens are cached until they expire), scopes and
revocations come from in-memory caches, and auditing image access only
queues a record.
"""

import base64
import hmac
import logging
import time
from dataclasses import dataclass

from plugin import permissions
from plugin.auth.accounts import Principal
from plugin.auth.apikeys import looks_like_key
from plugin.auth.tokens import TokenError
from plugin.errors import Unauthenticated
from plugin.routing import is_ours

LOGGER = logging.getLogger(__name__)

SESSION_COOKIE = "pacs_session"
PASSWORD_CHANGE_FIRST = "change your password first"
SESSION_EXPIRED = "your session expired; please sign in again"
NO_SUCH_PAGE = "no such page"
TOKEN_CACHE_SIZE = 4096
ENDED_SESSION_SECONDS = 600  # a session cookie found ended is not looked up again for this long


@dataclass(frozen=True)
class Decision:
    allowed: bool
    status: int
    reason: str = ""
    principal: Principal = None
    form_csrf: bool = False  # a cookie-authenticated form: the handler checks its token
    renewed: str = ""  # a new access token for the session cookie (its old one had expired)
    allow: str = ""  # with 405: the methods the path takes


def allow(principal, form_csrf=False, renewed=""):
    return Decision(True, 200, "", principal, form_csrf, renewed)


def deny(status, reason, principal=None, renewed=""):
    return Decision(False, status, reason, principal, renewed=renewed)


def _wrong_method(rule, principal, renewed=""):
    """405 for a method a declared path does not take, to one who may use the path."""
    return Decision(False, 405, f"this path takes {rule.only}", principal, renewed=renewed, allow=rule.only)


def cookie(headers, name):
    """One cookie's value from the Cookie header, or ''."""
    for part in headers.get("cookie", "").split(";"):
        key, _, value = part.strip().partition("=")
        if key == name:
            return value
    return ""


class Guard:
    def __init__(self, accounts, apikeys, scope, audit, trusted_proxies=(), body_limits=None, *, table):
        self._table = table  # plugin.route_table.TABLE
        self._accounts = accounts
        self._body_limits = dict(permissions.BODY_LIMITS, **(body_limits or {}))
        self._apikeys = apikeys
        self._scope = scope
        self._audit = audit
        self._trusted = frozenset(trusted_proxies)
        self._tokens = {}

    def check(self, method, path, headers, query, address):
        """The Decision for one request; never raises for any input."""
        rule, path_study = self._table.match(method, path)
        if rule is None and not is_ours(path):
            return deny(403, "this route is not open to anyone")  # Orthanc's: the filter can only 403
        if rule is not None and rule.permission == permissions.DENY:
            return deny(403, "this route is disabled on this server")
        principal, problem, renewed = self.authenticate(headers, address)
        if rule is None:  # every route of ours is in the table: an unknown one is not there
            return deny(404, NO_SUCH_PAGE, principal, renewed)
        if rule.permission == permissions.PUBLIC:  # no new cookie on public answers: static files may be cached
            return _wrong_method(rule, principal) if rule.only else allow(principal)
        if principal is None:
            return deny(401, problem or "login required")
        csrf = self._csrf(method, path, headers, principal)
        if csrf is not None and not csrf.allowed:
            return csrf
        if rule.permission != permissions.AUTHENTICATED:
            # Before anything else, a user told to change their password does so: only the
            # routes open to any logged-in user (account, password, logout) stay open.
            if self._accounts.password_change_pending(principal):
                return deny(403, PASSWORD_CHANGE_FIRST, principal, renewed)
            if not permissions.can(principal, rule.permission):
                return self._denied(principal, address, path, "your role may not do this")
        if rule.only:
            return _wrong_method(rule, principal, renewed)
        studies = self._studies(rule, path_study, query)
        if rule.study and not permissions.can(principal, "studies.read_all"):
            if rule.params is not None:  # the query reaches Orthanc: only what was parsed and approved
                problem, studies = permissions.approved_query(rule, path_study, query)
                if problem:
                    return self._denied(principal, address, path, problem)
            if not studies:
                return self._denied(principal, address, path, "name the study (StudyInstanceUID) you want")
            if not set(studies) <= self._scope.studies(principal.user_id):
                return self._denied(principal, address, path, "this study is not in your scope")
        if not is_ours(path):  # our own routes audit in their handlers
            self._audit_access(principal, address, path, query, studies)
        return allow(principal, form_csrf=csrf is not None, renewed=renewed)

    def _audit_access(self, principal, address, path, query, studies):
        """An entry (memory only, bounded per user, action and target) for a read of
        patient data through one of Orthanc's routes; one per study it names."""
        action = permissions.access_action(path)
        if not action:
            return
        for study_uid in dict.fromkeys(studies) or ("",):
            self._audit.record_access(
                action,
                username=principal.username,
                role=principal.role,
                address=address,
                path=path,
                study_uid=study_uid,
                query=query,
            )

    def body_refusal(self, method, path, headers):
        """Why a request's body may not even be read, or "". Orthanc reads a whole body
        before any plugin sees it (a Content-Length of 100 GB made it allocate that much)
        and inflates a gzip body whole, so the size is checked on the headers, against
        the route's limit, before Orthanc reads anything."""
        encoding = headers.get("content-encoding", "identity").strip().lower()
        if encoding not in ("", "identity"):
            return f"compressed request bodies are refused ({encoding[:32]})"
        if "transfer-encoding" in headers:
            return "a request body needs a Content-Length"
        length = headers.get("content-length", "0").strip()
        if not (length.isascii() and length.isdigit() and len(length) <= 19):
            return "invalid Content-Length"
        if int(length) == 0:  # every image frame: no table look-up
            return ""
        if is_ours(path):
            kind = "upload"  # our handlers read what they accept and say so (413): Orthanc must only buffer it
        else:
            rule, _ = self._table.match(method, path)
            kind = rule.body if rule is not None else "none"
        limit = self._body_limits[kind]
        return f"request body larger than {limit} bytes" if int(length) > limit else ""

    def authenticate(self, headers, address=""):
        """(Principal or None, why not, renewed token or ""): Bearer token or key, Basic
        with a key, or the session cookie. A session cookie whose access token has
        expired is renewed from its session while the session lasts (idle and absolute
        limits): the renewed token is for the answer to set as the new cookie."""
        authorization = headers.get("authorization", "")
        scheme, _, credential = authorization.partition(" ")
        scheme = scheme.lower()
        if scheme == "bearer" and credential:
            if looks_like_key(credential):
                return self._apikeys.principal(credential), "invalid API key", ""
            return self._from_token(credential.strip(), "bearer", address)
        if scheme == "basic" and credential:
            return (*self._from_basic(credential), "")
        token = cookie(headers, SESSION_COOKIE)
        if token:
            return self._from_token(token, "cookie", address)
        return None, "login required", ""

    def client_address(self, ip, headers):
        """The client's address; X-Forwarded-For is believed only from a trusted proxy."""
        if ip in self._trusted and headers.get("x-forwarded-for"):
            for hop in reversed(headers["x-forwarded-for"].split(",")):
                hop = hop.strip()
                if hop and hop not in self._trusted:
                    return hop[:64]
        return ip

    def _from_token(self, token, via, address):
        cached = self._tokens.get((token, via))
        now = time.time()
        if cached is not None and cached[1] > now:
            principal, _expires, renewed = cached
            if principal is None:
                return None, renewed, ""  # an ended session's cookie: ``renewed`` holds why
            if not self._accounts.is_revoked(principal.session_id):
                return principal, None, renewed
            return None, "session ended; please log in again", ""
        renewed = ""
        try:
            principal, expires = self._accounts.principal_from_token(token, via)
        except TokenError as error:
            if not (error.expired and via == "cookie"):
                return (
                    None,
                    (
                        "session expired; please log in again"
                        if error.expired
                        else "invalid or ended session; please log in again"
                    ),
                    "",
                )
            try:
                principal, expires, renewed = self._renew(token, address)
            except Unauthenticated:
                self._remember((token, via), (None, now + ENDED_SESSION_SECONDS, SESSION_EXPIRED))
                return None, SESSION_EXPIRED, ""
        self._remember((token, via), (principal, expires, renewed))
        return principal, None, renewed

    def _renew(self, token, address):
        """(Principal, expiry, new token) of a session cookie whose token expired while
        its session is still open (Unauthenticated when it has ended): once per token
        lifetime per cookie, since the answer is kept in the token cache."""
        renewed, claims = self._accounts.renew(token, address)
        LOGGER.debug("event=session_renewed user=%s", claims.username)
        principal = Principal(claims.user_id, claims.username, claims.role, claims.session_id, claims.csrf, "cookie")
        return principal, claims.expires, renewed

    def _remember(self, key, entry):
        if len(self._tokens) >= TOKEN_CACHE_SIZE:
            self._tokens.clear()
        self._tokens[key] = entry

    def _from_basic(self, credential):
        try:
            username, _, secret = base64.b64decode(credential, validate=True).decode("utf-8").partition(":")
        except (ValueError, UnicodeDecodeError):
            return None, "malformed Basic credentials"
        if not looks_like_key(secret):
            return None, "HTTP Basic takes an API key as the password"
        return self._apikeys.principal(secret, username.strip().lower()), "invalid API key"

    @staticmethod
    def _csrf(method, path, headers, principal):
        """None when no check applies; a Decision (allowed = passed) otherwise.
        An allowed Decision for a form post means: the handler checks the form field."""
        if principal.via != "cookie" or method == "GET":
            return None
        sent = headers.get("x-csrf-token", "")
        if sent:
            if hmac.compare_digest(sent.encode(), principal.csrf.encode()):
                return None
            return deny(403, "CSRF token wrong", principal)
        content_type = headers.get("content-type", "")
        # Pages' forms carry the token as a field, which their handler checks. Not the
        # JSON API: its handlers read the body as JSON whatever its declared type, and a
        # same-site page may POST any body as a "form" with the cookie (fetch, no-cors).
        if (
            is_ours(path)
            and not path.startswith("/pacs/api/")
            and content_type.startswith("application/x-www-form-urlencoded")
        ):
            return allow(principal, form_csrf=True)
        return deny(403, "CSRF token missing (send X-CSRF-Token)", principal)

    @staticmethod
    def _studies(rule, path_study, query):
        """Every study a scoped request names: the path's, and every query parameter that
        Orthanc or DICOMweb could read as a StudyInstanceUID (whatever its spelling, so
        that "?StudyInstanceUID=<mine>&0020000d=<other>" cannot pass as <mine>)."""
        if not rule.study:
            return []
        studies = [path_study] if rule.study == "path" and path_study else []
        for name, value in (query or {}).items():
            if isinstance(value, str) and permissions.names_study_uid(name):
                studies.extend(uid.strip() for uid in value.replace("\\", ",").split(",") if uid.strip())
        return studies

    def _denied(self, principal, address, path, reason):
        self._audit.record_async(
            "access_denied",
            username=principal.username,
            role=principal.role,
            address=address,
            outcome="denied",
            details={"path": path[:200], "reason": reason},
        )
        return deny(403, reason, principal)
