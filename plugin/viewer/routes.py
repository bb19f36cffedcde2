"""The viewer's routes: OHIF's files and its app config, and our QIDO layer.

None is JSON API, so none is in the OpenAPI document. OHIF's files carry no
patient data. Its data comes over DICOMweb: searched through our QIDO layer
(plugin/viewer/qido.py), retrieved straight from Orthanc's /dicom-web. A
referrer's search is held to their scope: by the study in the path, or by the
StudyInstanceUID query parameter, each parameter by its exact name and form
(``params``); their study search names no study (OHIF looks for a patient's
other studies), and its handler answers it from their scope.
"""

from plugin.permissions import QIDO, QIDO_BY_STUDY
from plugin.routing import Route
from plugin.viewer.qido import search


def viewer_root(app, request):
    """OHIF's page (Orthanc hands /pacs/viewer/ over as /pacs/viewer: both are the app's root)."""
    return app.viewer_assets.respond(request, "")


def viewer_file(app, request, path):
    """One of OHIF's files, its app config, or its page for one of its own client routes."""
    return app.viewer_assets.respond(request, path)


# A referrer's search names its study: in the path (study=), or by StudyInstanceUID in the query.
BY_STUDY = "StudyInstanceUID"

ROUTES = (
    Route("GET", "/pacs/viewer", viewer_root, "images.read", documented=False),
    Route("GET", "/pacs/viewer/{path:path}", viewer_file, "images.read", documented=False),
    # A referrer's study search names no study: its handler answers it from their scope.
    Route("GET", "/pacs/dicom-web/studies", search, "images.read", documented=False),
    Route(
        "GET",
        "/pacs/dicom-web/series",
        search,
        "images.read",
        documented=False,
        study_param=BY_STUDY,
        params=QIDO_BY_STUDY,
    ),
    Route(
        "GET",
        "/pacs/dicom-web/instances",
        search,
        "images.read",
        documented=False,
        study_param=BY_STUDY,
        params=QIDO_BY_STUDY,
    ),
    Route(
        "GET",
        "/pacs/dicom-web/studies/{study}/series",
        search,
        "images.read",
        documented=False,
        study="study",
        params=QIDO,
    ),
    Route(
        "GET",
        "/pacs/dicom-web/studies/{study}/instances",
        search,
        "images.read",
        documented=False,
        study="study",
        params=QIDO,
    ),
    Route(
        "GET",
        "/pacs/dicom-web/studies/{study}/series/{series}/instances",
        search,
        "images.read",
        documented=False,
        study="study",
        params=QIDO,
    ),
)
