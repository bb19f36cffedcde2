"""`can(principal, action, target)`, the one question every part asks (plugin/permissions.py):
its object rules for every role and ownership, its refusal of unknown actions, and the
invariant that no role name is compared anywhere else in plugin/."""

import re
from pathlib import Path
from types import SimpleNamespace

import pytest

from plugin import permissions
from plugin.permissions import ROLES, can

PLUGIN = Path(__file__).resolve().parent.parent / "plugin"
ME, COLLEAGUE = 1, 2


def who(role, user_id=ME):
    return SimpleNamespace(role=role, user_id=user_id)


def study(claimed_by=None, assignee=None):
    return SimpleNamespace(claimed_by_id=claimed_by, assignee_id=assignee)


def report(author=None, status="draft"):
    return SimpleNamespace(author_id=author, is_signed=status in ("final", "amended"))


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("permission", sorted(permissions.ALL_PERMISSIONS))
def test_a_named_permission_is_the_roles_own(role, permission):
    assert can(who(role), permission) is (permission in permissions.ROLE_PERMISSIONS[role])


def test_nobody_and_an_unknown_role_can_do_nothing():
    assert not can(None, "studies.read")
    assert not any(can(who("owner"), permission) for permission in permissions.ALL_PERMISSIONS)


def test_an_unknown_action_is_a_programming_error_not_a_no():
    with pytest.raises(ValueError, match="no such permission"):
        can(who("admin"), "studies.raed")


def test_only_the_referrer_is_held_to_a_scope():
    assert [role for role in ROLES if not can(who(role), "studies.read_all")] == ["referrer"]


@pytest.mark.parametrize(
    "role, claimed_by, allowed",
    [
        ("radiologist", None, True),
        ("radiologist", ME, True),
        ("radiologist", COLLEAGUE, False),
        ("admin", COLLEAGUE, True),
        ("technologist", COLLEAGUE, False),
    ],
)
def test_a_claim_is_released_by_its_holder_or_an_admin(role, claimed_by, allowed):
    assert can(who(role), "studies.release", study(claimed_by=claimed_by)) is allowed


@pytest.mark.parametrize(
    "role, assigned_to, new_assignee, allowed",
    [
        ("radiologist", None, ME, True),  # takes an unassigned study
        ("radiologist", ME, None, True),  # gives back their own
        ("radiologist", None, COLLEAGUE, False),  # hands it to someone else
        ("radiologist", COLLEAGUE, ME, False),  # takes a colleague's
        ("radiologist", COLLEAGUE, None, False),  # unassigns a colleague
        ("admin", COLLEAGUE, ME, True),
        ("admin", None, COLLEAGUE, True),
        ("technologist", None, ME, False),  # does not read
        ("referrer", None, ME, False),
    ],
)
def test_assignment_rules(role, assigned_to, new_assignee, allowed):
    assignee = None if new_assignee is None else SimpleNamespace(id=new_assignee)
    assert can(who(role), "studies.assign", (study(assignee=assigned_to), assignee)) is allowed


@pytest.mark.parametrize(
    "role, author, allowed",
    [
        ("radiologist", None, True),  # no report yet: whoever writes first is its author
        ("radiologist", ME, True),
        ("radiologist", COLLEAGUE, False),
        ("admin", COLLEAGUE, True),
        ("technologist", ME, False),
        ("referrer", ME, False),
    ],
)
def test_a_draft_is_its_authors_or_an_admins(role, author, allowed):
    target = None if author is None else report(author=author)
    assert can(who(role), "reports.edit", target) is allowed


def test_a_draft_that_names_no_author_is_an_admins_only():
    assert not can(who("radiologist"), "reports.edit", report(author=None))
    assert can(who("admin"), "reports.edit", report(author=None))


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("status", ["draft", "final", "amended", None])
def test_drafts_are_for_writers_and_signed_reports_for_every_reader(role, status):
    target = None if status is None else report(author=COLLEAGUE, status=status)
    writer = role in ("radiologist", "admin")
    assert can(who(role), "reports.view", target) is (writer or status in ("final", "amended"))


# --- no role name compared outside the permission module --------------------------

ROLE_LITERAL = re.compile(r"""["'](?:""" + "|".join(ROLES) + r""")["']""")
# Where a role's name may still appear in plugin/, each for a reason other than a decision.
NOT_DECISIONS = {
    ("webui/templates/_macros.html", '"admin": _("Administrator"), "radiologist": _("Radiologist"),'),  # labels
    ("webui/templates/_macros.html", '"technologist": _("Technologist"), "referrer": _("Referring physician"),'),
    ("auth/accounts.py", 'self.create_user("admin", password, ADMIN, "Administrator",'),  # the first username
}


def test_no_role_name_appears_outside_the_permission_module():
    found = {
        (str(path.relative_to(PLUGIN)), line.strip())
        for pattern in ("*.py", "*.html", "*.js")
        for path in PLUGIN.rglob(pattern)
        if path.name != "permissions.py" and "migrations" not in path.parts  # migrations freeze their own
        for line in path.read_text(encoding="utf-8").splitlines()
        if ROLE_LITERAL.search(line)
    }
    unexplained = [
        (path, line)
        for path, line in found
        if not any(path == known_path and line.startswith(start) for known_path, start in NOT_DECISIONS)
    ]
    assert not unexplained


def test_object_actions_are_not_also_named_permissions():
    """A role granted an object action by name would skip the rule on its target."""
    assert not set(permissions.OBJECT_RULES) & permissions.ALL_PERMISSIONS
