"""Browser pages of reports: a study's report beside its images
(/pacs/studies/{uid}/report) and the report templates (/pacs/admin/templates).

The report page is rendered from the answer the JSON API gives (Reports.get),
so opening it is audited like the API and drafts reach only those who write
reports. report.js edits and saves through the API; signed reports are
rendered read-only here. The templates page lists every template and
admin_templates.js creates and changes them through the JSON API, whose
checks stay the only ones.
"""

from plugin.dicomnames import display_name
from plugin.errors import NotFound
from plugin.permissions import can
from plugin.reports.models import SECTIONS, SIGNED, Report, ReportTemplate
from plugin.routing import Route
from plugin.viewer.assets import ISOLATION_HEADERS
from plugin.webui import gettext as _
from plugin.webui import render

# Messages report.js shows, in the page's language ("%(name)s" filled in by the script).
SCRIPT_TEXTS = {
    "saved_at": "Saved %(time)s",
    "saving": "Saving…",
    "unsaved": "Changes not saved yet",
    "offline": "Offline — will retry in %(seconds)s s",
    "not_saved": "Not saved: %(error)s",
    "signed_out": "Your session has ended. Sign in again and reopen this report: your text is kept in this browser.",
    "conflict": "Conflict, not saved: %(error)s",
    "local_copy": "This browser kept a copy of this report from %(time)s that the server does not have.",
    "confirm_finalize": "Sign this report? It is locked once signed: later changes can only be addenda.",
    "confirm_addendum": "Sign this addendum? It cannot be changed afterwards.",
    "loaded": "Version %(version)s loaded",
    "failed": "That did not work: %(error)s",
    "checking": "Checking for your latest save…",
    "latest": "Your latest save (version %(version)s) is shown",
    "confirm_take_over": (
        "Take this study over? Your colleague can no longer save to it, and the take-over is recorded."
    ),
}
# Messages admin_templates.js shows.
ADMIN_TEXTS = {"saved": "Saved.", "failed": "That did not work: %(error)s"}


def _context(app, request, **extra):
    principal = request.principal
    return dict(user=app.accounts.get_user(principal.user_id), csrf_token=principal.csrf, **extra)


def report_page(app, request, uid):
    principal = request.principal
    report = visible_report(app.reports, app.worklist, uid, principal)
    study = report["study"] if report else app.worklist.describe(app.worklist.study(uid))
    writer = can(principal, "reports.write")
    editable = writer and report["status"] not in SIGNED
    claim = claim_of_colleague(app.worklist, uid, principal) if editable else None
    templates = templates_for(app.reports, app.worklist, uid, report) if editable and not claim else []
    response = render(
        "report.html",
        request,
        **_context(
            app,
            request,
            active_nav="worklist",
            uid=uid,
            study=study,
            patient=display_name(study["patient_name"]),
            report=report,
            sections=SECTIONS,
            editable=editable,
            templates=templates,
            claim=claim,
            can_sign=editable and not claim and may_sign(uid, principal),
            can_addend=writer and not editable,
            can_manage_templates=can(principal, "templates.manage"),
            page_data=script_data(request, uid, report if editable else None, templates, claim),
        ),
    )
    # Isolated like the viewer it embeds and opens: the frame keeps SharedArrayBuffer
    # and the viewer's window stays this page's to move and close (same COOP).
    response.headers.update(ISOLATION_HEADERS)
    return response


def templates_page(app, request):
    rows = ReportTemplate.select().order_by(ReportTemplate.disabled, ReportTemplate.modality, ReportTemplate.name)
    templates = [row.public() for row in rows]
    return render(
        "admin_templates.html",
        request,
        **_context(
            app, request, sections=SECTIONS, templates=templates, page_data={"texts": translated(ADMIN_TEXTS, request)}
        ),
    )


def visible_report(reports, worklist, uid, principal):
    """The API's answer, or None when the reader may see no report yet: those
    who do not write reports get a 404 until one is signed, and then get a
    page saying so (after the study itself was checked)."""
    try:
        return reports.get(uid, principal)
    except NotFound:
        if can(principal, "reports.write"):
            raise
    worklist.study(uid)  # an unknown study stays a 404
    return None


def claim_of_colleague(worklist, uid, principal):
    """{"name", "until"} of a colleague reading the study now (their live claim), or
    None. The page is then read-only, offering to take the study over."""
    try:
        claimer = worklist.claimed_by_other(uid, principal)
    except NotFound:  # the study was deleted; its draft is kept
        return None
    if claimer is None:
        return None
    study = worklist.study(uid)
    return {"name": claimer.display_name or claimer.username, "until": study.claim_expires_at}


def may_sign(uid, principal):
    """The author (whoever saves first, for a new report) or an admin; the
    API checks the same and says why when it refuses."""
    author = Report.select(Report.author_id).where(Report.study_instance_uid == uid).first()
    return can(principal, "reports.edit", author)


def templates_for(reports, worklist, uid, report):
    """Templates, best match first: a new report's answer carries them; a
    draft's are looked up the same way, so a template can still fill what
    is left empty."""
    if "templates" in report:
        return report["templates"]
    try:
        study = worklist.study(uid)
    except NotFound:  # the study was deleted; its draft is kept
        return reports.templates()
    return reports.templates(study.modalities.split("\\")[0], study.body_parts.split("\\")[0])


def script_data(request, uid, draft, templates, claim=None):
    """page_data for report.js: the draft's state when it may be edited
    (its text is in the form), the templates' sections, the messages.
    ``read_only``: a colleague reads the study now; the page offers to take it over."""
    data = {
        "uid": uid,
        "me": request.principal.username,
        "templates": templates,
        "texts": translated(SCRIPT_TEXTS, request),
    }
    if draft is not None:
        data["report"] = {key: draft.get(key) for key in ("status", "version", "template_id", "updated_at")}
        # A colleague's draft, shown with a notice: saving it here takes it over (the API records it).
        data["report"]["take_over"] = draft.get("own_draft") is False
        data["report"]["read_only"] = claim is not None
    return data


def translated(messages, request):
    return {key: _(message, request) for key, message in messages.items()}


ROUTES = (
    Route("GET", "/pacs/studies/{uid}/report", report_page, "reports.read", study="uid", page=True),
    Route("GET", "/pacs/admin/templates", templates_page, "templates.manage", page=True),  # its forms use the API
)
