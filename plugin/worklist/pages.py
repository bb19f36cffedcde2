"""Browser pages of the reading worklist: the worklist (/pacs/), one study
(/pacs/studies/{uid}) and the dashboard (/pacs/dashboard).

The worklist page is a shell: worklist.js fills its rows from GET
/pacs/api/studies and polls it, so the same query code serves the API and the
page. The study page and the dashboard tables are rendered here; their
scripts only act (claim, release...) and draw the chart.
"""

from urllib.parse import urlencode

from plugin.auth.models import User
from plugin.db import utcnow
from plugin.models import PRIORITIES, STATUSES
from plugin.permissions import can, roles_with
from plugin.routing import HOME, Route
from plugin.webui import default_webui, render
from plugin.webui import gettext as _
from plugin.worklist import dashboard
from plugin.worklist import query as worklist_query
from plugin.worklist.routes import study_detail

# Minutes from arrival after which an unread study is overdue, by priority.
TURNAROUND_TARGET_MINUTES = {"stat": 60, "urgent": 240, "routine": 1440}
POLL_SECONDS = 2  # a new study is on every open worklist within 3 s of being indexed
MODALITY_CHOICES = ("CR", "CT", "DX", "MG", "MR", "NM", "OT", "PT", "RF", "SR", "US", "XA")
CHART_SCRIPT = "vendor/chart.umd.min.js"
VIEWER_URL = "/pacs/viewer/viewer"
# Studies without images cannot be opened in the viewer.
NO_IMAGES = ("scheduled", "cancelled")


def context(app, request, active_nav, **extra):
    """base.html's and every worklist page's context: who is asking, statuses and priorities."""
    principal = request.principal
    return dict(
        user=app.accounts.get_user(principal.user_id),
        csrf_token=principal.csrf,
        active_nav=active_nav,
        statuses=STATUSES,
        priorities=PRIORITIES,
        **extra,
    )


def worklist_page(app, request):
    principal = request.principal
    readers = active_readers() if can(principal, "studies.read_all") else []
    return render(
        "worklist.html",
        request,
        **context(
            app,
            request,
            "worklist",
            **abilities(principal),
            readers=readers,
            modalities=MODALITY_CHOICES,
            targets=TURNAROUND_TARGET_MINUTES,
            default_sort=worklist_query.DEFAULT_SORT,
            page_data=script_data(request, poll_ms=POLL_SECONDS * 1000, opened_at=utcnow()),
        ),
    )


def study_page(app, request, uid):
    study = app.worklist.study(uid)
    principal = request.principal
    app.audit.record("study_viewed", username=principal.username, role=principal.role, study_uid=uid)
    detail = study_detail(app.scope, study, principal)
    return render(
        "study.html",
        request,
        **context(
            app,
            request,
            "worklist",
            **abilities(principal),
            study=detail,
            viewer_url=viewer_url([uid]),
            viewer_with_priors_url=viewer_with_priors(detail),
            readers=active_readers() if can(principal, "studies.assign_any") else [],
            page_data=script_data(request, study={k: v for k, v in detail.items() if k not in ("series", "priors")}),
        ),
    )


def dashboard_page(app, request):
    figures = dashboard.summary(app.clock.today(), utcnow())
    static = default_webui().static
    chart_url = static.url(CHART_SCRIPT) if static.has(CHART_SCRIPT) else None
    return render(
        "dashboard.html",
        request,
        **context(
            app,
            request,
            "dashboard",
            figures=figures,
            chart_url=chart_url,
            people=people(),
            targets=TURNAROUND_TARGET_MINUTES,
            page_data=script_data(request, per_day=figures["per_day"]),
        ),
    )


def abilities(principal):
    """What the page offers; the API checks the same permissions."""
    return {
        "can_claim": can(principal, "studies.claim"),
        "can_prioritise": can(principal, "studies.prioritise"),
        "can_send": can(principal, "images.send"),
    }


def active_readers():
    """(username, display name) of everyone a study can be assigned to."""
    users = (
        User.select(User.username, User.display_name)
        .where(User.role.in_(roles_with("studies.claim")), User.disabled == False)  # noqa: E712 (SQL)
        .order_by(User.username)
    )
    return [(u.username, u.display_name or u.username) for u in users]


def people():
    """{username: display name} of every reader, disabled ones too: old claims
    and assignments still name them."""
    users = User.select(User.username, User.display_name).where(User.role.in_(roles_with("studies.claim")))
    return {u.username: u.display_name or u.username for u in users}


def script_data(request, **extra):
    """page_data for worklist.js: who is looking, names to show and the
    messages scripts print, in the request's language."""
    principal = request.principal
    return {
        "me": principal.username,
        "may_release_any": can(principal, "studies.release_any"),
        "may_assign_any": can(principal, "studies.assign_any"),
        "people": people(),
        "texts": script_texts(request),
        **extra,
    }


def script_texts(request):
    messages = {
        "being_read_by": "being read by %(name)s",
        "claim_refused": "Could not claim this study: %(error)s",
        "action_failed": "That did not work: %(error)s",
        "load_failed": "The worklist could not be loaded: %(error)s",
        "page_of": "Page %(page)s of %(pages)s",
        "study_count": "Studies: %(count)s",
        "updated_at": "Updated %(time)s",
        "age_sex": "%(age)s y %(sex)s",
        "minutes": "%(m)s min",
        "hours": "%(h)s h %(m)s min",
        "days": "%(d)s d %(h)s h",
        "overdue": "Over the turnaround target",
        "read_in": "Read in %(duration)s",
    }
    return {key: _(message, request) for key, message in messages.items()}


def viewer_url(study_uids):
    return VIEWER_URL + "?" + urlencode([("StudyInstanceUIDs", uid) for uid in study_uids])


def viewer_with_priors(detail):
    """The viewer with the priors that have images, or None when there are none."""
    priors = [p["study_instance_uid"] for p in detail["priors"] if p["status"] not in NO_IMAGES]
    return viewer_url([detail["study_instance_uid"], *priors]) if priors else None


ROUTES = (
    Route("GET", HOME, worklist_page, "studies.read", page=True),
    Route("GET", "/pacs/studies/{uid}", study_page, "studies.read", study="uid", page=True),
    Route("GET", "/pacs/dashboard", dashboard_page, "dashboard.read", page=True),
)
