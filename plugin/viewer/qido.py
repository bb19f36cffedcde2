"""Our QIDO-RS layer in front of Orthanc's DICOMweb 1.7, for the viewer.

DICOMweb 1.7 gets three things wrong that OHIF hits: it does not decode
%-encoded query values (``PatientName=Phan%2A`` finds nothing), it rejects a
comma list in ``includefield``, and in answers to internal calls (no Host
header) its RetrieveURLs name localhost:8042. Searches go through here;
retrieval (metadata, frames) goes straight to /dicom-web, native code.

A referrer's study search is answered here from their scope (the permission
table leaves that one route to this handler): OHIF looks for a patient's
other studies with ``00100020=<PatientID>``, which names no study. The
referrer gets the studies of that patient that are in their scope, and never
another. Whatever else they send must pass the guard's own approval
(``permissions.approved_query``, the QIDO-layer whitelist); Orthanc is then
asked only for the studies chosen here, and its answer is cut to the scope.
"""

import json
import re

from plugin import permissions
from plugin.errors import Forbidden, Invalid, NotFound
from plugin.http import Response
from plugin.models import Study

ROOT = "/pacs/dicom-web"  # its routes: plugin/viewer/routes.py
RETRIEVE_URL = re.compile(rb'"https?://[^/"]+/dicom-web/')
UNSAFE = ("&", "#", "\x00", "\n", "\r")
DICOM_JSON = "application/dicom+json"

# A referrer's study search is held to the QIDO layer's whitelist once the patient is taken out.
REFERRER_SEARCH = permissions.Rule(
    frozenset({"GET"}),
    re.compile(re.escape(ROOT + "/studies")),
    "images.read",
    "query",
    params=permissions.QIDO_BY_STUDY,
    study_param="StudyInstanceUID",
)
PATIENT_PARAMS = ("00100020", "PatientID")
PATIENT_ID = re.compile(r"[^\\\x00-\x1f]{1,64}")  # one LO value, matched exactly (no wildcards)


def orthanc_query(query):
    """The query string for Orthanc's DICOMweb: decoded values, includefield split."""
    parts = []
    for key, value in query.items():
        if any(c in key or c in value for c in UNSAFE):
            raise Invalid(f"query parameter {key!r} holds a character QIDO cannot take")
        values = value.split(",") if key.lower() == "includefield" else [value]
        parts.extend(f"{key}={v.strip()}" for v in values if v.strip() or key.lower() != "includefield")
    return "&".join(parts)


def origin(request):
    scheme = "https" if request.headers.get("x-forwarded-proto", "") == "https" else "http"
    host = request.headers.get("host", "")
    if not re.fullmatch(r"[A-Za-z0-9.\-\[\]:]{1,255}", host):
        raise Invalid("missing or invalid Host header")
    return f"{scheme}://{host}"


def referrer_search(query, scope, patient_studies):
    """(refusal or "", the studies to answer with) for a referrer's study search.

    ``query``: decoded; ``scope``: the referrer's study UIDs; ``patient_studies(id)``:
    the UIDs of the studies of the patient with that PatientID. The answer is the
    studies the query names, or else those in scope, narrowed to the patient's:
    always a subset of ``scope``, possibly empty.
    """
    patients = {query[name] for name in PATIENT_PARAMS if name in query}
    rest = {name: value for name, value in query.items() if name not in PATIENT_PARAMS}
    problem, named = permissions.approved_query(REFERRER_SEARCH, None, rest)
    if problem:
        return problem, set()
    if len(patients) > 1 or not all(PATIENT_ID.fullmatch(patient) for patient in patients):
        return "query parameter '00100020' has a value this route does not accept", set()
    if not named and not patients:
        return "name the study (StudyInstanceUID) or the patient (PatientID) you want", set()
    if not set(named) <= scope:
        return "this study is not in your scope", set()
    wanted = set(named or scope)
    for patient in patients:
        wanted &= set(patient_studies(patient))
    return "", wanted


def studies_of_patient(patient_id):
    query = Study.select(Study.study_instance_uid).where(Study.patient_dicom_id == patient_id)
    return {row.study_instance_uid for row in query}


def only_studies(body, wanted):
    """A QIDO answer (DICOM JSON) without any study outside ``wanted``."""
    kept = [item for item in json.loads(body or b"[]") if item.get("0020000D", {}).get("Value", [None])[0] in wanted]
    return json.dumps(kept).encode("utf-8")


def search(app, request, study="", series=""):
    """A QIDO-RS search, answered by Orthanc's DICOMweb with what it gets wrong mended;
    audited. ``series`` is part of the path Orthanc is asked (its answer is the path's)."""
    tail = permissions.normalise_path(request.path)[len(ROOT) :]  # as the guard saw it
    query, wanted = request.query, None
    if not permissions.can(request.principal, "studies.read_all") and tail == "/studies":
        query, wanted = referrer_query(app.audit, app.scope, request)
    body = b"[]" if wanted == set() else answer_of(app.host, request, tail, query, wanted)
    app.audit.record_request("search", request, study_uid=study)
    return Response(200, body, DICOM_JSON, {"Cache-Control": "no-store"})


def referrer_query(audit, scope, request):
    """The query Orthanc gets for a referrer's study search, and the studies it may
    answer with (an empty set: nothing to ask); a refusal is audited like the guard's."""
    principal = request.principal
    problem, wanted = referrer_search(request.query, scope.studies(principal.user_id), studies_of_patient)
    if problem:
        audit.record_async(
            "access_denied",
            username=principal.username,
            role=principal.role,
            address=request.client_ip,
            outcome="denied",
            details={"path": request.path[:200], "reason": problem},
        )
        raise Forbidden(problem)
    query = {
        name: value
        for name, value in request.query.items()
        if name not in PATIENT_PARAMS and name != REFERRER_SEARCH.study_param
    }
    query[REFERRER_SEARCH.study_param] = "\\".join(sorted(wanted))
    return query, wanted


def answer_of(host, request, tail, query, wanted):
    query = orthanc_query(query)
    answer = host.get_after_plugins(f"/dicom-web{tail}" + (f"?{query}" if query else ""))
    if answer is None:
        raise NotFound("no such study or series")
    if wanted is not None:
        answer = only_studies(answer, wanted)
    return RETRIEVE_URL.sub(b'"' + origin(request).encode("ascii") + b"/dicom-web/", answer)
