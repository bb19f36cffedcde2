"""GET /pacs/api/openapi.json: the plugin's HTTP API described (OpenAPI 3.1)."""

import functools

from plugin import routing
from plugin.auth.permissions import AUTHENTICATED
from plugin.http import Response
from plugin.routing import Route

ERROR = {"$ref": "#/components/schemas/Error"}


def _json(schema):
    return {"content": {"application/json": {"schema": schema}}}


def _op(summary, permission, responses=None, body=None, params=()):
    op = {
        "summary": summary,
        "description": f"Permission: {permission}.",
        "responses": {
            "200": {"description": "OK"},
            **(responses or {}),
            "400": {"description": "bad input", **_json(ERROR)},
            "401": {"description": "no or bad login", **_json(ERROR)},
            "403": {"description": "not allowed", **_json(ERROR)},
        },
    }
    if body:
        op["requestBody"] = {"required": True, **_json(body)}
    if params:
        op["parameters"] = list(params)
    return op


def _obj(*required, **properties):
    return {"type": "object", "required": list(required), "properties": properties}


STRING, INTEGER, BOOLEAN = {"type": "string"}, {"type": "integer"}, {"type": "boolean"}
UID = {"name": "uid", "in": "path", "required": True, "description": "StudyInstanceUID", "schema": STRING}


def document(routes=()):
    """The whole document: the declared routes' entries (plugin/routing.py) and,
    until every route is declared, the hand-written ones below."""
    paths, schemas = routing.openapi_paths(routes)
    spec = _hand_written()
    spec["paths"].update(paths)
    spec["components"]["schemas"].update(schemas)
    return spec


def _hand_written():
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "PACS plugin API",
            "version": "1",
            "description": 'Errors are JSON {"error": message}. Browsers use the session '
            "cookie (state-changing requests need X-CSRF-Token); API clients "
            "send Authorization: Bearer <access token or API key>, or HTTP "
            "Basic with an API key as the password.",
        },
        "components": {
            "schemas": {"Error": _obj("error", error=STRING)},
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "basic": {"type": "http", "scheme": "basic"},
                "cookie": {"type": "apiKey", "in": "cookie", "name": "pacs_session"},
            },
        },
        "security": [{"bearer": []}, {"basic": []}, {"cookie": []}],
        "paths": {
            "/pacs/api/auth/refresh": {
                "post": _op(
                    "A new token for a session still open",
                    "none",
                    {"200": {"description": "token", **_json({"$ref": "#/components/schemas/Token"})}},
                )
            },
        },
    }


@functools.cache
def _answer(routes):
    return Response.json(document(routes))  # the same for every request: built once


def openapi_json(app, request):
    return _answer(app.routes)


ROUTES = (Route("GET", "/pacs/api/openapi.json", openapi_json, AUTHENTICATED, summary="This document"),)
