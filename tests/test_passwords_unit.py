"""The password policy (zxcvbn's score), and Accounts on a real SQLite database
without Orthanc: the lockout rule (accounts and addresses counted apart),
"must change password" as the guard asks it, and a password change ending the
other sessions."""

import ast
import secrets
import string
import time
from pathlib import Path

import fakes
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from zxcvbn import zxcvbn

from plugin import db, migrations
from plugin.auth.accounts import Accounts, LockoutPolicy
from plugin.auth.models import LoginFailure, Session
from plugin.auth.passwords import MAX_BYTES, MIN_LENGTH, MIN_SCORE, Hasher, PasswordRejected, check_policy
from plugin.auth.tokens import TokenCodec
from plugin.errors import Conflict, DomainError, Forbidden, Locked
from plugin.http import HTTP_STATUS, http_status

REPO = Path(__file__).resolve().parent.parent
LOCKED = HTTP_STATUS[Locked]  # the HTTP status of a login refused by the lockout
WEAK = ("aaaaaaaaaa", "1111111111", "abcdefghij", "clinic2026", "Password2026", "qwertyuiop")


# --- the policy -------------------------------------------------------------------------


@pytest.mark.parametrize("weak", WEAK)
def test_repeated_sequential_and_dictionary_passwords_are_refused_saying_why(weak):
    with pytest.raises(PasswordRejected) as refused:
        check_policy(weak, "ann")
    feedback = zxcvbn(weak)["feedback"]
    reasons = [feedback["warning"]] + feedback["suggestions"]
    message = str(refused.value)
    assert "too common or easy to guess" in message and f"{MIN_SCORE} needed" in message
    assert any(reason and reason in message for reason in reasons), message


def passwords_in_the_repository():
    """Every password literal tests/ and bench/ create users with: module constants
    named *PASSWORD* (formatted for each role and a few numbers), (user, password)
    pairs, and "password"/"new_password" values in dicts and keyword arguments."""
    found = set()
    for path in sorted((REPO / "tests").glob("*.py")) + sorted((REPO / "bench").glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Assign)
                and isinstance(node.value, ast.Constant)
                and any(isinstance(t, ast.Name) and "PASSWORD" in t.id for t in node.targets)
            ):
                found.add(node.value.value)
            elif (
                isinstance(node, ast.Assign)
                and isinstance(node.value, ast.Tuple)
                and len(node.value.elts) == 2
                and all(isinstance(e, ast.Constant) for e in node.value.elts)
                and "-pw-" in str(node.value.elts[1].value)
            ):
                found.add(node.value.elts[1].value)
            elif isinstance(node, ast.Dict):
                for key, value in zip(node.keys, node.values):
                    if (
                        isinstance(key, ast.Constant)
                        and key.value in ("password", "new_password")
                        and isinstance(value, ast.Constant)
                        and isinstance(value.value, str)
                        and len(value.value) >= MIN_LENGTH
                        and "x" * 10 not in value.value
                    ):
                        found.add(value.value)
    expanded = set()
    for literal in found:
        for fill in ("admin", "radiologist", "technologist", "referrer", "csrf", *range(10)):
            expanded.add(literal.format(fill) if "{}" in literal else literal)
    return sorted(expanded)


REFUSED_ON_PURPOSE = {"my-policy-person-9", "Ünïcødé-" * 10}  # test_auth_attacks' policy cases


def test_every_password_the_tests_and_benches_use_passes_the_policy():
    checked = [p for p in passwords_in_the_repository() if p not in REFUSED_ON_PURPOSE]
    assert len(checked) >= 20 and "Test-Chief-passw0rd-4-PACS" in checked
    for password in checked:
        check_policy(password, "someone")


def test_the_longest_accepted_password_is_scored_quickly():
    """zxcvbn's cost grows with the length; the policy never gives it more than 72 bytes."""
    worst = max(("1" * MAX_BYTES, "4@3$1!0|" * 9, "19901231" * 9), key=_seconds_to_check)
    assert _seconds_to_check(worst) < 0.25


def _seconds_to_check(password):
    started = time.perf_counter()
    try:
        check_policy(password, "ann")
    except PasswordRejected:
        pass
    return time.perf_counter() - started


@settings(max_examples=300, deadline=None)
@given(
    st.text(min_size=0, max_size=90) | st.text(alphabet=string.ascii_letters + string.digits + "-!", max_size=40),
    st.sampled_from(["", "ann", "radiologist", "admin"]),
)
def test_an_accepted_password_is_long_unguessable_and_free_of_the_username(password, username):
    try:
        check_policy(password, username)
    except PasswordRejected as refused:
        assert str(refused)
        return
    assert len(password) >= MIN_LENGTH and len(password.encode("utf-8")) <= MAX_BYTES
    assert not username or username not in password.lower()
    assert zxcvbn(password)["score"] >= MIN_SCORE


# --- Accounts on SQLite ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def accounts(tmp_path_factory):
    handle = db.open_database("sqlite:///" + str(tmp_path_factory.mktemp("accounts") / "pacs.sqlite"))
    migrations.migrate(handle)
    yield Accounts(Hasher(cost=4), TokenCodec(b"k" * 64), fakes.RecordingAudit())
    handle.close()


def new_user(accounts, role="radiologist"):
    name = f"u{secrets.token_hex(5)}"
    password = f"Harbour-Lantern-{secrets.token_hex(4)}"
    return accounts.create_user(name, password, role), password


