"""Accounts and the guard without Orthanc: the permission table, the guard's
decision with fake accounts/keys/scope/audit, tokens, passwords, and the JSON
body checks that stand in front of every handler."""

import base64
import json
import time

import jwt
import pytest
from fakes import RecordingAudit, principal

from plugin import permissions
from plugin.auth.guard import SESSION_COOKIE, Guard
from plugin.auth.passwords import Hasher, PasswordRejected, check_policy
from plugin.auth.tokens import Claims, TokenCodec, TokenError
from plugin.errors import Unauthenticated
from plugin.http import MAX_JSON_DEPTH, HttpError, Request, int_param, json_nesting_ok
from plugin.route_table import TABLE

SECRET = b"s" * 64
IN_SCOPE, OUT_OF_SCOPE = "1.2.3.4", "1.2.3.5"


# --- fakes ----------------------------------------------------------------------


class FakeAccounts:
    """Tokens are "tok-<role>" (bearer or cookie); "tok-ended" is a revoked session."""

    def __init__(self):
        self.revoked = set()

    def principal_from_token(self, token, via):
        if not token.startswith("tok-") or token == "tok-ended":
            raise TokenError("invalid token")
        role = token[4:]
        who = principal(role, 7, f"user-{role}", session_id=f"sid-{role}", csrf=f"csrf-{role}", via=via)
        return who, time.time() + 60

    def is_revoked(self, session_id):
        return session_id in self.revoked

    def password_change_pending(self, principal):
        return False


class FakeApiKeys:
    def principal(self, key, username=None):
        if key != "pacs_goodkey" or username not in (None, "keyowner"):
            return None
        return principal("technologist", 8, "keyowner", via="apikey")


class FakeScope:
    def studies(self, user_id):
        return frozenset({IN_SCOPE})


@pytest.fixture
def guard():
    audit = RecordingAudit()
    g = Guard(FakeAccounts(), FakeApiKeys(), FakeScope(), audit, table=TABLE)
    g.audit = audit
    return g


def bearer(role):
    return {"authorization": f"Bearer tok-{role}"} if role else {}


def check(guard, method, path, role=None, query=None, headers=None):
    return guard.check(method, path, dict(bearer(role), **(headers or {})), query or {}, "10.0.0.1")


# --- the table ------------------------------------------------------------------


def test_every_rule_names_a_known_permission():
    special = {permissions.PUBLIC, permissions.AUTHENTICATED, permissions.DENY}
    for rule in TABLE.rules:
        assert rule.permission in permissions.ALL_PERMISSIONS | special, rule
        assert rule.methods <= {"GET", "POST", "PUT", "DELETE"}, rule
        assert rule.study in ("", "path", "query"), rule


def test_admin_has_every_permission_and_roles_are_nested_as_the_spec_says():
    of = permissions.permissions_of
    for role in ("radiologist", "technologist", "referrer"):
        assert of(role) <= of("admin")
    assert of("referrer") == {"studies.read", "images.read", "reports.read"}
    assert "images.delete" not in of("radiologist") | of("technologist")
    assert "reports.write" not in of("technologist")
    assert "images.upload" in of("technologist") and "images.upload" not in of("radiologist")
    assert of("nobody") == frozenset()


@pytest.mark.parametrize(
    "method, path, permission",
    [
        # alternatives are anchored as a whole: "/pacs/?" once matched every /pacs/ path
        ("GET", "/pacs/api/users", "users.manage"),
        ("GET", "/pacs/api/apikeys", "users.manage"),
        ("GET", "/pacs/api/audit", "audit.read"),
        ("GET", "/pacs/api/me", permissions.AUTHENTICATED),
        ("POST", "/pacs/api/auth/logout", permissions.AUTHENTICATED),
        ("GET", "/tools/execute-script", permissions.DENY),
        # Orthanc ignores a trailing slash and empty segments: so does the table
        ("POST", "/tools/execute-script/", permissions.DENY),
        ("POST", "/tools/execute-script//", permissions.DENY),
        ("POST", "//tools//execute-script", permissions.DENY),
        ("POST", "/instances/abc/export/", permissions.DENY),
        ("GET", "/system/", "admin"),
        ("GET", "/pacs/api/users/", "users.manage"),
        ("DELETE", "/studies/abc", "images.delete"),
        ("GET", "/app/explorer.html", "admin"),
        # decided on purpose (README, Security): named, not left to the default
        ("DELETE", "/instances/abc/attachments/dicom", permissions.DENY),
        ("GET", "/dicom-web/servers", permissions.DENY),
        ("PUT", "/patients/abc/protected", "admin"),
    ],
)
def test_match_finds_the_rule_orthanc_would_route_to(method, path, permission):
    rule, _ = TABLE.match(method, path)
    assert rule is not None and rule.permission == permission


