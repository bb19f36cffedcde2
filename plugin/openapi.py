"""GET /pacs/api/openapi.json: the plugin's HTTP API described (OpenAPI 3.1)."""

import functools

from plugin import routing
from plugin.http import Response
from plugin.permissions import AUTHENTICATED
from plugin.routing import Route


def document(routes=()):
    """The whole document, its paths and schemas from the declared routes (plugin/routing.py)."""
    paths, schemas = routing.openapi_paths(routes)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "PACS plugin API",
            "version": "1",
            "description": 'Errors are JSON {"error": message}. Browsers use the session '
            "cookie (state-changing requests need X-CSRF-Token); API clients "
            "send Authorization: Bearer <access token or API key>, or HTTP "
            "Basic with an API key as the password. Times in answers are ISO 8601 "
            "in UTC with a Z, to the second (2026-12-04T16:18:30Z), dates YYYY-MM-DD; "
            "an audit entry's at keeps its microseconds (2026-12-04T16:18:30.272995Z: "
            "the text its hash covers). An order's scheduled_at is taken as ISO 8601: "
            "with a Z or an offset, or without one as the clinic's local time "
            "(Pacs.TimeZone), which is what the modality worklist gives modalities.",
        },
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "basic": {"type": "http", "scheme": "basic"},
                "cookie": {"type": "apiKey", "in": "cookie", "name": "pacs_session"},
            },
        },
        "security": [{"bearer": []}, {"basic": []}, {"cookie": []}],
        "paths": paths,
    }


@functools.cache
def _answer(routes):
    return Response.json(document(routes))  # the same for every request: built once


def openapi_json(app, request):
    return _answer(app.routes)


ROUTES = (Route("GET", "/pacs/api/openapi.json", openapi_json, AUTHENTICATED, summary="This document"),)
