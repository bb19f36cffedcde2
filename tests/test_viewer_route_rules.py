"""The viewer's, the static files' and Orthanc's root's declared routes (plugin/viewer/routes.py,
plugin/site.py) decide every request exactly as the hand-written rules they replaced
did: same methods, permission, study scoping, referrer query, body limit, on ordinary and odd
paths; no other rule, hand-written or generated, names a path they name (so their place in
the table changes nothing); and the router gives each URL the handler it had."""

import re

import pytest

from plugin import permissions, route_table, routing, site
from plugin.auth.guard import Guard
from plugin.http import HttpError, Request, Router
from plugin.permissions import PUBLIC, QIDO, QIDO_BY_STUDY, _rule
from plugin.viewer import routes as viewer_routes

OURS = viewer_routes.ROUTES + site.ROUTES
OTHERS = tuple(route for route in route_table.ROUTES if route not in OURS)

# The hand-written rules as they were (plugin/permissions.py before these routes were declared).
REPLACED = (
    _rule("GET", r"/", PUBLIC),
    _rule("GET", r"/pacs/static/.+", PUBLIC),
    _rule("GET", r"/pacs/viewer(/.*)?", "images.read"),
    _rule("GET", r"/pacs/dicom-web/studies", "images.read"),
    _rule(
        "GET",
        r"/pacs/dicom-web/studies/(?P<study>[^/]+)/(series|instances|series/[^/]+/instances)",
        "images.read",
        "path",
        params=QIDO,
    ),
    _rule(
        "GET",
        r"/pacs/dicom-web/(studies|series|instances)",
        "images.read",
        "query",
        params=QIDO_BY_STUDY,
        study_param="StudyInstanceUID",
    ),
)

UID, SERIES = "1.2.840.10008.1", "1.2.840.10008.2"
PATHS = (
    "/",
    "//",
    "/pacs",
    "/pacs/",
    "/pacs/static",
    "/pacs/static/",
    "/pacs/static/pacs.css",
    "/pacs/static/vendor/chart.umd.min.js",
    "/pacs/static//pacs.css",
    "/pacs/static/../api/users",
    "/pacs/static/%2e%2e/secret.txt",
    "/pacs/static/a%2Fb.css",
    "/pacs/staticX/pacs.css",
    "/pacs/static.css",
    "/pacs/viewer",
    "/pacs/viewer/",
    "/pacs/viewer//",
    "/pacs/viewer/index.html",
    "/pacs/viewer/app-config.js",
    "/pacs/viewer/viewer/dicomweb",
    "/pacs/viewer//app.bundle.js",
    "/pacs/viewer/../api/users",
    "/pacs/viewer%2F..%2Fapi",
    "/pacs/viewerX",
    "/pacs/viewer.html",
    "/pacs/dicom-web",
    "/pacs/dicom-web/",
    "/pacs/dicom-web/studies",
    "/pacs/dicom-web/studies/",
    "/pacs/dicom-web//studies",
    "/pacs/dicom-web/series",
    "/pacs/dicom-web/instances",
    "/pacs/dicom-web/patients",
    "/pacs/dicom-web/servers",
    "/pacs/dicom-web/servers/x",
    f"/pacs/dicom-web/studies/{UID}",
    f"/pacs/dicom-web/studies/{UID}/series",
    f"/pacs/dicom-web/studies/{UID}/series/",
    f"/pacs/dicom-web/studies/{UID}//series",
    f"/pacs/dicom-web/studies/{UID}/instances",
    f"/pacs/dicom-web/studies/{UID}/metadata",
    f"/pacs/dicom-web/studies/{UID}/series/{SERIES}",
    f"/pacs/dicom-web/studies/{UID}/series/{SERIES}/instances",
    f"/pacs/dicom-web/studies/{UID}/series/{SERIES}/instances/1",
    f"/pacs/dicom-web/studies/{UID}/series//instances",
    "/pacs/dicom-web/studies//series",
    "/pacs/dicom-web/studies/../series",
    f"/pacs/dicom-web/studies/{UID}%2Fx/series",
    f"/pacs/dicom-web/studies/{UID}%00{SERIES}/series",
    "/pacs/dicom-web/studies/*/series",
    "/dicom-web/servers",
    "/dicom-web/studies",
    f"/dicom-web/studies/{UID}/series",
    "/tools/execute-script",
    "/app/explorer.html",
    "/pacs/api/users",
)
METHODS = ("GET", "POST", "PUT", "DELETE")
CASES = [(method, path) for method in METHODS for path in PATHS]