@pytest.mark.parametrize(
    "method, path",
    [
        ("GET", "/pacs/api/me/anything"),
        ("GET", "/pacs/api/unknown"),
        ("POST", "/pacs/api/auth/logout-everyone"),
        ("POST", "/pacs/api/me/password/x"),
        ("GET", "/some/unknown"),
        ("PUT", "/system"),
    ],
)
def test_routes_the_table_does_not_name_match_nothing(method, path):
    assert TABLE.match(method, path) == (None, None)


@pytest.mark.parametrize(
    "name",
    [
        "StudyInstanceUID",
        "studyinstanceuid",
        "studyUID",
        "0020000D",
        "0020000d",
        "0020,000D",
        "0020,000d",
        "20,d",
        "0x20,0xD",
        "+20,d",
        "10020,d",
        " 0020,000D",
        "0020,000Dxyz",
    ],
)
def test_every_spelling_of_the_study_uid_tag_is_recognised(name):
    assert permissions.names_study_uid(name)


@pytest.mark.parametrize(
    "name", ["SeriesInstanceUID", "0020000E", "20,e", "PatientID", "includefield", "limit", "", "0020", "zz,zz"]
)
def test_other_parameters_are_not_study_uids(name):
    assert not permissions.names_study_uid(name)


# --- the guard's decision -----------------------------------------------------


def test_unknown_and_disabled_routes_are_denied_even_to_admin(guard):
    assert check(guard, "GET", "/some/unknown", "admin").status == 403
    # Our own routes are all in the table: one it does not name does not exist (404, not 403).
    for path in ("/pacs/nothing", "/pacs/api/nothing", "/pacs/studies/1.2/nothing"):
        assert (check(guard, "GET", path, "admin").status, check(guard, "GET", path).status) == (404, 404)
    assert not check(guard, "POST", "/pacs/api/me", "admin").allowed
    assert check(guard, "POST", "/tools/execute-script", "admin").status == 403
    assert check(guard, "POST", "/tools/execute-script/", "admin").status == 403


def test_a_wrong_method_on_an_api_path_is_405_to_those_who_may_use_it_and_refused_to_others(guard):
    decision = check(guard, "DELETE", "/pacs/api/users/7", "admin")  # users are disabled, never deleted
    assert (decision.allowed, decision.status, decision.allow) == (False, 405, "GET, PUT")
    assert check(guard, "DELETE", "/pacs/api/users/7", "radiologist").status == 403
    assert check(guard, "DELETE", "/pacs/api/users/7").status == 401
    assert check(guard, "GET", "/pacs/api/auth/login").status == 405  # a public path: 405 to anyone


def test_no_login_is_401_and_a_bad_token_says_why(guard):
    decision = check(guard, "GET", "/pacs/api/me")
    assert (decision.allowed, decision.status) == (False, 401)
    decision = check(guard, "GET", "/pacs/api/me", headers={"authorization": "Bearer tok-ended"})
    assert (decision.allowed, decision.status) == (False, 401)
    assert "session" in decision.reason


def test_public_routes_need_no_login(guard):
    assert check(guard, "GET", "/pacs/health").allowed
    assert check(guard, "POST", "/pacs/api/auth/login").allowed


def test_a_role_without_the_permission_is_denied_and_audited(guard):
    decision = check(guard, "DELETE", "/studies/abc", "radiologist")
    assert (decision.allowed, decision.status) == (False, 403)
    assert guard.audit.entries[-1][0] == "access_denied"
    assert guard.audit.entries[-1][1]["username"] == "user-radiologist"
    assert check(guard, "DELETE", "/studies/abc", "admin").allowed


def test_logged_out_session_is_refused_even_when_its_token_is_cached(guard):
    assert check(guard, "GET", "/pacs/api/me", "radiologist").allowed
    guard._accounts.revoked.add("sid-radiologist")
    assert check(guard, "GET", "/pacs/api/me", "radiologist").status == 401


