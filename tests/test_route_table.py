"""The declared routes (plugin/route_table.py) are the single source of the router,
the guard's rules for them and the OpenAPI document: the three agree, no hand-
written rule also names a declared route, and each path literal appears once in
plugin/."""

import re
from pathlib import Path

import pytest

from plugin import openapi, permissions, route_table, routing
from plugin.http import Request, Router

PLUGIN = Path(__file__).resolve().parent.parent / "plugin"


def example(route):
    return re.sub(r"{\w+(?::path)?}", "1.2.840.10008.1", route.path)


@pytest.fixture(scope="module")
def router():
    router = Router()
    routing.register(router, route_table.ROUTES, None)
    return router


@pytest.mark.parametrize("route", route_table.ROUTES, ids=lambda r: f"{r.method} {r.path}")
def test_the_guard_decides_a_declared_route_by_its_own_rule(route):
    rule, study = route_table.TABLE.match(route.method, example(route))
    expected = route.rule()
    assert (
        rule.pattern.pattern,
        rule.permission,
        rule.methods,
        rule.study,
        rule.params,
        rule.study_param,
        rule.body,
    ) == (
        expected.pattern.pattern,
        expected.permission,
        expected.methods,
        expected.study,
        expected.params,
        expected.study_param,
        expected.body,
    )
    assert study == ("1.2.840.10008.1" if route.study else None)


@pytest.mark.parametrize("route", route_table.ROUTES, ids=lambda r: f"{r.method} {r.path}")
def test_no_hand_written_rule_also_names_a_declared_route(route):
    hand = permissions.PermissionTable(permissions.RULES)
    assert hand.match(route.method, example(route)) == (None, None)


@pytest.mark.parametrize("route", route_table.ROUTES, ids=lambda r: f"{r.method} {r.path}")
def test_the_router_serves_each_declared_route(router, route):
    handler, params = router._match(Request(route.method, example(route)))
    assert handler.__name__ == route.handler.__name__
    assert set(params) == set(route.parameters)


def test_the_openapi_document_has_every_declared_api_route_and_no_page():
    """Nor a route declared undocumented (files, the viewer's DICOMweb searches: not JSON API)."""
    paths = openapi.document(route_table.ROUTES)["paths"]
    for route in route_table.ROUTES:
        documented = route.documented and not route.page
        assert (route.method.lower() in paths.get(route.path, {})) is documented, route.path


@pytest.mark.parametrize("route", route_table.ROUTES, ids=lambda r: f"{r.method} {r.path}")
def test_each_declared_path_literal_appears_once_in_the_plugin(route):
    quoted = re.compile(r"""["']""" + re.escape(route.path) + r"""["']""")
    if route.path == "/":  # the root's literal is also every path separator: its declaration is looked for
        quoted = re.compile(r"""Route\("GET", "/",""")
    found = [
        f"{path.relative_to(PLUGIN)}:{number}"
        for path in sorted(PLUGIN.rglob("*.py"))
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if quoted.search(line)
    ]
    assert len(found) == 1, found


API_PATHS = {}
for _route in route_table.ROUTES:
    if _route.documented and not _route.page:
        API_PATHS.setdefault(_route.path, []).append(_route)


@pytest.mark.parametrize("path", sorted(API_PATHS))
def test_a_json_api_paths_other_methods_are_the_guards_405_under_the_paths_permission(path):
    declared = {route.method for route in API_PATHS[path]}
    for method in set(routing.METHODS) - declared:
        rule, _study = route_table.TABLE.match(method, example(API_PATHS[path][0]))
        assert (rule.permission, rule.only, rule.body) == (
            API_PATHS[path][0].permission,
            ", ".join(sorted(declared)),
            "none",
        ), method


def test_pages_and_files_are_no_such_page_for_other_methods():
    for route in route_table.ROUTES:
        if route.page or not route.documented:
            declared = {r.method for r in route_table.ROUTES if r.path == route.path}
            for method in set(routing.METHODS) - declared:
                rule, _study = route_table.TABLE.match(method, example(route))
                assert rule is None or not rule.only, (method, route.path)
