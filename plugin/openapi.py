"""GET /pacs/api/openapi.json: the plugin's HTTP API described (OpenAPI 3.1)."""

import functools

from plugin import routing
from plugin.auth.permissions import AUTHENTICATED
from plugin.dicomservices.models import ORDER_STATUSES
from plugin.dicomservices.orderfields import FIELDS as ORDER_FIELDS
from plugin.dicomservices.orderfields import REQUIRED as ORDER_REQUIRED
from plugin.http import Response
from plugin.models import PRIORITIES, STATUSES
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

LIST_PARAMS = (
    _query("status", "comma list", {"type": "string", "example": ",".join(STATUSES[:2])}),
    _query("modality", "comma list of modality codes, e.g. CT,MR"),
    _query("priority", "comma list of " + ", ".join(PRIORITIES)),
    _query("assignee", "a username, me or none"),
    _query("date", "today, yesterday, 7d or 30d"),
    _query("date_from", "YYYY-MM-DD (study date)"),
    _query("date_to", "YYYY-MM-DD"),
    _query("referring", "referring physician (DICOM PN)"),
    _query(
        "q",
        "name, patient ID or accession: each word is the start of a word (accent- and "
        "case-insensitive), e.g. 'mül an' finds MÜLLER^ANNA",
    ),
    _query("sort", "up to 3 columns, '-' for descending; default -priority,arrived_at"),
    _query("page", "1-based", INTEGER),
    _query("page_size", "1-200 (larger is capped)", INTEGER),
)


def document(routes=()):
    """The whole document: the declared routes' entries (plugin/routing.py) and,
    until every route is declared, the hand-written ones below."""
    paths, schemas = routing.openapi_paths(routes)
    spec = _hand_written()
    spec["paths"].update(paths)
    spec["components"]["schemas"].update(schemas)
    return spec


