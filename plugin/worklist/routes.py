"""JSON API of the reading worklist: list, one study, claim/release/assign/priority,
series thumbnails, the dashboard's figures. Each handler gets the App."""

from pydantic import BaseModel, Field, StrictBool, StrictStr

from plugin.auth.models import User
from plugin.db import utcnow
from plugin.http import Response
from plugin.models import DOCUMENT_MODALITIES, PRIORITIES, Series, Study
from plugin.permissions import can
from plugin.reports.models import Report, ReportDicom
from plugin.routing import Route
from plugin.worklist import dashboard
from plugin.worklist import query as worklist_query

NO_STORE = {"Cache-Control": "no-store"}


class Claim(BaseModel):
    """A claim's optional body."""

    take_over: StrictBool = Field(False, description="true or false")


class Release(BaseModel):
    """A release's optional body: nothing is read from it."""


class Assignment(BaseModel):
    assignee: StrictStr | None = Field(None, description="a username, or null to unassign")


class Priority(BaseModel):
    # The service checks the value too (its words are these): None is "not one of them".
    priority: StrictStr | None = Field(None, description="one of " + ", ".join(PRIORITIES))


def referrer_keys(principal):
    """A referrer's referring-physician keys; None for every other role (no limit)."""
    if can(principal, "studies.read_all"):
        return None
    user = User.get_or_none(User.id == principal.user_id)
    return user.referring_keys if user else set()


def study_detail(scope, study, principal):
    """The study with its series (each says whether it is a document, and whether that
    document is a copy of the study's signed report) and the patient's other studies."""
    detail = worklist_query.describe(study)
    detail["institution_name"] = study.institution_name
    copies = report_copy_series(study.study_instance_uid)
    detail["series"] = [
        {
            "series_instance_uid": s.series_instance_uid,
            "number": s.number,
            "modality": s.modality,
            "description": s.description,
            "body_part": s.body_part,
            "instance_count": s.instance_count,
            "document": s.modality in DOCUMENT_MODALITIES,
            "report_copy": s.series_instance_uid in copies,
        }
        for s in Series.select().where(Series.study == study).order_by(Series.number, Series.id)
    ]
    priors = (
        (
            Study.select()
            .where(
                Study.patient_dicom_id == study.patient_dicom_id, Study.study_instance_uid != study.study_instance_uid
            )
            .order_by(Study.study_date.desc(), Study.id.desc())
            .limit(50)
        )
        if study.patient_dicom_id
        else []
    )
    if not can(principal, "studies.read_all"):
        allowed = scope.studies(principal.user_id)
        priors = [p for p in priors if p.study_instance_uid in allowed]
    detail["priors"] = [
        {
            "study_instance_uid": p.study_instance_uid,
            "study_date": p.study_date,
            "modalities": [m for m in p.modalities.split("\\") if m],
            "description": p.description,
            "status": p.status,
        }
        for p in priors
    ]
    return detail


def report_copy_series(study_uid):
    """SeriesInstanceUIDs of the DICOM copies of the study's signed report (and addenda)."""
    rows = (
        ReportDicom.select(ReportDicom.series_instance_uid)
        .join(Report, on=(ReportDicom.report_id == Report.id))
        .where(Report.study_instance_uid == study_uid)
    )
    return {row.series_instance_uid for row in rows}


def list_studies(app, request, query):
    filters = worklist_query.filters_from(query, app.clock.today())
    items, total = worklist_query.search(filters, request.principal, referrer_keys(request.principal))
    app.audit.record_request("search", request)
    return Response.json(
        {"items": items, "total": total, "page": filters.page, "page_size": filters.page_size}, headers=NO_STORE
    )


def get_study(app, request, uid):
    study = app.worklist.study(uid)
    principal = request.principal
    app.audit.record("study_viewed", username=principal.username, role=principal.role, study_uid=uid)
    return Response.json(study_detail(app.scope, study, principal), headers=NO_STORE)


def thumbnail(app, request, uid, series_uid):
    png = app.worklist.thumbnail(uid, series_uid)
    app.audit.record_request("thumbnail_viewed", request, study_uid=uid)
    return Response(200, png, "image/png", {"Cache-Control": "private, max-age=3600"})


def dashboard_figures(app, request):
    return Response.json(dashboard.summary(app.clock.today(), utcnow()), headers=NO_STORE)


def claim(app, request, uid, body):
    return worklist_query.describe(app.worklist.claim(uid, request.principal, take_over=body.take_over))


def release(app, request, uid, body):
    return worklist_query.describe(app.worklist.release(uid, request.principal))


def assign(app, request, uid, body):
    return worklist_query.describe(app.worklist.assign(uid, body.assignee, request.principal))


def priority(app, request, uid, body):
    return worklist_query.describe(app.worklist.set_priority(uid, body.priority, request.principal))


ROUTES = (
    Route(
        "GET",
        "/pacs/api/studies",
        list_studies,
        "studies.read",
        summary="The reading worklist: {items, total, page, page_size} (referrers: their studies only)",
        query=worklist_query.WorklistQuery,
    ),
    Route(
        "GET",
        "/pacs/api/studies/{uid}",
        get_study,
        "studies.read",
        summary="One study with series, priors and state",
        study="uid",
    ),
    Route(
        "GET",
        "/pacs/api/studies/{uid}/series/{series_uid}/thumbnail",
        thumbnail,
        "studies.read",
        summary="A PNG of the series' middle image",
        study="uid",
    ),
    Route(
        "POST",
        "/pacs/api/studies/{uid}/claim",
        claim,
        "studies.claim",
        summary="Claim (in_progress, exclusive; renews an own claim). The body is optional; "
        "take_over: true takes a colleague's live claim over (audited with their name)",
        study="uid",
        body=Claim,
        body_optional=True,
        responses=(("409", "claimed by someone else or not claimable"),),
    ),
    Route(
        "POST",
        "/pacs/api/studies/{uid}/release",
        release,
        "studies.claim",
        summary="Release a claim (the reader or an admin)",
        study="uid",
        body=Release,
        body_optional=True,
    ),
    Route(
        "POST",
        "/pacs/api/studies/{uid}/assign",
        assign,
        "studies.claim",
        summary="Assign to a radiologist: {assignee: a username, or null to unassign}",
        study="uid",
        body=Assignment,
        body_optional=True,
    ),
    Route(
        "POST",
        "/pacs/api/studies/{uid}/priority",
        priority,
        "studies.prioritise",
        summary="Set the priority: {priority: " + " | ".join(PRIORITIES) + "}",
        study="uid",
        body=Priority,
        body_optional=True,
    ),
    Route(
        "GET",
        "/pacs/api/dashboard",
        dashboard_figures,
        "dashboard.read",
        summary="Counts, studies per day, turnaround, workload, waiting longest",
    ),
)
