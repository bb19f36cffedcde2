"""JSON API of reports (SPEC.md) and report templates. Each handler gets the App.

Report answers are never cached: a draft changes with every save and a signed
report may gain addenda."""

from plugin.http import Response
from plugin.reports.service import Addendum, Draft, Signing, TemplateFields, TemplateQuery
from plugin.routing import Route

REPORT = "/pacs/api/studies/{uid}/report"
TEMPLATES = "/pacs/api/report-templates"
NO_STORE = {"Cache-Control": "no-store"}


def get_report(app, request, uid):
    return Response.json(app.reports.get(uid, request.principal), headers=NO_STORE)


def save_draft(app, request, uid, body):
    return Response.json(app.reports.save_draft(uid, body, request.principal), headers=NO_STORE)


def finalize(app, request, uid, body):
    return Response.json(app.reports.finalize(uid, body, request.principal), headers=NO_STORE)


def add_addendum(app, request, uid, body):
    return Response.json(app.reports.add_addendum(uid, body, request.principal), headers=NO_STORE)


def report_pdf(app, request, uid):
    data, name = app.reports.pdf(uid, request.principal)
    headers = dict(NO_STORE, **{"Content-Disposition": f'inline; filename="{name}"'})
    return Response(200, data, "application/pdf", headers)


def list_templates(app, request, query):
    return {"items": app.reports.templates(query.modality.upper(), query.body_part.upper())}


def create_template(app, request, body):
    return Response.json(app.reports.create_template(body), status=201)


def change_template(app, request, template_id, body):
    return app.reports.change_template(template_id, body)


ROUTES = (
    Route(
        "GET",
        REPORT,
        get_report,
        "reports.read",
        summary="The report: sections, status, version, addenda, history, DICOM copies "
        "(technologists and referrers: signed reports only)",
        study="uid",
    ),
    Route(
        "PUT",
        REPORT,
        save_draft,
        "reports.write",
        summary="Save the draft; send the version you loaded (409 if it changed meanwhile)",
        study="uid",
        body=Draft,
        responses=(
            ("409", "stale version, signed, claimed by another, or a colleague's draft without take_over"),
            ("413", "a section is too long"),
        ),
    ),
    Route(
        "POST",
        "/pacs/api/studies/{uid}/report/finalize",
        finalize,
        "reports.write",
        summary="Sign: locks the report, status final, PDF and DICOM copy made (author or admin); "
        "body {version}: the version you loaded",
        study="uid",
        body=Signing,
        body_optional=True,
        responses=(("409", "already signed or stale version"),),
    ),
    Route(
        "POST",
        "/pacs/api/studies/{uid}/report/addenda",
        add_addendum,
        "reports.write",
        summary="Append a signed addendum to a signed report; status amended",
        study="uid",
        body=Addendum,
        responses=(("413", "the addendum is too long"),),
    ),
    Route(
        "GET",
        "/pacs/api/studies/{uid}/report/pdf",
        report_pdf,
        "reports.read",
        summary="The report as PDF (drafts watermarked)",
        study="uid",
    ),
    Route(
        "GET",
        TEMPLATES,
        list_templates,
        "reports.write",
        summary="Report templates, best match first",
        query=TemplateQuery,
    ),
    Route(
        "POST",
        TEMPLATES,
        create_template,
        "templates.manage",
        summary="Create a template",
        body=TemplateFields,
        responses=(("201", "created"),),
    ),
    Route(
        "PUT",
        "/pacs/api/report-templates/{template_id}",
        change_template,
        "templates.manage",
        summary="Change or disable a template",
        body=TemplateFields,
    ),
)
