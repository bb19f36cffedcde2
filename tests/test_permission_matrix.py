"""The permission matrix: every role, and no login at all, against every route
family of the permission table (plugin/permissions.py) and the routes it
must not name, with each method, over real HTTP to a real Orthanc.

"Allowed" means the guard let the request through: the answer is not the
guard's refusal (Orthanc may still say 404, 400 or 405 for a dummy id, and a
handler may refuse for its own reasons). "Denied" is the guard's refusal: 401
(our /pacs routes, no login; or a redirect to the login page), 403 (bare
from Orthanc's HTTP filter, JSON with the guard's reason on our routes), or
404 "no such page" for a /pacs route the table does not name.
Requests that would reset or stop the server are not sent where the table
allows them; the table's answer is checked instead.

A referrer's account names the referring physician of one stored study (in
scope) and not of another (out of scope).
"""

import json
import re
from dataclasses import dataclass

import dicomgen
import pytest
import requests
from pacs_server import ADMIN_PASSWORD, PacsServer

from plugin import permissions
from plugin.route_table import TABLE

ADMIN, RAD, TECH, REF = "admin", "radiologist", "technologist", "referrer"
ROLES = (ADMIN, RAD, TECH, REF)
PRINCIPALS = ROLES + (None,)  # None: no login
EVERYONE = frozenset(PRINCIPALS)
LOGGED_IN = frozenset(ROLES)
STAFF = frozenset({ADMIN, RAD, TECH})
NOBODY = frozenset()
ONLY_ADMIN = frozenset({ADMIN})
READERS = frozenset({ADMIN, RAD})  # download, query other nodes
UPLOADERS = frozenset({ADMIN, TECH})

REFERRED = "HOUSE^GREGORY"
NOT_REFERRED = "WILSON^JAMES"
DUMMY = "00000000-00000000-00000000-00000000-00000000"  # an Orthanc id nothing has
DUMMY_UID = "1.2.826.0.1.3680043.8.498.999999"
PASSWORD = "Matrix-walk-Pa55-{}"


@dataclass(frozen=True)
class Row:
    method: str
    path: str  # a template: {study_in}, {study_out}, {orthanc_in}, {series_in}, ...
    allowed: frozenset  # the principals the guard must let through; everyone else is denied
    body: object = None  # dict/list -> JSON; bytes/str -> sent as is
    unsafe: bool = False  # never sent where it would be allowed (reset, shutdown)
    own_login: bool = False  # sent with a login of its own (logout ends the session it is sent with)


def row(method, path, allowed, body=None, unsafe=False, own_login=False):
    return Row(method, path, frozenset(allowed), body, unsafe, own_login)