def session_of(accounts, user, password, address="10.0.0.1"):
    _, claims, _ = accounts.login(user.username, password, address)
    return fakes.principal(
        user.role, user.id, user.username, session_id=claims.session_id, csrf=claims.csrf, via="bearer"
    )


def test_password_change_pending_follows_the_flag_at_once_and_never_holds_back_api_keys(accounts):
    user, password = new_user(accounts)
    principal = session_of(accounts, user, password)
    as_key = fakes.principal(user.role, user.id, user.username, via="apikey")
    assert not accounts.password_change_pending(principal)
    accounts.reset_password(user.id, "Admin-Chosen-Lantern-41", actor=None)
    fresh = session_of(accounts, user, "Admin-Chosen-Lantern-41")
    assert accounts.password_change_pending(fresh)  # no wait for the 2 s reload
    assert not accounts.password_change_pending(as_key)
    assert accounts.is_revoked(principal.session_id)  # the reset ended the earlier session
    accounts.change_password(fresh, "Admin-Chosen-Lantern-41", "Own-Chosen-Lantern-42")
    assert not accounts.password_change_pending(fresh) and not accounts.is_revoked(fresh.session_id)


def test_password_change_pending_is_a_set_look_up(accounts):
    user, password = new_user(accounts)
    principal = session_of(accounts, user, password)
    accounts.password_change_pending(principal)  # loaded
    started = time.perf_counter()
    for _ in range(100_000):
        accounts.password_change_pending(principal)
    assert (time.perf_counter() - started) / 100_000 < 5e-6  # microseconds, for every frame


def test_a_password_change_ends_the_other_sessions_only(accounts):
    user, password = new_user(accounts)
    bystander, bystander_password = new_user(accounts)
    sessions = [session_of(accounts, user, password) for _ in range(4)]
    theirs = session_of(accounts, bystander, bystander_password)
    accounts.change_password(sessions[0], password, "Entirely-New-Lantern-43")
    assert [accounts.is_revoked(s.session_id) for s in sessions] == [False, True, True, True]
    assert not accounts.is_revoked(theirs.session_id)
    with pytest.raises(Forbidden):
        accounts.change_password(sessions[0], "wrong-current-password", "Another-New-Lantern-44")


def test_an_admin_cannot_disable_or_demote_themselves_but_may_another_admin(accounts):
    admin, _ = new_user(accounts, "admin")
    other, _ = new_user(accounts, "admin")
    actor = fakes.principal(admin.role, admin.id, admin.username)
    for change in ({"disabled": True}, {"role": "radiologist"}, {"role": "referrer"}):
        with pytest.raises(Conflict, match="you cannot disable your own account or drop your own admin role"):
            accounts.update_user(admin.id, actor=actor, **change)
    assert accounts.update_user(admin.id, actor=actor, role="admin", display_name="Still Admin").role == "admin"
    assert accounts.update_user(other.id, actor=actor, role="radiologist").role == "radiologist"
    assert accounts.update_user(other.id, actor=actor, disabled=True).disabled


# A model of the lockout rule, checked against Accounts over generated attempts.
ADDRESSES = ("10.1.1.1", "10.2.2.2", "10.3.3.3")
POLICY = LockoutPolicy(window_seconds=900, per_account=3, per_address=6)  # small: both limits get reached


@pytest.fixture(scope="module")
def strict(accounts):
    return Accounts(Hasher(cost=4), TokenCodec(b"k" * 64), fakes.RecordingAudit(), lockout=POLICY)


@pytest.fixture(scope="module")
def real_users(accounts):
    return [new_user(accounts) for _ in range(3)]


REACHED = set()


attempts = st.lists(st.tuples(st.sampled_from(ADDRESSES), st.integers(0, 5), st.booleans()), min_size=1, max_size=60)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(attempts)
@example([("10.2.2.2", 1, True)] + [("10.1.1.1", 3 + n % 3, False) for n in range(7)] + [("10.1.1.1", 0, True)])
def test_the_lockout_follows_its_rule(strict, real_users, sequence):
    """Names 0-2 are real accounts, 3-5 unknown names. The rule: per_account failures on a name
    lock it (423, whatever the password); an address past per_address failures gets 423 for wrong passwords;
    the right password of an unlocked account always gets in, from any address, and clears
    that account's failures."""
    LoginFailure.delete().execute()
    failures = []  # (name, address) of each wrong password counted; a login clears its name's
    for address, which, right in sequence:
        user, password = real_users[which] if which < 3 else (None, "Not-A-Real-Pw-1")
        name = user.username if user else f"ghost-{which}"
        try:
            strict.login(name, password if right else "Wrong-Guess-Lantern-9", address)
            status = 200
        except DomainError as error:
            status = http_status(error)
        on_name = sum(1 for n, _ in failures if n == name)
        from_address = sum(1 for _, a in failures if a == address)
        if on_name >= POLICY.per_account:
            expected = LOCKED
        elif right and user is not None:
            expected = 200
            failures = [(n, a) for n, a in failures if n != name]
            REACHED.add(
                "right password from a locked address" if from_address > POLICY.per_address else "right password"
            )
        else:
            failures.append((name, address))
            expected = LOCKED if from_address + 1 > POLICY.per_address else 401
            REACHED.add(expected)
        assert status == expected, (name, address, right, failures)
    Session.delete().execute()


def test_the_generated_attempts_reached_every_case():
    """Runs after the property (file order): it met each branch of the rule."""
    assert REACHED == {401, LOCKED, "right password", "right password from a locked address"}
