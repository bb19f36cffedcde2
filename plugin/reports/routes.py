"""JSON API of reports (SPEC.md) and report templates."""

import contextlib
import json

from peewee import IntegrityError

from plugin.db import database, utcnow
from plugin.http import HttpError, Response, path_id
from plugin.reports.models import ReportTemplate

NO_STORE = {"Cache-Control": "no-store"}


def register(router, reports):
    @router.route("GET", "/pacs/api/studies/{uid}/report")
    def get_report(request, uid):
        return Response.json(reports.get(uid, request.principal), headers=NO_STORE)

    @router.route("PUT", "/pacs/api/studies/{uid}/report")
    def save_draft(request, uid):
        return Response.json(reports.save_draft(uid, request.json(), request.principal), headers=NO_STORE)

    @router.route("POST", "/pacs/api/studies/{uid}/report/finalize")
    def finalize(request, uid):
        data = request.json() if request.body else {}
        return Response.json(reports.finalize(uid, data, request.principal), headers=NO_STORE)

    @router.route("POST", "/pacs/api/studies/{uid}/report/addenda")
    def addendum(request, uid):
        return Response.json(reports.add_addendum(uid, request.json(), request.principal), headers=NO_STORE)

    @router.route("GET", "/pacs/api/studies/{uid}/report/pdf")
    def report_pdf(request, uid):
        data, name = reports.pdf(uid, request.principal)
        return Response(
            200, data, "application/pdf", dict(NO_STORE, **{"Content-Disposition": f'inline; filename="{name}"'})
        )

    @router.route("GET", "/pacs/api/report-templates")
    def list_templates(request):
        return Response.json(
            {
                "items": reports.templates(
                    request.query.get("modality", "").upper(), request.query.get("body_part", "").upper()
                )
            }
        )

    @router.route("POST", "/pacs/api/report-templates")
    def create_template(request):
        fields = _template_fields(request.json(), required=True)
        now = utcnow()
        with _unique_name(fields):
            row = ReportTemplate.create(created_at=now, updated_at=now, **fields)
        return Response.json(row.public(), status=201)

    @router.route("PUT", "/pacs/api/report-templates/{template_id}")
    def update_template(request, template_id):
        row = _template(template_id)
        fields = _template_fields(request.json(), required=False)
        with _unique_name(fields):
            ReportTemplate.update(updated_at=utcnow(), **fields).where(ReportTemplate.id == row.id).execute()
        return Response.json(ReportTemplate.get_by_id(row.id).public())


@contextlib.contextmanager
def _unique_name(fields):
    """A template name taken by another template is a 409, not a database error."""
    try:
        with database.atomic():
            yield
    except IntegrityError:
        raise HttpError(409, f"a template named {fields.get('name')!r} exists") from None


def _template(template_id):
    number = path_id(template_id)
    row = ReportTemplate.get_or_none(ReportTemplate.id == number) if number else None
    if row is None:
        raise HttpError(404, f"no template {template_id}")
    return row


def _template_fields(data, required):
    fields = {}
    for name, limit in (("name", 100), ("modality", 16), ("body_part", 64)):
        if name in data:
            if not isinstance(data[name], str) or len(data[name]) > limit:
                raise HttpError(400, f"{name} must be text of at most {limit} characters")
            fields[name] = data[name].strip() if name == "name" else data[name].strip().upper()
    if "sections" in data:
        sections = data["sections"]
        if not isinstance(sections, dict) or not all(
            isinstance(v, str) and len(v) <= 20_000 for v in sections.values()
        ):
            raise HttpError(400, "sections must map section names to text")
        fields["sections"] = json.dumps(sections)
    if "disabled" in data:
        if not isinstance(data["disabled"], bool):
            raise HttpError(400, "disabled must be true or false")
        fields["disabled"] = data["disabled"]
    if (required or "name" in fields) and not fields.get("name"):
        raise HttpError(400, "a template needs a name")
    if required:
        fields.setdefault("sections", "{}")
    return fields