MATRIX = (
    # --- ours: public ----------------------------------------------------------
    row("GET", "/pacs/health", EVERYONE),
    row("GET", "/pacs/static/no-such-file.css", EVERYONE),
    row("GET", "/pacs/login", EVERYONE),
    row("POST", "/pacs/login", EVERYONE, b""),  # the page refuses the form itself (no CSRF cookie)
    row("POST", "/pacs/api/auth/login", EVERYONE, {}),  # 400: fields missing
    # refresh is public, but without a token there is nothing to refresh (401)
    row("POST", "/pacs/api/auth/refresh", LOGGED_IN),
    # --- ours: any logged-in user ----------------------------------------------
    row("GET", "/pacs/api/me", LOGGED_IN),
    row("GET", "/pacs/api/me/", LOGGED_IN),
    row("GET", "/pacs/account", LOGGED_IN),
    row("GET", "/pacs/api/openapi.json", LOGGED_IN),
    row("POST", "/pacs/api/me/password", LOGGED_IN, {}),  # 400: fields missing
    row("POST", "/pacs/account/password", LOGGED_IN, {}),  # the page's own 403: wrong password
    row("POST", "/pacs/api/auth/logout", LOGGED_IN, own_login=True),
    row("POST", "/pacs/logout", LOGGED_IN, own_login=True),
    # --- ours: administration ----------------------------------------------------
    row("GET", "/pacs/api/users", ONLY_ADMIN),
    row("GET", "/pacs/api/users/", ONLY_ADMIN),
    row("POST", "/pacs/api/users", ONLY_ADMIN, {}),
    row("GET", "/pacs/api/users/1", ONLY_ADMIN),
    row("PUT", "/pacs/api/users/999999", ONLY_ADMIN, {}),
    row("POST", "/pacs/api/users/999999/password", ONLY_ADMIN, {}),
    row("DELETE", "/pacs/api/users/999999", ONLY_ADMIN),
    row("GET", "/pacs/api/apikeys", ONLY_ADMIN),
    row("GET", "/pacs/admin/templates", ONLY_ADMIN),
    row("POST", "/pacs/api/apikeys", ONLY_ADMIN, {}),
    row("DELETE", "/pacs/api/apikeys/999999", ONLY_ADMIN),
    row("GET", "/pacs/admin/users", ONLY_ADMIN),
    row("POST", "/pacs/admin/users", ONLY_ADMIN, b""),  # the page says what is missing
    row("POST", "/pacs/admin/users/999999", ONLY_ADMIN, b""),
    row("POST", "/pacs/admin/users/999999/password", ONLY_ADMIN, b""),
    row("POST", "/pacs/admin/apikeys", ONLY_ADMIN, b""),
    row("GET", "/pacs/admin/apikeys", ONLY_ADMIN),
    row("POST", "/pacs/admin/apikeys/999999/revoke", ONLY_ADMIN, b""),
    row("GET", "/pacs/api/audit", ONLY_ADMIN),
    row("GET", "/pacs/api/audit.csv", ONLY_ADMIN),
    row("GET", "/pacs/api/audit/verify", ONLY_ADMIN),
    row("GET", "/pacs/admin/audit", ONLY_ADMIN),
    # --- ours: worklist, studies, dashboard, viewer --------------------------------
    row("GET", "/pacs/", LOGGED_IN),
    row("GET", "/pacs/api/studies", LOGGED_IN),  # a referrer's list is filtered by the handler
    row("GET", "/pacs/api/studies/{study_in}", LOGGED_IN),
    row("GET", "/pacs/api/studies/{study_out}", STAFF),
    row("GET", "/pacs/studies/{study_in}", LOGGED_IN),
    row("GET", "/pacs/studies/{study_out}", STAFF),
    row("GET", "/pacs/api/studies/{study_in}/series/{series_in}/thumbnail", LOGGED_IN),
    row("GET", "/pacs/api/studies/{study_out}/series/{series_out}/thumbnail", STAFF),
    row("POST", "/pacs/api/studies/" + DUMMY_UID + "/claim", READERS),
    row("POST", "/pacs/api/studies/" + DUMMY_UID + "/release", READERS),
    row("POST", "/pacs/api/studies/" + DUMMY_UID + "/assign", READERS, {}),
    row("POST", "/pacs/api/studies/" + DUMMY_UID + "/priority", STAFF, {}),
    row("GET", "/pacs/api/dashboard", STAFF),
    row("GET", "/pacs/dashboard", STAFF),
    # --- ours: reports (a referrer reads final reports of studies in scope: the service
    # hides drafts; the guard holds the referrer to the scope) ---------------------------
    row("GET", "/pacs/api/studies/{study_in}/report", LOGGED_IN),
    row("GET", "/pacs/api/studies/{study_out}/report", STAFF),
    row("GET", "/pacs/api/studies/{study_in}/report/pdf", LOGGED_IN),
    row("GET", "/pacs/api/studies/{study_out}/report/pdf", STAFF),
    row("GET", "/pacs/studies/{study_in}/report", LOGGED_IN),
    row("PUT", "/pacs/api/studies/" + DUMMY_UID + "/report", READERS, {}),
    row("PUT", "/pacs/api/studies/{study_in}/report", READERS, []),  # 400: not an object
    row("POST", "/pacs/api/studies/" + DUMMY_UID + "/report/finalize", READERS, {}),
    row("POST", "/pacs/api/studies/" + DUMMY_UID + "/report/addenda", READERS, {}),
    row("GET", "/pacs/api/report-templates", READERS),
    row("POST", "/pacs/api/report-templates", ONLY_ADMIN, []),  # 400: not an object
    row("PUT", "/pacs/api/report-templates/999999", ONLY_ADMIN, []),
    # --- ours: orders (the modality worklist): technologists write, no referrer -------
    row("GET", "/pacs/api/orders", STAFF),
    row("GET", "/pacs/api/orders/999999", STAFF),
    row("GET", "/pacs/orders", STAFF),
    row("GET", "/pacs/orders/999999", STAFF),
    row("POST", "/pacs/api/orders", UPLOADERS, []),  # 400: not an object
    row("PUT", "/pacs/api/orders/999999", UPLOADERS, []),
    row("POST", "/pacs/api/orders/999999/cancel", UPLOADERS, {}),
    row("POST", "/pacs/orders", UPLOADERS, b""),
    row("POST", "/pacs/orders/999999", UPLOADERS, b""),
    row("POST", "/pacs/orders/999999/cancel", UPLOADERS, b""),
    # --- ours: other DICOM nodes, sending, jobs ----------------------------------------
    row("GET", "/pacs/api/nodes", STAFF),
    row("GET", "/pacs/nodes", STAFF),
    row("POST", "/pacs/api/nodes/nowhere/echo", STAFF, {}),
    row("POST", "/pacs/api/nodes/nowhere/query", READERS, {}),
    row("POST", "/pacs/api/nodes/nowhere/retrieve", READERS, {}),
    row("PUT", "/pacs/api/nodes/nowhere", ONLY_ADMIN, []),  # 400: not an object
    row("DELETE", "/pacs/api/nodes/nowhere", ONLY_ADMIN),
    row("POST", "/pacs/admin/nodes", ONLY_ADMIN, b""),
    row("POST", "/pacs/admin/nodes/nowhere/delete", ONLY_ADMIN, b""),
    row("POST", "/pacs/api/studies/" + DUMMY_UID + "/send", STAFF, {}),
    row("POST", "/pacs/api/studies/{study_out}/send", STAFF, []),
    row("GET", "/pacs/api/jobs/nothing", STAFF),
    row("GET", "/pacs/viewer/", LOGGED_IN),
    row("GET", "/pacs/viewer/index.html", LOGGED_IN),
    # --- DICOMweb and WADO-URI ---------------------------------------------------
    row("GET", "/dicom-web/studies/{study_in}/series", LOGGED_IN),
    row("GET", "/dicom-web/studies/{study_in}/metadata", LOGGED_IN),
    row("GET", "/dicom-web/studies/{study_in}/series/{series_in}/instances/{sop_in}/frames/1", LOGGED_IN),
    row("GET", "/dicom-web/studies/{study_out}/series", STAFF),
    row("GET", "/dicom-web/studies/{study_out}/metadata", STAFF),
    row("GET", "/dicom-web/studies/{study_out}/series/{series_out}/instances/{sop_out}/frames/1", STAFF),
    row("GET", "/dicom-web/studies/{study_in}/series?StudyInstanceUID={study_out}", STAFF),
    # Orthanc ends a path at %00, for the guard and its routing alike
    row("GET", "/dicom-web/studies/{study_out}%00{study_in}/series", STAFF),
    row("GET", "/pacs/api/studies/{study_out}%00{study_in}", STAFF),
    row("GET", "/dicom-web/studies", STAFF),  # a referrer must name the study
    row("GET", "/dicom-web/studies?StudyInstanceUID={study_in}", LOGGED_IN),
    row("GET", "/dicom-web/studies?StudyInstanceUID={study_out}", STAFF),
    row("GET", "/dicom-web/studies?StudyInstanceUID={study_in},{study_out}", STAFF),
    row("GET", "/dicom-web/studies?StudyInstanceUID={study_in}&0020000d={study_out}", STAFF),
    row("GET", "/dicom-web/studies?StudyInstanceUID={study_in}&20,d={study_out}", STAFF),
    row("GET", "/dicom-web/studies?StudyInstanceUID={study_in}&0x20,0xd={study_out}", STAFF),
    row("GET", "/dicom-web/studies?0020000D={study_out}&StudyInstanceUID={study_in}", STAFF),
    row("GET", "/dicom-web/series", STAFF),
    row("GET", "/dicom-web/series?StudyInstanceUID={study_in}", LOGGED_IN),
    row("GET", "/dicom-web/series?SeriesInstanceUID={series_out}", STAFF),
    # a referrer names the study by its keyword only: every other spelling is refused
    row("GET", "/dicom-web/instances?0020000D={study_in}", STAFF),
    row("GET", "/dicom-web/instances?StudyInstanceUID={study_in}", LOGGED_IN),
    row("GET", "/dicom-web/instances?StudyInstanceUID={study_out}", STAFF),
    row("GET", "/wado?requestType=WADO&studyUID={study_in}&seriesUID={series_in}&objectUID={sop_in}", LOGGED_IN),
    row("GET", "/wado?requestType=WADO&studyUID={study_out}&seriesUID={series_out}&objectUID={sop_out}", STAFF),
    row("GET", "/wado?requestType=WADO&objectUID={sop_out}", STAFF),
    row("POST", "/dicom-web/studies", UPLOADERS, b""),
    # our QIDO layer in front of DICOMweb (the viewer's searches)
    row("GET", "/pacs/dicom-web/studies", STAFF),
    row("GET", "/pacs/dicom-web/studies?StudyInstanceUID={study_in}", LOGGED_IN),
    row("GET", "/pacs/dicom-web/studies?StudyInstanceUID={study_out}", STAFF),
    row("GET", "/pacs/dicom-web/studies?StudyInstanceUID={study_in}&0020000d={study_out}", STAFF),
    row("GET", "/pacs/dicom-web/series?StudyInstanceUID={study_out}", STAFF),
    row("GET", "/pacs/dicom-web/instances?StudyInstanceUID={study_in}", LOGGED_IN),
    row("GET", "/pacs/dicom-web/instances?StudyInstanceUID={study_out}", STAFF),
    row("GET", "/pacs/dicom-web/studies/{study_in}/instances", LOGGED_IN),
    row("GET", "/pacs/dicom-web/studies/{study_out}/instances", STAFF),
    row("GET", "/pacs/dicom-web/studies/{study_in}/series", LOGGED_IN),
    row("GET", "/pacs/dicom-web/studies/{study_in}/series?StudyInstanceUID={study_out}", STAFF),
    row("GET", "/pacs/dicom-web/studies/{study_out}/series", STAFF),
    row("GET", "/pacs/dicom-web/studies/{study_in}/series/{series_in}/instances", LOGGED_IN),
    row("GET", "/pacs/dicom-web/studies/{study_out}/series/{series_out}/instances", STAFF),
    row("POST", "/dicom-web/studies/{study_in}", UPLOADERS, b""),
    # --- Orthanc's REST API: reading -----------------------------------------------
    row("GET", "/studies", STAFF),
    row("GET", "/studies/", STAFF),
    row("GET", "/studies/{orthanc_in}", STAFF),
    row("GET", "/studies/{orthanc_in}/instances", STAFF),
    row("GET", "/patients", STAFF),
    row("GET", "/series", STAFF),
    row("GET", "/instances", STAFF),
    row("GET", "/instances/{instance_in}/file", STAFF),
    row("POST", "/tools/find", STAFF, {"Level": "Study", "Query": {}}),
    row("POST", "/tools/lookup", STAFF, "{study_in}"),
    # --- downloading -------------------------------------------------------------------
    row("GET", "/studies/{orthanc_in}/archive", READERS),
    row("GET", "/studies/{orthanc_in}/media", READERS),
    row("POST", "/studies/{orthanc_in}/archive", NOBODY, {"Synchronous": True}),  # the GET form stays
    row("POST", "/tools/create-archive", NOBODY, {"Resources": ["{orthanc_in}"], "Synchronous": True}),
    row("POST", "/tools/create-media", NOBODY, {"Resources": [DUMMY]}),
    row("POST", "/tools/create-media-extended", NOBODY, {"Resources": [DUMMY]}),
    # --- uploading, changing, deleting ---------------------------------------------
    row("POST", "/instances", UPLOADERS, b""),
    row("POST", "/studies/" + DUMMY + "/anonymize", ONLY_ADMIN, {}),
    row("POST", "/studies/" + DUMMY + "/modify", ONLY_ADMIN, {}),
    row("DELETE", "/studies/" + DUMMY, ONLY_ADMIN),
    row("DELETE", "/series/" + DUMMY, ONLY_ADMIN),
    row("DELETE", "/instances/" + DUMMY, ONLY_ADMIN),
    row("DELETE", "/patients/" + DUMMY, ONLY_ADMIN),
    # --- other DICOM nodes and jobs ------------------------------------------------------
    row("GET", "/modalities", STAFF),
    row("GET", "/modalities/nowhere", STAFF),
    row("GET", "/modalities/nowhere/configuration", STAFF),
    # Orthanc's node routes with a body: the PACS's /pacs/api/nodes and send offer them checked
    row("POST", "/modalities/nowhere/echo", NOBODY, {}),
    row("POST", "/modalities/nowhere/store", NOBODY, DUMMY),
    row("POST", "/peers/nowhere/store", NOBODY, DUMMY),
    row("POST", "/modalities/nowhere/query", NOBODY, {"Level": "Study", "Query": {}}),
    row("POST", "/modalities/nowhere/move", NOBODY, {}),
    row("POST", "/modalities/nowhere/get", NOBODY, {}),
    row("POST", "/modalities/nowhere/find-worklist", NOBODY, {}),
    row("POST", "/modalities/nowhere/store-straight", NOBODY, b"DICM"),
    row("GET", "/queries", READERS),
    row("DELETE", "/queries/nothing", READERS),
    row("POST", "/queries/nothing/retrieve", NOBODY, {}),
    row("PUT", "/modalities/nowhere", NOBODY, {}),  # PUT /pacs/api/nodes/<name> instead
    row("DELETE", "/modalities/nowhere", ONLY_ADMIN),
    row("GET", "/jobs", STAFF),
    row("GET", "/jobs/nothing", STAFF),
    row("POST", "/jobs/nothing/cancel", ONLY_ADMIN, {}),
    row("POST", "/jobs/nothing/resubmit", ONLY_ADMIN, {}),
    # --- administration of Orthanc ---------------------------------------------------
    row("GET", "/peers", ONLY_ADMIN),
    row("PUT", "/peers/nowhere", NOBODY, {}),
    row("DELETE", "/peers/nowhere", ONLY_ADMIN),
    row("POST", "/peers/nowhere/system", NOBODY, {}),
    row("GET", "/system", ONLY_ADMIN),
    row("GET", "/system/", ONLY_ADMIN),
    row("GET", "/statistics", ONLY_ADMIN),
    row("GET", "/changes", ONLY_ADMIN),
    row("GET", "/exports", ONLY_ADMIN),
    row("GET", "/plugins", ONLY_ADMIN),
    row("GET", "/plugins/dicom-web", ONLY_ADMIN),
    row("GET", "/tools/generate-uid?level=study", ONLY_ADMIN),
    row("GET", "/tools/now", ONLY_ADMIN),
    row("POST", "/tools/nothing", ONLY_ADMIN, {}),
    row("PUT", "/tools/log-level", ONLY_ADMIN, "default"),
    row("DELETE", "/tools/nothing", ONLY_ADMIN),
    row("GET", "/app/explorer.html", ONLY_ADMIN),  # Explorer is off: 404 for the admin
    row("GET", "/", EVERYONE),  # the plugin's redirect to /pacs/ (it was Orthanc Explorer's, admin only)
    row("GET", "/favicon.ico", ONLY_ADMIN),
    row("POST", "/tools/reset", ONLY_ADMIN, {}, unsafe=True),
    row("POST", "/tools/shutdown", ONLY_ADMIN, {}, unsafe=True),
    # --- denied to everyone: named DENY, or named by no rule ---------------------------
    row("POST", "/tools/execute-script", NOBODY, "print(1)"),
    row("GET", "/tools/execute-script", NOBODY),
    row("PUT", "/tools/execute-script", NOBODY, "print(1)"),
    row("DELETE", "/tools/execute-script", NOBODY),
    row("POST", "/tools/execute-script/", NOBODY, "print(1)"),
    row("POST", "/tools/execute-script//", NOBODY, "print(1)"),
    row("POST", "/tools/execute%2Dscript", NOBODY, "print(1)"),
    row("POST", "/tools/execute-script%00/x", NOBODY, "print(1)"),
    row("POST", "/instances/{instance_in}/export", NOBODY, "/tmp/pacs-matrix-export.dcm"),
    row("POST", "/instances/{instance_in}/export/", NOBODY, "/tmp/pacs-matrix-export.dcm"),
    row("GET", "/instances/{instance_in}/export", NOBODY),
    row("PUT", "/instances/{instance_in}/export", NOBODY, "/tmp/pacs-matrix-export.dcm"),
    row("DELETE", "/instances/{instance_in}/export", NOBODY),
    row("POST", "/studies/{orthanc_in}/export", NOBODY, "/tmp"),
    row("GET", "/some/unknown", NOBODY),
    row("GET", "/pacs/api/unknown", NOBODY),
    row("GET", "/pacs/api/me/anything", NOBODY),
    # A declared API path, a method it does not take: the guard's 405 (Allow: GET) to whoever
    # may use the path, so nothing reaches a handler; no login is 401 as on the path.
    row("POST", "/pacs/api/me", LOGGED_IN, {}),
    row("PUT", "/system", NOBODY, {}),
    row("DELETE", "/system", NOBODY),
    row("PUT", "/patients/" + DUMMY + "/protected", ONLY_ADMIN, "1"),
    row("PUT", "/instances/" + DUMMY + "/metadata/1024", NOBODY, "x"),
    row("DELETE", "/instances/" + DUMMY + "/attachments/dicom", NOBODY),
    row("POST", "/studies/" + DUMMY + "/merge", ONLY_ADMIN, {}),
    row("POST", "/studies/" + DUMMY + "/split", ONLY_ADMIN, {}),
    row("POST", "/studies/" + DUMMY + "/reconstruct", ONLY_ADMIN, {}),
    row("DELETE", "/changes", NOBODY),
    row("DELETE", "/exports", NOBODY),
    row("GET", "/dicom-web/servers", NOBODY),
    row("POST", "/dicom-web/servers/nowhere/stow", NOBODY, {}),
    row("PUT", "/dicom-web/servers/nowhere", NOBODY, {}),
    row("DELETE", "/dicom-web/servers/nowhere", NOBODY),
    row("POST", "/dicom-web/studies/{study_in}/series", NOBODY, b""),
    row("PUT", "/dicom-web/studies/{study_in}", NOBODY, b""),
    row("DELETE", "/dicom-web/studies/{study_in}", NOBODY),
    row("DELETE", "/wado", NOBODY),
)