@pytest.mark.parametrize(
    "path, query, allowed",
    [
        (f"/dicom-web/studies/{IN_SCOPE}/series", {}, True),
        (f"/dicom-web/studies/{OUT_OF_SCOPE}/series", {}, False),
        (f"/dicom-web/studies/{IN_SCOPE}/series", {"StudyInstanceUID": OUT_OF_SCOPE}, False),
        ("/dicom-web/studies", {}, False),
        ("/dicom-web/studies", {"StudyInstanceUID": IN_SCOPE}, True),
        ("/dicom-web/studies", {"StudyInstanceUID": f"{IN_SCOPE}\\{OUT_OF_SCOPE}"}, False),
        ("/dicom-web/studies", {"StudyInstanceUID": f"{IN_SCOPE},{OUT_OF_SCOPE}"}, False),
        ("/dicom-web/studies", {"StudyInstanceUID": IN_SCOPE, "0020000d": OUT_OF_SCOPE}, False),
        ("/dicom-web/studies", {"StudyInstanceUID": IN_SCOPE, "20,d": OUT_OF_SCOPE}, False),
        ("/dicom-web/series", {"StudyInstanceUID": IN_SCOPE, "SeriesInstanceUID": "9.9"}, True),
        # the study by its keyword only: a tag number, however spelled, is refused
        ("/dicom-web/series", {"0020000D": IN_SCOPE, "SeriesInstanceUID": "9.9"}, False),
        ("/dicom-web/studies", {"StudyInstanceUID": IN_SCOPE, "0020-000D": ""}, False),
        ("/dicom-web/studies", {"StudyInstanceUID": ""}, False),
        ("/dicom-web/instances", {"SeriesInstanceUID": "9.9"}, False),
        ("/wado", {"requestType": "WADO", "studyUID": IN_SCOPE, "objectUID": "9.9"}, True),
        ("/wado", {"requestType": "WADO", "studyUID": OUT_OF_SCOPE, "objectUID": "9.9"}, False),
        ("/wado", {"requestType": "WADO", "objectUID": "9.9"}, False),
        (f"/pacs/api/studies/{IN_SCOPE}", {}, True),
        (f"/pacs/api/studies/{OUT_OF_SCOPE}", {}, False),
        ("/studies", {}, False),
        ("/pacs/api/users", {}, False),
    ],
)
def test_referrer_sees_only_studies_in_scope(guard, path, query, allowed):
    decision = check(guard, "GET", path, "referrer", query)
    assert decision.allowed is allowed, decision
    if not allowed:
        assert decision.status == 403
    # Other roles are not held to a scope.
    if path.startswith(("/dicom-web", "/wado")):
        assert check(guard, "GET", path, "radiologist", query).allowed


def test_image_requests_are_audited_per_study(guard):
    check(guard, "GET", f"/dicom-web/studies/{IN_SCOPE}/metadata", "radiologist")
    assert ("images_retrieved", {"username": "user-radiologist", "study_uid": IN_SCOPE}) in guard.audit.entries


class RenewingAccounts(FakeAccounts):
    """Also "old-<role>": an expired token whose session is still open (renewed as
    "tok-<role>"), and "old-gone": an expired token whose session has ended."""

    def __init__(self):
        super().__init__()
        self.renewals = []

    def principal_from_token(self, token, via):
        if token.startswith("old-"):
            raise TokenError("expired", expired=True)
        return super().principal_from_token(token, via)

    def renew(self, token, address=""):
        self.renewals.append((token, address))
        if token == "old-gone":
            raise Unauthenticated("session ended; please log in again")
        role = token[4:]
        return f"tok-{role}", Claims(7, f"user-{role}", role, f"sid-{role}", f"csrf-{role}", int(time.time()) + 60)


def test_an_expired_session_cookie_is_renewed_from_its_session_once():
    guard = Guard(RenewingAccounts(), FakeApiKeys(), FakeScope(), RecordingAudit(), table=TABLE)
    cookie = {"cookie": f"{SESSION_COOKIE}=old-radiologist", "accept": "text/html"}
    decision = guard.check("GET", "/pacs/", cookie, {}, "10.0.0.1")
    assert (decision.allowed, decision.renewed, decision.principal.role) == (True, "tok-radiologist", "radiologist")
    for path in ("/pacs/api/studies", "/dicom-web/studies/1.2/series"):  # pages, API, the viewer's data
        again = guard.check("GET", path, cookie, {}, "10.0.0.1")
        assert (again.allowed, again.renewed) == (True, "tok-radiologist")
    assert guard._accounts.renewals == [("old-radiologist", "10.0.0.1")]  # one look-up per token lifetime
    assert guard.check("GET", "/pacs/static/pacs.css", cookie, {}, "").renewed == ""  # public answers: no cookie
    # A bearer token is never renewed behind its client's back: it refreshes explicitly.
    assert guard.check("GET", "/pacs/api/studies", {"authorization": "Bearer old-radiologist"}, {}, "").status == 401