def _hand_written():
    token = _obj(
        "access_token",
        "token_type",
        "expires_in",
        access_token=STRING,
        token_type={"const": "Bearer"},
        expires_in=INTEGER,
        csrf_token=STRING,
        user={"type": "object"},
    )
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
            "/pacs/api/auth/login": {
                "post": dict(
                    _op(
                        "Log in",
                        "none",
                        {
                            "200": {"description": "a token and a session cookie", **_json(token)},
                            "423": {"description": "locked after repeated failures", **_json(ERROR)},
                        },
                        _obj("username", "password", username=STRING, password=STRING),
                    ),
                    security=[],
                )
            },
            "/pacs/api/auth/refresh": {
                "post": _op(
                    "A new token for a session still open", "none", {"200": {"description": "token", **_json(token)}}
                )
            },
            "/pacs/api/auth/logout": {"post": _op("End the session", "any logged-in user")},
            "/pacs/api/me": {"get": _op("The caller's account", "any logged-in user")},
            "/pacs/api/me/password": {
                "post": _op(
                    "Change own password (ends the caller's other sessions)",
                    "any logged-in user",
                    {"423": {"description": "locked after repeated failures", **_json(ERROR)}},
                    body=_obj("current_password", "new_password", current_password=STRING, new_password=STRING),
                )
            },
            "/pacs/api/users": {
                "get": _op("List users", "users.manage"),
                "post": _op(
                    "Create a user",
                    "users.manage",
                    {"201": {"description": "created"}, "409": {"description": "exists", **_json(ERROR)}},
                    _obj(
                        "username",
                        "password",
                        "role",
                        username=STRING,
                        password=STRING,
                        role={"enum": ["admin", "radiologist", "technologist", "referrer"]},
                        display_name=STRING,
                        referring_names={"type": "array", "items": STRING},
                    ),
                ),
            },
            "/pacs/api/users/{id}": {
                "get": _op("One user", "users.manage", params=[ID]),
                "put": _op(
                    "Change role, display name, referring names, disabled",
                    "users.manage",
                    body=_obj(
                        role=STRING,
                        display_name=STRING,
                        disabled=BOOLEAN,
                        referring_names={"type": "array", "items": STRING},
                    ),
                    params=[ID],
                ),
            },
            "/pacs/api/users/{id}/password": {
                "post": _op("Reset a password", "users.manage", body=_obj("password", password=STRING), params=[ID])
            },
            "/pacs/api/apikeys": {
                "get": _op("List API keys", "users.manage"),
                "post": _op(
                    "Create an API key (the key is shown once)",
                    "users.manage",
                    {"201": {"description": "created; 'key' holds the secret"}},
                    _obj("name", "user_id", name=STRING, user_id=INTEGER, role=STRING, expires_days=INTEGER),
                ),
            },
            "/pacs/api/apikeys/{id}": {"delete": _op("Revoke an API key", "users.manage", params=[ID])},
            "/pacs/api/audit": {
                "get": _op(
                    "The audit trail, newest first",
                    "audit.read",
                    params=[
                        _query("user", "username"),
                        _query("action", "action name"),
                        _query("study_uid", "StudyInstanceUID"),
                        _query("patient", "a patient ID, or words of a patient's name: entries of their studies"),
                        _query("outcome", "success, failure, denied"),
                        _query("date_from", "YYYY-MM-DD"),
                        _query("date_to", "YYYY-MM-DD"),
                        _query("page", "1-based", INTEGER),
                        _query("page_size", "at most 500", INTEGER),
                    ],
                )
            },
            "/pacs/api/audit.csv": {"get": _op("The audit trail as CSV (same filters)", "audit.read")},
            "/pacs/api/audit/verify": {"get": _op("Check the hash chain", "audit.read")},
            "/pacs/api/studies": {
                "get": _op(
                    "The reading worklist: {items, total, page, page_size}",
                    "studies.read (referrers: their studies only)",
                    params=LIST_PARAMS,
                )
            },
            "/pacs/api/studies/{uid}": {
                "get": _op(
                    "One study with series, priors and state",
                    "studies.read",
                    {"404": {"description": "unknown"}},
                    params=[UID],
                )
            },
            "/pacs/api/studies/{uid}/claim": {
                "post": _op(
                    "Claim (in_progress, exclusive; renews an own claim). "
                    "The body is optional; take_over: true takes a colleague's "
                    "live claim over (audited with their name)",
                    "studies.claim",
                    {"409": {"description": "claimed by someone else or not claimable", **_json(ERROR)}},
                    _obj(take_over=BOOLEAN),
                    params=[UID],
                )
            },
            "/pacs/api/studies/{uid}/release": {
                "post": _op("Release a claim (the reader or an admin)", "studies.claim", params=[UID])
            },
            "/pacs/api/studies/{uid}/assign": {
                "post": _op(
                    "Assign to a radiologist (null to unassign)",
                    "studies.claim",
                    body=_obj("assignee", assignee={"type": ["string", "null"]}),
                    params=[UID],
                )
            },
            "/pacs/api/studies/{uid}/priority": {
                "post": _op(
                    "Set the priority",
                    "studies.prioritise",
                    body=_obj("priority", priority={"enum": list(PRIORITIES)}),
                    params=[UID],
                )
            },
            "/pacs/api/studies/{uid}/series/{series_uid}/thumbnail": {
                "get": _op(
                    "A PNG of the series' middle image",
                    "studies.read",
                    params=[UID, {"name": "series_uid", "in": "path", "required": True, "schema": STRING}],
                )
            },
            "/pacs/api/dashboard": {
                "get": _op("Counts, studies per day, turnaround, workload, waiting longest", "dashboard.read")
            },
            "/pacs/api/studies/{uid}/report": {
                "get": _op(
                    "The report: sections, status, version, addenda, history, DICOM copies "
                    "(technologists and referrers: signed reports only)",
                    "reports.read",
                    params=[UID],
                ),
                "put": _op(
                    "Save the draft; send the version you loaded (409 if it changed meanwhile)",
                    "reports.write",
                    {
                        "409": {
                            "description": "stale version, signed, claimed by another, or a colleague's "
                            "draft without take_over",
                            **_json(ERROR),
                        },
                        "413": {"description": "a section is too long", **_json(ERROR)},
                    },
                    _obj(
                        "version",
                        version=INTEGER,
                        template_id=INTEGER,
                        clinical_information=STRING,
                        technique=STRING,
                        comparison=STRING,
                        findings=STRING,
                        impression=STRING,
                        take_over=BOOLEAN,
                    ),
                    params=[UID],
                ),
            },
            "/pacs/api/studies/{uid}/report/finalize": {
                "post": _op(
                    "Sign: locks the report, status final, PDF and DICOM copy made (author or admin)",
                    "reports.write",
                    {"409": {"description": "already signed or stale version", **_json(ERROR)}},
                    _obj("version", version=INTEGER),
                    params=[UID],
                )
            },
            "/pacs/api/studies/{uid}/report/addenda": {
                "post": _op(
                    "Append a signed addendum to a signed report; status amended",
                    "reports.write",
                    body=_obj("text", text=STRING),
                    params=[UID],
                )
            },
            "/pacs/api/studies/{uid}/report/pdf": {
                "get": _op("The report as PDF (drafts watermarked)", "reports.read", params=[UID])
            },
            "/pacs/api/report-templates": {
                "get": _op(
                    "Report templates, best match first",
                    "reports.write",
                    params=[_query("modality", "e.g. CT"), _query("body_part", "e.g. HEAD")],
                ),
                "post": _op(
                    "Create a template",
                    "templates.manage",
                    {"201": {"description": "created"}},
                    _obj("name", name=STRING, modality=STRING, body_part=STRING, sections={"type": "object"}),
                ),
            },
            "/pacs/api/report-templates/{template_id}": {
                "put": _op(
                    "Change or disable a template",
                    "templates.manage",
                    body=_obj(
                        name=STRING, modality=STRING, body_part=STRING, sections={"type": "object"}, disabled=BOOLEAN
                    ),
                    params=[{"name": "template_id", "in": "path", "required": True, "schema": INTEGER}],
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