def wrong_method_rows(matrix):
    """Rows for the methods a declared JSON API path does not take (the guard's generated
    405 rules): each is let through (to be told 405) to exactly those a row of the path's
    own methods lets through (the widest such row: a referrer's in-scope study), or to
    everyone on a public path (whose handler may refuse for its own reasons, as refresh)."""
    rows = []
    for rule in TABLE.rules:
        if not rule.only:
            continue
        own = [
            entry
            for entry in matrix
            if entry.method in rule.only.split(", ") and rule.pattern.match(re.sub(r"{\w+}", "x", entry.path))
        ]
        widest = max(own, key=lambda entry: len(entry.allowed))
        allowed = EVERYONE if rule.permission == permissions.PUBLIC else widest.allowed
        rows += [
            row(method, widest.path, allowed, {} if method in ("POST", "PUT") else None)
            for method in sorted(rule.methods)
        ]
    return tuple(rows)


MATRIX += wrong_method_rows(MATRIX)


# --- the world the matrix runs in ---------------------------------------------------


def store_study(server, folder, referring_physician):
    spec = dicomgen.StudySpec(referring_physician=referring_physician)
    server.storescu(dicomgen.write(dicomgen.ct_series(spec, slices=2, rows=16, cols=16), folder))
    return spec.study_uid


