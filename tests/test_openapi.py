"""The OpenAPI document names every JSON route the plugin serves, and no other."""

import re

from plugin import route_table, routing
from plugin.auth import routes as auth_routes
from plugin.dicomservices import order_routes
from plugin.http import Router
from plugin.openapi import document
from plugin.reports import routes as reports_routes
from plugin.worklist import routes as worklist_routes


def routes_of_api():
    """(method, path) of the plugin's /pacs/api and /pacs/health routes, from the router."""
    router = Router()  # the routers only: no database, no Orthanc
    routing.register(router, tuple(route for route in route_table.ROUTES if not route.page), None)
    auth_routes.register(router, None, None, None, None, None)
    worklist_routes.register(router, None, None, None, None)
    reports_routes.register(router, None)
    order_routes.register(router, None, None)
    found = set()
    for method, regex, _handler in router._routes:
        path = regex.pattern.strip("^$").replace("\\", "")
        path = re.sub(
            r"\(\?P<(\w+)>\[\^/\]\+\)",
            lambda m: "{" + {"user_id": "id", "key_id": "id"}.get(m.group(1), m.group(1)) + "}",
            path,
        )
        found.add((method.lower(), path))
    return found


def test_every_api_route_is_documented_and_nothing_else():
    documented = {(method, path) for path, ops in document(route_table.ROUTES)["paths"].items() for method in ops}
    assert routes_of_api() == documented


def test_served(pacs):
    answer = pacs.get("/pacs/api/openapi.json")
    assert answer.status_code == 200
    assert answer.json()["openapi"].startswith("3.")