def decision(table, method, path):
    """What the guard decides by for a request (the rule's fields, the path's study), and
    the body sizes it refuses (the limit of a rule is its only use of ``body``)."""
    rule, study = table.match(method, path)
    guard = Guard(None, None, None, None, table=table)
    refused = tuple(
        bool(guard.body_refusal(method, path, {"content-length": str(size)})) for size in (1, 1024 * 1024 + 1)
    )
    if rule is None:
        return None, refused
    return (rule.methods, rule.permission, rule.study, rule.params, rule.study_param, study), refused


@pytest.mark.parametrize("method,path", CASES)
def test_the_guard_decides_as_the_replaced_hand_rules_did(method, path):
    before = permissions.PermissionTable(routing.rules(OTHERS) + REPLACED + permissions.RULES)
    assert decision(route_table.TABLE, method, path) == decision(before, method, path)


@pytest.mark.parametrize("method,path", CASES)
def test_no_other_rule_names_a_path_these_routes_name(method, path):
    """So generated first (or the hand rules where they were), no rule before them could
    have decided first: a path a hand rule denies is never one of theirs."""
    ours = permissions.PermissionTable(routing.rules(OURS)).match(method, path)
    replaced = permissions.PermissionTable(REPLACED).match(method, path)
    if ours == (None, None) and replaced == (None, None):
        return
    assert permissions.PermissionTable(permissions.RULES).match(method, path) == (None, None)
    assert permissions.PermissionTable(routing.rules(OTHERS)).match(method, path) == (None, None)


def test_the_replaced_rules_and_the_declared_ones_match_the_same_folded_paths():
    """The guard matches a path as Orthanc routes it (permissions.normalise_path): there
    the generated regexes and the hand-written ones accept exactly the same paths."""
    generated = [rule.pattern for rule in routing.rules(OURS)]
    for path in {permissions.normalise_path(path) for path in PATHS}:
        assert any(p.match(path) for p in generated) == any(r.pattern.match(path) for r in REPLACED), path


def old_router():
    """The router's patterns as plugin/viewer, plugin/webui and the worklist registered them,
    each handler named as the declared handler that now answers."""

    def named(name):
        def handler(request, **params):
            raise AssertionError("only matched, never called")

        handler.__name__ = name
        return handler

    router = Router()
    router.add("GET", "/", named("server_root"))
    router.add("GET", "/pacs/static/(?P<path>.+)", named("static_file"))
    router.add("GET", "/pacs/viewer", named("viewer_root"))
    router.add("GET", "/pacs/viewer/(?P<path>.*)", named("viewer_file"))
    for path in (
        "/studies",
        "/series",
        "/instances",
        "/studies/{study}/series",
        "/studies/{study}/instances",
        "/studies/{study}/series/{series}/instances",
    ):
        router.add("GET", "/pacs/dicom-web" + path, named("search"))
    return router


def routed(router, method, path):
    """(handler name, path parameters), or the router's status: 404 no route, 405 another method."""
    try:
        handler, params = router._match(Request(method, path))
    except HttpError as error:
        return error.status
    return handler.__name__, params


@pytest.mark.parametrize("method,path", CASES)
def test_the_router_gives_each_url_the_handler_it_had(method, path):
    new = Router()
    routing.register(new, OURS, None)
    expected = routed(old_router(), method, path)
    if path == "/pacs/static/":
        # Now the static route's (an empty name: its 400), where no route was: never reached,
        # the guard matches "/pacs/static", which no rule names (404 "no such page").
        assert routed(new, method, path) == (("static_file", {"path": ""}) if method == "GET" else 405)
        assert route_table.TABLE.match(method, path) == (None, None)
        return
    assert routed(new, method, path) == expected


def test_example_paths_cover_every_declared_route():
    for route in OURS:
        assert any(route.router_pattern().match(path) for path in PATHS), route.path
        assert re.search(r"\{\w+(:path)?\}", route.path) or route.path in PATHS