def first_instance(server, study_uid):
    instance = server.get(f"/dicom-web/studies/{study_uid}/instances").json()[0]
    return instance["0020000E"]["Value"][0], instance["00080018"]["Value"][0]


def create_user(server, role, referring_names=()):
    answer = server.post(
        "/pacs/api/users",
        json={
            "username": f"matrix-{role}",
            "password": PASSWORD.format(role),
            "role": role,
            "display_name": f"Matrix {role}",
            "referring_names": list(referring_names),
        },
    )
    assert answer.status_code == 201, answer.text
    return answer.json()


def bearer(server, username, password):
    answer = server.login(username, password)
    assert answer.status_code == 200, answer.text
    return {"Authorization": f"Bearer {answer.json()['access_token']}"}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A PACS of its own (admin requests here must not disturb other tests)."""
    server = PacsServer(tmp_path_factory.mktemp("matrix")).start()
    try:
        dicom = tmp_path_factory.mktemp("matrix-dicom")
        study_in = store_study(server, dicom / "in", REFERRED)
        study_out = store_study(server, dicom / "out", NOT_REFERRED)
        for uid in (study_in, study_out):
            server.wait_indexed(uid, instances=2)
        orthanc_ids = {uid: oid for oid, uid in server.orthanc_studies().items()}
        series_in, sop_in = first_instance(server, study_in)
        series_out, sop_out = first_instance(server, study_out)
        instance_in = server.post("/tools/lookup", data=sop_in).json()[0]["ID"]
        for role in (RAD, TECH, REF):
            create_user(server, role, [REFERRED] if role == REF else [])
        headers = {role: bearer(server, f"matrix-{role}", PASSWORD.format(role)) for role in (RAD, TECH, REF)}
        headers[ADMIN] = bearer(server, "admin", ADMIN_PASSWORD)
        headers[None] = {}
        logins = {role: (f"matrix-{role}", PASSWORD.format(role)) for role in (RAD, TECH, REF)}
        logins[ADMIN] = ("admin", ADMIN_PASSWORD)
        headers["login"] = lambda principal: bearer(server, *logins[principal]) if principal else {}
        ids = dict(
            study_in=study_in,
            study_out=study_out,
            orthanc_in=orthanc_ids[study_in],
            series_in=series_in,
            sop_in=sop_in,
            series_out=series_out,
            sop_out=sop_out,
            instance_in=instance_in,
        )
        yield server, headers, ids
    finally:
        server.kill()  # thrown away: no need to wait for a graceful stop


def fill(template, ids):
    """A path or body with its {placeholders} replaced (JSON bodies have braces of their own)."""
    if not isinstance(template, str):
        return template
    for name, value in ids.items():
        template = template.replace("{" + name + "}", value)
    return template


def send(server, method, path, headers, body, ids):
    if isinstance(body, (dict, list)):
        body, headers = fill(json.dumps(body), ids), dict(headers, **{"Content-Type": "application/json"})
    return requests.request(
        method, server.url(path), data=fill(body, ids), headers=headers, timeout=60, allow_redirects=False
    )


# How the guard words a refusal on our /pacs routes (plugin/auth/guard.py); the HTTP
# filter's refusal on every other route is a bare 403.
GUARD_REFUSALS = (
    "this route is",
    "login required",
    "session",
    "invalid",
    "malformed Basic",
    "HTTP Basic",
    "your role may not",
    "name the study",
    "this study is not in your scope",
    "CSRF",
    "query parameter",
    "no such page",
)


def is_denied(answer):
    """Whether the guard refused: a 401, a login redirect, or a 403 that the guard (not a
    handler, e.g. "current password is wrong") gave."""
    if answer.status_code == 401:
        return True
    if answer.is_redirect:  # a page asked for without a login (a logout also ends on /pacs/login)
        return answer.headers.get("Location", "").startswith("/pacs/login?next=")
    if answer.status_code not in (403, 404):  # 404: a route of ours the table does not name ("no such page")
        return False
    if not answer.content:
        return answer.status_code == 403  # Orthanc's own 404s have no body either
    try:
        error = answer.json().get("error", "")
    except ValueError:
        return False  # a page's own refusal (HTML): the guard let the request through
    return error.startswith(GUARD_REFUSALS)


DENIED = "denied by the guard"
HANDLER_ERROR = "500 from a handler"


def status_of(answer):
    """The status, told apart for a handler's own 500 (the router's JSON)."""
    if answer.status_code == 500 and answer.headers.get("Content-Type", "").startswith("application/json"):
        try:
            if answer.json() == {"error": "internal error"}:
                return HANDLER_ERROR
        except ValueError:
            pass
    return answer.status_code


def guard_would_allow(method, path, role):
    """For requests never sent (reset, shutdown): the table's answer for a role."""
    rule, _ = TABLE.match(method, path)
    return rule is not None and rule.permission in permissions.permissions_of(role) | {
        permissions.PUBLIC,
        permissions.AUTHENTICATED,
    }


