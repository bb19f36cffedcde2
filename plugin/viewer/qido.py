"""Our QIDO-RS layer in front of Orthanc's DICOMweb 1.7, for the viewer.

DICOMweb 1.7 gets three things wrong that OHIF hits: it does not decode
%-encoded query values (``PatientName=Phan%2A`` finds nothing), it rejects a
comma list in ``includefield``, and in answers to internal calls (no Host
header) its RetrieveURLs name localhost:8042. Searches go through here;
retrieval (metadata, frames) goes straight to /dicom-web, native code.
"""

import re

from plugin.http import HttpError, Response

ROOT = "/pacs/dicom-web"
PATHS = ("/studies", "/series", "/instances", "/studies/{study}/series", "/studies/{study}/instances",
         "/studies/{study}/series/{series}/instances")
RETRIEVE_URL = re.compile(rb'"https?://[^/"]+/dicom-web/')
UNSAFE = ("&", "#", "\x00", "\n", "\r")


def orthanc_query(query):
    """The query string for Orthanc's DICOMweb: decoded values, includefield split."""
    parts = []
    for key, value in query.items():
        if any(c in key or c in value for c in UNSAFE):
            raise HttpError(400, f"query parameter {key!r} holds a character QIDO cannot take")
        values = value.split(",") if key.lower() == "includefield" else [value]
        parts.extend(f"{key}={v.strip()}" for v in values if v.strip() or key.lower() != "includefield")
    return "&".join(parts)


def origin(request):
    scheme = "https" if request.headers.get("x-forwarded-proto", "") == "https" else "http"
    host = request.headers.get("host", "")
    if not re.fullmatch(r"[A-Za-z0-9.\-\[\]:]{1,255}", host):
        raise HttpError(400, "missing or invalid Host header")
    return f"{scheme}://{host}"


def register(router, host, audit):
    def search(request, **params):
        tail = request.path[len(ROOT):]
        query = orthanc_query(request.query)
        answer = host.get_after_plugins(f"/dicom-web{tail}" + (f"?{query}" if query else ""))
        if answer is None:
            raise HttpError(404, "no such study or series")
        body = RETRIEVE_URL.sub(b'"' + origin(request).encode("ascii") + b"/dicom-web/", answer)
        audit.record_request("search", request, study_uid=params.get("study", ""))
        return Response(200, body, "application/dicom+json", {"Cache-Control": "no-store"})

    for path in PATHS:
        router.add("GET", ROOT + path, search)
