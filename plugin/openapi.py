"""GET /pacs/api/openapi.json: the plugin's HTTP API described (OpenAPI 3.1)."""

import functools

from plugin import routing
from plugin.auth.permissions import AUTHENTICATED
from plugin.http import Response
from plugin.models import PRIORITIES
from plugin.orders.fields import FIELDS as ORDER_FIELDS
from plugin.orders.fields import REQUIRED as ORDER_REQUIRED
from plugin.orders.models import ORDER_STATUSES
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


def _query(name, description, schema=None):
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": schema or {"type": "string"},
    }


def _obj(*required, **properties):
    return {"type": "object", "required": list(required), "properties": properties}


STRING, INTEGER, BOOLEAN = {"type": "string"}, {"type": "integer"}, {"type": "boolean"}
UID = {"name": "uid", "in": "path", "required": True, "description": "StudyInstanceUID", "schema": STRING}
ID = {"name": "id", "in": "path", "required": True, "schema": INTEGER}
ORDER_BODY = {
    "type": "object",
    "required": list(ORDER_REQUIRED),
    "properties": dict(
        {name: STRING for name in ORDER_FIELDS},
        scheduled_at={"type": "string", "format": "date-time"},
        patient_birth_date={"type": "string", "format": "date"},
        priority={"enum": list(PRIORITIES)},
        patient_sex={"enum": ["M", "F", "O", ""]},
        scheduled_station_aet={"oneOf": [STRING, {"type": "array", "items": STRING}]},
    ),
}


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
            "/pacs/api/orders": {
                "get": _op(
                    "Orders, by scheduled time: {items, total}",
                    "orders.read",
                    params=[
                        _query("status", "comma list of " + ", ".join(ORDER_STATUSES)),
                        _query("modality", "comma list of modality codes"),
                        _query("date_from", "YYYY-MM-DD (scheduled date)"),
                        _query("date_to", "YYYY-MM-DD"),
                        _query("q", "patient name, patient ID or accession; partial"),
                        _query("page", "1-based", INTEGER),
                        _query("page_size", "1-200", INTEGER),
                    ],
                ),
                "post": _op(
                    "Schedule a procedure (a modality worklist item; on the reading worklist as "
                    "scheduled); the accession number is generated when absent; a known patient ID "
                    "lends name, birth date and sex",
                    "orders.write",
                    {
                        "201": {"description": "created"},
                        "409": {"description": "accession number or StudyInstanceUID in use", **_json(ERROR)},
                    },
                    ORDER_BODY,
                ),
            },
            "/pacs/api/orders/{id}": {
                "get": _op(
                    "One order with its performed procedure steps (MPPS)",
                    "orders.read",
                    {"404": {"description": "unknown"}},
                    params=[ID],
                ),
                "put": _op(
                    "Change a scheduled order (the fields given)",
                    "orders.write",
                    {"409": {"description": "no longer scheduled, or a number in use", **_json(ERROR)}},
                    _obj(**ORDER_BODY["properties"]),
                    params=[ID],
                ),
            },
            "/pacs/api/orders/{id}/cancel": {
                "post": _op(
                    "Cancel an order (scheduled, in progress or discontinued)",
                    "orders.write",
                    {"409": {"description": "completed or arrived", **_json(ERROR)}},
                    _obj(reason=STRING),
                    params=[ID],
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