@pytest.fixture(scope="module")
def outcomes(world):
    """(row, principal, DENIED or what the request got) for every cell; unsafe rows last."""
    server, headers, ids = world
    results = []
    for entry in sorted(MATRIX, key=lambda r: r.unsafe):
        path = fill(entry.path, ids)
        for principal in PRINCIPALS:
            if entry.unsafe and principal in entry.allowed:
                allowed = guard_would_allow(entry.method, path, principal)
                results.append((entry, principal, "allowed by the table" if allowed else DENIED))
                continue
            sent_with = headers["login"](principal) if entry.own_login else headers[principal]
            answer = send(server, entry.method, path, sent_with, entry.body, ids)
            results.append((entry, principal, DENIED if is_denied(answer) else status_of(answer)))
    return results


def describe(entry, principal, status):
    return f"{entry.method} {entry.path} as {principal or 'no login'}: {status}"


def test_no_unauthorised_success(outcomes):
    unauthorised = [describe(*cell) for cell in outcomes if cell[1] not in cell[0].allowed and cell[2] != DENIED]
    print(f"\n{len(outcomes)} cells, {len(MATRIX)} routes x {len(PRINCIPALS)} principals")
    assert unauthorised == [], "\n".join(unauthorised)


def test_no_wrongful_denial(outcomes):
    wrongly_denied = [describe(*cell) for cell in outcomes if cell[1] in cell[0].allowed and cell[2] == DENIED]
    assert wrongly_denied == [], "\n".join(wrongly_denied)


