"""JSON API of the reading worklist: list, one study, claim/release/assign/priority,
series thumbnails."""

import datetime

from plugin.auth.models import User
from plugin.db import utcnow
from plugin.http import HttpError, Response
from plugin.models import DOCUMENT_MODALITIES, Series, Study
from plugin.reports.models import Report, ReportDicom
from plugin.thumbnails import NotRenderable, Thumbnails
from plugin.worklist import dashboard
from plugin.worklist import query as worklist_query


def referrer_keys(principal):
    """A referrer's referring-physician keys; None for every other role (no limit)."""
    if principal.role != "referrer":
        return None
    user = User.get_or_none(User.id == principal.user_id)
    return user.referring_keys if user else set()


def study_detail(worklist, scope, study, principal):
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
    if principal.role == "referrer":
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


def _flag(data, name):
    value = data.get(name, False)
    if not isinstance(value, bool):
        raise HttpError(400, f"{name} must be true or false")
    return value


def report_copy_series(study_uid):
    """SeriesInstanceUIDs of the DICOM copies of the study's signed report (and addenda)."""
    rows = (
        ReportDicom.select(ReportDicom.series_instance_uid)
        .join(Report, on=(ReportDicom.report_id == Report.id))
        .where(Report.study_instance_uid == study_uid)
    )
    return {row.series_instance_uid for row in rows}


def register(router, worklist, scope, host, audit, today=datetime.date.today):
    thumbnails = Thumbnails(host)

    @router.route("GET", "/pacs/api/studies")
    def list_studies(request):
        filters = worklist_query.parse_filters(request.query, today())
        items, total = worklist_query.search(filters, request.principal, referrer_keys(request.principal))
        audit.record_request("search", request)
        return Response.json(
            {"items": items, "total": total, "page": filters.page, "page_size": filters.page_size},
            headers={"Cache-Control": "no-store"},
        )

    @router.route("GET", "/pacs/api/studies/{uid}")
    def get_study(request, uid):
        study = worklist.study(uid)
        audit.record("study_viewed", username=request.principal.username, role=request.principal.role, study_uid=uid)
        return Response.json(
            study_detail(worklist, scope, study, request.principal), headers={"Cache-Control": "no-store"}
        )

    @router.route("GET", "/pacs/api/studies/{uid}/series/{series_uid}/thumbnail")
    def thumbnail(request, uid, series_uid):
        study = worklist.study(uid)
        series = Series.get_or_none(Series.study == study, Series.series_instance_uid == series_uid)
        if series is None:
            raise HttpError(404, f"no series {series_uid} in this study")
        try:
            png = thumbnails.get(series.orthanc_id)
        except NotRenderable as error:
            raise HttpError(404, str(error)) from None
        audit.record_request("thumbnail_viewed", request, study_uid=uid)
        return Response(200, png, "image/png", {"Cache-Control": "private, max-age=3600"})

    @router.route("GET", "/pacs/api/dashboard")
    def dashboard_figures(request):
        return Response.json(dashboard.summary(today(), utcnow()), headers={"Cache-Control": "no-store"})

    def action(name, perform):
        @router.route("POST", f"/pacs/api/studies/{{uid}}/{name}")
        def handler(request, uid):
            data = request.json() if request.body else {}
            return Response.json(worklist_query.describe(perform(uid, data, request.principal)))

        handler.__name__ = name
        return handler

    action("claim", lambda uid, data, who: worklist.claim(uid, who, take_over=_flag(data, "take_over")))
    action("release", lambda uid, data, who: worklist.release(uid, who))
    action("assign", lambda uid, data, who: worklist.assign(uid, data.get("assignee"), who))
    action("priority", lambda uid, data, who: worklist.set_priority(uid, data.get("priority"), who))