def test_an_ended_session_says_it_expired_and_is_not_looked_up_again():
    guard = Guard(RenewingAccounts(), FakeApiKeys(), FakeScope(), RecordingAudit(), table=TABLE)
    cookie = {"cookie": f"{SESSION_COOKIE}=old-gone"}
    for _ in range(3):
        decision = guard.check("GET", "/pacs/", cookie, {}, "")
        assert (decision.status, decision.reason) == (401, "your session expired; please sign in again")
    assert len(guard._accounts.renewals) == 1


def cookie_headers(role, **extra):
    return dict({"cookie": f"other=1; {SESSION_COOKIE}=tok-{role}"}, **extra)


def test_csrf_applies_to_state_changes_with_the_session_cookie(guard):
    assert guard.check("GET", "/pacs/api/users", cookie_headers("admin"), {}, "").allowed
    missing = guard.check("POST", "/pacs/api/users", cookie_headers("admin"), {}, "")
    assert (missing.allowed, missing.status) == (False, 403) and "CSRF" in missing.reason
    wrong = guard.check("POST", "/pacs/api/users", cookie_headers("admin", **{"x-csrf-token": "nope"}), {}, "")
    assert (wrong.allowed, wrong.status) == (False, 403)
    right = guard.check("POST", "/pacs/api/users", cookie_headers("admin", **{"x-csrf-token": "csrf-admin"}), {}, "")
    assert right.allowed and not right.form_csrf
    # Orthanc's own routes too (the viewer's session reaches them with the cookie).
    assert not guard.check("POST", "/tools/find", cookie_headers("admin"), {}, "").allowed
    # A bearer token is not sent by a browser on its own: no CSRF check.
    assert guard.check("POST", "/pacs/api/users", bearer("admin"), {}, "").allowed


def test_a_form_post_is_left_to_the_page_but_never_to_the_json_api(guard):
    form = {"content-type": "application/x-www-form-urlencoded"}
    page = guard.check("POST", "/pacs/admin/users", cookie_headers("admin", **form), {}, "")
    assert page.allowed and page.form_csrf
    # The JSON API reads any body as JSON: a same-site "form" could carry JSON.
    api = guard.check("POST", "/pacs/api/users", cookie_headers("admin", **form), {}, "")
    assert (api.allowed, api.status) == (False, 403)


def test_api_keys_as_bearer_and_as_basic_password(guard):
    key = {"authorization": "Bearer pacs_goodkey"}
    assert guard.check("GET", "/studies", key, {}, "").allowed
    assert not guard.check("GET", "/system", key, {}, "").allowed  # technologist's key
    basic = lambda user, secret: {"authorization": "Basic " + base64.b64encode(f"{user}:{secret}".encode()).decode()}  # noqa: E731
    assert guard.check("GET", "/studies", basic("keyowner", "pacs_goodkey"), {}, "").allowed
    assert guard.check("GET", "/studies", basic("KeyOwner ", "pacs_goodkey"), {}, "").allowed
    assert not guard.check("GET", "/studies", basic("someone", "pacs_goodkey"), {}, "").allowed
    assert not guard.check("GET", "/studies", basic("keyowner", "a password"), {}, "").allowed
    assert not guard.check("GET", "/studies", {"authorization": "Basic !!!"}, {}, "").allowed
    assert not guard.check("GET", "/studies", {"authorization": "Bearer pacs_wrong"}, {}, "").allowed


@pytest.mark.parametrize(
    "headers",
    [
        {"authorization": "Bearer"},
        {"authorization": "Bearer "},
        {"authorization": "Digest x"},
        {"authorization": "Basic " + base64.b64encode(b"\xff\xfe:\x00").decode()},
        {"cookie": f"{SESSION_COOKIE}="},
        {"cookie": ";;;=;"},
        {"authorization": "Bearer " + "x" * 10000},
    ],
)
def test_garbage_credentials_are_refused_without_raising(guard, headers):
    decision = guard.check("GET", "/pacs/api/me", headers, {}, "")
    assert (decision.allowed, decision.status) == (False, 401)


# --- tokens -------------------------------------------------------------------


def claims(**overrides):
    now = int(time.time())
    data = {"sub": "3", "name": "ann", "role": "radiologist", "sid": "s1", "csrf": "c", "iat": now, "exp": now + 60}
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}


def test_token_round_trip_and_the_session_end_caps_its_expiry():
    codec = TokenCodec(SECRET, ttl_seconds=900)
    now = time.time()
    token = codec.issue(3, "ann", "radiologist", "s1", "c", now, not_after=now + 30)
    decoded = codec.decode(token)
    assert (decoded.user_id, decoded.username, decoded.role, decoded.session_id) == (3, "ann", "radiologist", "s1")
    assert decoded.expires <= now + 30