def test_the_guard_itself_never_fails(outcomes, world):
    """A guard that raised in the HTTP filter would deny (403: seen above); in front of
    our routes Orthanc would answer 500 without our JSON. Handlers' own 500s
    ({"error": "internal error"}) are not the guard's: listed, not failed here."""
    guard_errors = [
        describe(*cell) for cell in outcomes if isinstance(cell[2], int) and cell[2] >= 500 and cell[2] != HANDLER_ERROR
    ]
    handler_errors = sorted({describe(*cell) for cell in outcomes if cell[2] == HANDLER_ERROR})
    if handler_errors:
        print("\nhandlers that answered 500 (not the guard):\n" + "\n".join(handler_errors))
    assert guard_errors == [], "\n".join(guard_errors)
    assert world[0].get("/pacs/health").status_code == 200


def test_every_rule_of_the_table_is_walked(world):
    """A rule added to permissions.py needs rows here: the matrix walks the whole table."""
    _, _, ids = world
    walked = {TABLE.match(r.method, fill(r.path, ids).split("?")[0])[0] for r in MATRIX}
    for rule in TABLE.rules:
        assert rule in walked, f"no matrix row reaches {sorted(rule.methods)} {rule.pattern.pattern}"


def test_every_method_of_every_rule_is_walked(world):
    _, _, ids = world
    walked = {(TABLE.match(r.method, fill(r.path, ids).split("?")[0])[0], r.method) for r in MATRIX}
    missing = [
        f"{method} {rule.pattern.pattern}"
        for rule in TABLE.rules
        for method in sorted(rule.methods)
        if (rule, method) not in walked
    ]
    assert missing == [], "no matrix row for:\n" + "\n".join(missing)


