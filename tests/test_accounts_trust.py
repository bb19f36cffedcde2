"""Sessions, "must change password" and the lockout, over real HTTP to a real
Orthanc (issue 10, "Trust"): a password change ends the user's other sessions
(within the revocation cache's TTL), keeps the one that made it and the API
keys; an admin's reset ends them all; a user told to change their password
gets 403 everywhere (PACS API, DICOMweb, Orthanc's REST API) until they do;
failed logins are counted per account and per client address, the address
read from X-Forwarded-For only when the peer is a trusted proxy."""

import secrets
import time

import pytest
import requests
from pacs_server import ADMIN_PASSWORD, PacsServer

from plugin.auth.accounts import REVOCATION_TTL
from plugin.errors import Locked
from plugin.http import HTTP_STATUS

LOCKED = HTTP_STATUS[Locked]  # 423: Orthanc 1.10.1 cannot send 429

PASSWORD = "Trusted-Session-{}-Lantern"
NEW_PASSWORD = "Another-Violet-Harbour-{}"
PROXY = {"Pacs": {"TrustedProxies": ["127.0.0.1"]}}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """Behind a (pretend) reverse proxy on 127.0.0.1: every test sends its own
    X-Forwarded-For, so their login failures never add up."""
    pacs = PacsServer(tmp_path_factory.mktemp("trust"), overrides=PROXY).start()
    yield pacs
    pacs.kill()


def client(address):
    return {"X-Forwarded-For": address}


def unique_address():
    return f"10.{secrets.randbelow(250)}.{secrets.randbelow(250)}.{secrets.randbelow(250) + 1}"


def make_user(server, username, role="radiologist"):
    password = PASSWORD.format(secrets.randbelow(10**6))
    answer = server.post("/pacs/api/users", json={"username": username, "password": password, "role": role})
    assert answer.status_code == 201, answer.text
    return answer.json(), password


def log_in(server, username, password, address=None, session=None):
    return (session or requests).post(
        server.url("/pacs/api/auth/login"),
        timeout=30,
        headers=client(address or unique_address()),
        json={"username": username, "password": password},
    )


def token(server, username, password):
    answer = log_in(server, username, password)
    assert answer.status_code == 200, answer.text
    return answer.json()["access_token"]


def as_bearer(server, credential, path="/pacs/api/me", method="GET", **kwargs):
    return requests.request(
        method, server.url(path), timeout=30, headers={"Authorization": f"Bearer {credential}"}, **kwargs
    )


def api_key_of(server, user_id):
    answer = server.post("/pacs/api/apikeys", json={"name": f"key-{user_id}", "user_id": user_id})
    assert answer.status_code == 201, answer.text
    return answer.json()["key"]


def seconds_until_refused(request, limit):
    """How long until ``request()`` answers 401 (None if it still works after ``limit`` s)."""
    started = time.monotonic()
    while time.monotonic() - started <= limit:
        if request().status_code == 401:
            return time.monotonic() - started
        time.sleep(0.1)
    return None


def assert_error(answer, status, *words):
    assert answer.status_code == status, (answer.status_code, answer.text)
    message = answer.json()["error"]
    assert all(word in message for word in words), message
    return message


# --- a password change ends the other sessions -----------------------------------------


def test_changing_the_password_ends_the_other_sessions_but_not_this_one_nor_api_keys(server):
    user, password = make_user(server, "changer")
    keeper, other = token(server, "changer", password), token(server, "changer", password)
    browser = requests.Session()  # a third session, by cookie, as a browser holds it
    assert log_in(server, "changer", password, session=browser).status_code == 200
    key = api_key_of(server, user["id"])
    others = [lambda: as_bearer(server, other), lambda: browser.get(server.url("/pacs/api/me"), timeout=30)]
    assert all(check().status_code == 200 for check in others)

    changed = as_bearer(
        server,
        keeper,
        "/pacs/api/me/password",
        "POST",
        json={"current_password": password, "new_password": NEW_PASSWORD.format(1)},
    )
    assert changed.status_code == 200, changed.text

    for check in others:
        waited = seconds_until_refused(check, REVOCATION_TTL + 1)
        assert waited is not None and waited <= REVOCATION_TTL + 0.5
    assert as_bearer(server, other, "/pacs/api/auth/refresh", "POST").status_code == 401  # no new token either
    assert browser.post(server.url("/pacs/api/auth/refresh"), timeout=30).status_code == 401
    assert as_bearer(server, keeper).status_code == 200  # the session that changed it goes on
    assert as_bearer(server, keeper, "/pacs/api/auth/refresh", "POST").status_code == 200
    assert as_bearer(server, key, "/studies").status_code == 200  # API keys are not sessions
    assert log_in(server, "changer", password).status_code == 401
    assert log_in(server, "changer", NEW_PASSWORD.format(1)).status_code == 200