def test_forged_tokens_are_refused():
    codec = TokenCodec(SECRET)
    good = jwt.encode(claims(), SECRET, algorithm="HS256")
    assert codec.decode(good).role == "radiologist"
    header, payload, signature = good.split(".")
    tampered_payload = base64.urlsafe_b64encode(json.dumps(claims(role="admin")).encode()).rstrip(b"=").decode()
    forged = {
        "other key": jwt.encode(claims(), b"k" * 64, algorithm="HS256"),
        "alg none": jwt.encode(claims(role="admin"), None, algorithm="none"),
        "HS512": jwt.encode(claims(), SECRET, algorithm="HS512"),
        "tampered payload": f"{header}.{tampered_payload}.{signature}",
        "no signature": f"{header}.{payload}.",
        "missing sid": jwt.encode(claims(sid=None), SECRET, algorithm="HS256"),
        "sub not a number": jwt.encode(claims(sub="admin"), SECRET, algorithm="HS256"),
        "garbage": "not.a.token",
    }
    for what, token in forged.items():
        with pytest.raises(TokenError) as error:
            codec.decode(token)
        assert not error.value.expired, what


def test_expired_token_is_refused_but_refresh_may_read_it():
    codec = TokenCodec(SECRET)
    old = jwt.encode(claims(iat=int(time.time()) - 100, exp=int(time.time()) - 10), SECRET, algorithm="HS256")
    with pytest.raises(TokenError) as error:
        codec.decode(old)
    assert error.value.expired
    assert codec.decode(old, verify_exp=False).session_id == "s1"


# --- passwords ----------------------------------------------------------------


def test_hasher_verifies_and_pays_one_hash_for_unknown_users():
    hasher = Hasher(cost=4)
    hashed = hasher.hash("Correct-horse-9")
    assert hasher.verify("Correct-horse-9", hashed)
    assert not hasher.verify("Correct-horse-8", hashed)
    assert not hasher.verify("Correct-horse-9", None)  # unknown user: the dummy hash
    assert not hasher.verify("x" * 100, hashed)  # beyond bcrypt's 72 bytes
    assert not hasher.verify("anything", "not a bcrypt hash")


@pytest.mark.parametrize(
    "password, username",
    [
        ("short1!", "ann"),
        ("qwertyuiop", "ann"),
        ("password123", "ann"),
        ("Password123!", "ann"),
        ("my-name-is-annabel", "annabel"),
        ("é" * 40, "ann"),
        (None, "ann"),
        (1234567890123, "ann"),
    ],
)
def test_password_policy_rejects(password, username):
    with pytest.raises(PasswordRejected):
        check_policy(password, username)


def test_password_policy_accepts_a_decent_password():
    check_policy("Violet-Harbour-Lantern-42", "ann")


# --- JSON bodies and numbers --------------------------------------------------


@pytest.mark.parametrize(
    "body, status",
    [
        (b"x" * (1024 * 1024 + 1), 413),
        (b"not json", 400),
        (b"\xff\xfe", 400),
        (b"[1, 2]", 400),
        (b'"text"', 400),
        (b"null", 400),
        (b"[" * 100_000, 400),
        (b'{"a":' * 1000 + b"1" + b"}" * 1000, 400),
    ],
)
def test_bad_json_bodies_are_4xx(body, status):
    with pytest.raises(HttpError) as error:
        Request("POST", "/pacs/api/x", body=body).json()
    assert error.value.status == status


def test_json_nesting_limit_is_exact_and_ignores_brackets_in_strings():
    deep = "[" * MAX_JSON_DEPTH + "]" * MAX_JSON_DEPTH
    assert json_nesting_ok(deep) and not json_nesting_ok("[" + deep + "]")
    assert json_nesting_ok(json.dumps({"text": "[[[{{{" * 1000, "quote": '\\"[' * 100, "list": [[1]]}))
    assert Request("POST", "/x", body=json.dumps({"a": {"b": [1, {"c": "[[["}]}}).encode()).json()["a"]["b"][0] == 1


@pytest.mark.parametrize("value", ["abc", "1.5", None, 1.5, True, [1], 2**63, "99999999999999999999999"])
def test_int_param_refuses_what_is_not_a_64_bit_whole_number(value):
    with pytest.raises(HttpError) as error:
        int_param(value, "id")
    assert error.value.status == 400


def test_int_param_accepts_whole_numbers():
    assert int_param("42", "id") == 42 and int_param(7, "id") == 7 and int_param("-1", "id") == -1