def test_referrer_cannot_reach_other_studies_through_a_study_in_scope(world):
    """The guard checks the study a URL names; Orthanc's DICOMweb must then refuse
    a series or instance of another study under it (no data, whatever the status)."""
    server, headers, ids = world
    urls = [
        "/dicom-web/studies/{study_in}/series/{series_out}",
        "/dicom-web/studies/{study_in}/series/{series_out}/metadata",
        "/dicom-web/studies/{study_in}/series/{series_out}/instances",
        "/dicom-web/studies/{study_in}/series/{series_out}/instances/{sop_out}",
        "/dicom-web/studies/{study_in}/series/{series_in}/instances/{sop_out}/frames/1",
        "/dicom-web/instances?StudyInstanceUID={study_in}&SeriesInstanceUID={series_out}",
        "/wado?requestType=WADO&studyUID={study_in}&seriesUID={series_out}&objectUID={sop_out}",
        "/wado?requestType=WADO&studyUID={study_in}&objectUID={sop_out}",
        "/pacs/api/studies/{study_in}/series/{series_out}/thumbnail",
        "/pacs/dicom-web/studies/{study_in}/series/{series_out}/instances",
        "/pacs/dicom-web/instances?StudyInstanceUID={study_in}&SeriesInstanceUID={series_out}",
    ]
    leaks = []
    for template in urls:
        answer = requests.get(server.url(fill(template, ids)), headers=headers[REF], timeout=30)
        kind = answer.headers.get("Content-Type", "").split(";")[0]
        if answer.status_code == 200 and (
            ids["sop_out"].encode() in answer.content
            or ids["series_out"].encode() in answer.content
            or kind.startswith(("image/", "multipart/"))
            or kind == "application/dicom"
        ):
            leaks.append(f"{template}: {answer.status_code} {answer.headers.get('Content-Type')}")
    assert leaks == [], "\n".join(leaks)


def test_referrer_worklist_lists_only_studies_in_scope(world):
    server, headers, ids = world
    answer = requests.get(server.url("/pacs/api/studies"), headers=headers[REF], timeout=30)
    assert answer.status_code == 200, answer.text
    uids = {item["study_instance_uid"] for item in answer.json()["items"]}
    assert uids == {ids["study_in"]}
    qido = requests.get(
        server.url(f"/dicom-web/studies?StudyInstanceUID={ids['study_in']}"), headers=headers[REF], timeout=30
    )
    assert qido.status_code == 200 and ids["study_out"] not in qido.text


def test_other_http_methods_are_refused(world):
    server, headers, _ = world
    for method in ("PATCH", "OPTIONS", "TRACE"):
        for principal in (ADMIN, None):
            answer = requests.request(method, server.url("/system"), headers=headers[principal], timeout=30)
            assert answer.status_code >= 400, (method, principal, answer.status_code)