def test_the_account_page_form_ends_the_other_sessions_too(server):
    _, password = make_user(server, "form-changer")
    other = token(server, "form-changer", password)
    browser = requests.Session()
    csrf = log_in(server, "form-changer", password, session=browser).json()["csrf_token"]
    page = browser.post(
        server.url("/pacs/account/password"),
        timeout=30,
        allow_redirects=False,
        data={
            "csrf_token": csrf,
            "current_password": password,
            "new_password": NEW_PASSWORD.format(2),
            "confirm_password": NEW_PASSWORD.format(2),
        },
    )
    assert page.status_code == 200, page.text
    waited = seconds_until_refused(lambda: as_bearer(server, other), REVOCATION_TTL + 1)
    assert waited is not None and waited <= REVOCATION_TTL + 0.5
    assert browser.get(server.url("/pacs/api/me"), timeout=30).status_code == 200


def test_a_wrong_current_password_ends_nothing(server):
    _, password = make_user(server, "wrong-current")
    keeper, other = token(server, "wrong-current", password), token(server, "wrong-current", password)
    refused = as_bearer(
        server,
        keeper,
        "/pacs/api/me/password",
        "POST",
        json={"current_password": "Not-The-Password-77", "new_password": NEW_PASSWORD.format(3)},
    )
    assert_error(refused, 403, "current password")
    time.sleep(REVOCATION_TTL + 0.2)
    assert as_bearer(server, other).status_code == 200 and as_bearer(server, keeper).status_code == 200


def test_a_stolen_session_cannot_guess_the_current_password_faster_than_the_login(server):
    _, password = make_user(server, "guessed-current")
    stolen = token(server, "guessed-current", password)
    for attempt in range(5):
        refused = as_bearer(
            server,
            stolen,
            "/pacs/api/me/password",
            "POST",
            json={"current_password": f"Guess-{attempt}-Lantern", "new_password": NEW_PASSWORD.format(7)},
        )
        assert_error(refused, 403, "current password")
    locked = as_bearer(
        server,
        stolen,
        "/pacs/api/me/password",
        "POST",
        json={"current_password": password, "new_password": NEW_PASSWORD.format(7)},
    )
    assert_error(locked, LOCKED, "account", "15 minutes")
    assert_error(log_in(server, "guessed-current", password), LOCKED, "account")


def test_an_admin_reset_ends_every_session_of_the_user(server):
    user, password = make_user(server, "reset-me")
    sessions = [token(server, "reset-me", password) for _ in range(3)]
    assert all(as_bearer(server, each).status_code == 200 for each in sessions)
    bystander = token(server, "reset-me-not", make_user(server, "reset-me-not")[1])
    reset = server.post(f"/pacs/api/users/{user['id']}/password", json={"password": NEW_PASSWORD.format(4)})
    assert reset.status_code == 200, reset.text
    for each in sessions:
        waited = seconds_until_refused(lambda each=each: as_bearer(server, each), REVOCATION_TTL + 1)
        assert waited is not None and waited <= REVOCATION_TTL + 0.5
        assert as_bearer(server, each, "/pacs/api/auth/refresh", "POST").status_code == 401
    assert as_bearer(server, bystander).status_code == 200  # another user's session is untouched


# --- "must change password" is enforced, not only a page redirect ----------------------

HELD_BACK = ("/pacs/api/studies", "/dicom-web/studies", "/studies")


