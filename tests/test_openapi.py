"""The OpenAPI document names every JSON route the plugin serves, and no other."""

import re

from plugin import route_table, routing
from plugin.http import Router
from plugin.openapi import document


def routes_of_api():
    """(method, path) of the plugin's /pacs/api and /pacs/health routes, from the router."""
    router = Router()  # the routers only: no database, no Orthanc
    routing.register(router, tuple(route for route in route_table.ROUTES if route.documented and not route.page), None)
    found = set()
    for method, regex, _handler in router._routes:
        path = regex.pattern.strip("^$").replace("\\", "")
        path = re.sub(r"\(\?P<(\w+)>\[\^/\]\+\)", r"{\1}", path)
        found.add((method.lower(), path))
    return found


def test_every_api_route_is_documented_and_nothing_else():
    documented = {(method, path) for path, ops in document(route_table.ROUTES)["paths"].items() for method in ops}
    assert routes_of_api() == documented


def test_served(pacs):
    answer = pacs.get("/pacs/api/openapi.json")
    assert answer.status_code == 200
    assert answer.json()["openapi"].startswith("3.")