def test_must_change_password_holds_back_everything_until_the_password_is_changed(server):
    user, _ = make_user(server, "must-change")
    key = api_key_of(server, user["id"])
    assert (
        server.post(f"/pacs/api/users/{user['id']}/password", json={"password": NEW_PASSWORD.format(5)}).status_code
        == 200
    )
    login = log_in(server, "must-change", NEW_PASSWORD.format(5))
    assert login.status_code == 200 and login.json()["user"]["must_change_password"] is True
    pending = login.json()["access_token"]
    assert_error(as_bearer(server, pending, "/pacs/api/studies"), 403, "change your password first")
    for path in HELD_BACK:  # Orthanc's own routes: a bare 403 (its filter can send no body)
        assert as_bearer(server, pending, path).status_code == 403, path
    me = as_bearer(server, pending)
    assert me.status_code == 200 and me.json()["must_change_password"] is True
    assert as_bearer(server, key, "/studies").status_code == 200  # an API key has no password to change

    browser = requests.Session()  # a browser is sent to the account page, which it may open
    csrf = log_in(server, "must-change", NEW_PASSWORD.format(5), session=browser).json()["csrf_token"]
    browser.headers["Accept"] = "text/html,application/xhtml+xml"
    page = browser.get(server.url("/pacs/"), timeout=30, allow_redirects=False)
    assert page.status_code in (302, 303, 307) and page.headers["Location"].endswith("/pacs/account")
    assert browser.get(server.url("/pacs/account"), timeout=30).status_code == 200

    changed = browser.post(
        server.url("/pacs/api/me/password"),
        timeout=30,
        headers={"X-CSRF-Token": csrf},
        json={"current_password": NEW_PASSWORD.format(5), "new_password": NEW_PASSWORD.format(6)},
    )
    assert changed.status_code == 200, changed.text
    for path in HELD_BACK:
        assert browser.get(server.url(path), timeout=30, headers={"Accept": "application/json"}).status_code == 200
    assert browser.get(server.url("/pacs/"), timeout=30, allow_redirects=False).status_code == 200
    assert as_bearer(server, pending).status_code == 401  # the other session ended with the change


# --- the password policy through the API ---------------------------------------------------


@pytest.mark.parametrize("weak", ["aaaaaaaaaa", "1111111111", "abcdefghij", "clinic2026", "Password2026", "qwertyuiop"])
def test_weak_passwords_are_refused_with_the_reason(server, weak):
    answer = server.post(
        "/pacs/api/users", json={"username": f"weak-{secrets.token_hex(3)}", "password": weak, "role": "technologist"}
    )
    message = assert_error(answer, 400, "too common or easy to guess", "3 needed")
    assert message.split(": ", 1)[1].strip()  # zxcvbn's warning or suggestion says why


# --- lockout: accounts and addresses apart ----------------------------------------------------


def test_random_names_from_one_address_lock_out_no_real_account(server):
    address = unique_address()
    _, password = make_user(server, "sprayed-bystander")
    answers = [
        log_in(server, f"nobody-{secrets.token_hex(4)}", "Wrong-Guess-xyz-1", address).status_code for _ in range(25)
    ]
    assert answers[:20] == [401] * 20 and set(answers[20:]) == {LOCKED}
    assert_error(log_in(server, "sprayed-bystander", "Wrong-Guess-xyz-2", address), LOCKED, "address")
    assert log_in(server, "admin", ADMIN_PASSWORD, address).status_code == 200  # the right password gets in
    assert log_in(server, "sprayed-bystander", password, address).status_code == 200


def test_an_account_under_attack_is_locked_whatever_the_address(server):
    _, password = make_user(server, "attacked")
    _, other_password = make_user(server, "not-attacked")
    for attempt in range(5):  # from five addresses: the account's count is what locks it
        assert_error(log_in(server, "attacked", f"Wrong-Guess-{attempt}-abc"), 401, "wrong username or password")
    assert_error(log_in(server, "attacked", password), LOCKED, "account", "15 minutes")
    assert log_in(server, "not-attacked", other_password).status_code == 200


def test_behind_a_trusted_proxy_one_clients_failures_do_not_lock_another(server):
    first, second = unique_address(), unique_address()
    _, password = make_user(server, "second-client-user")
    for _ in range(21):
        log_in(server, f"ghost-{secrets.token_hex(4)}", "Wrong-Guess-xyz-3", first)
    assert log_in(server, "ghost-x", "Wrong-Guess-xyz-4", first).status_code == LOCKED
    assert_error(log_in(server, "ghost-y", "Wrong-Guess-xyz-5", second), 401, "wrong username or password")
    assert log_in(server, "second-client-user", password, second).status_code == 200
    failures = server.get("/pacs/api/audit", params={"action": "login_failed", "page_size": 100}).json()["items"]
    addresses = {item["address"] for item in failures if item["username"].startswith("ghost-")}
    assert first in addresses and second in addresses and "127.0.0.1" not in addresses


def test_without_a_trusted_proxy_x_forwarded_for_is_ignored(tmp_path):
    """Forged X-Forwarded-For values do not get a client past its address's count."""
    plain = PacsServer(tmp_path / "plain").start()
    try:
        answers = [log_in(plain, f"nobody-{n}", "Wrong-Guess-xyz-6", unique_address()).status_code for n in range(21)]
        assert answers[:20] == [401] * 20 and answers[20] == LOCKED
        assert log_in(plain, "admin", ADMIN_PASSWORD, unique_address()).status_code == 200
    finally:
        plain.kill()
