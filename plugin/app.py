"""Builds the PACS from its parts. The host adapter calls `create_app` once
and then hands every request, filter check and change event to the `App`."""

import logging
import threading
import time
from urllib.parse import quote, urlencode

from pydicom.uid import generate_uid

from plugin import db, logs, migrations, route_table, routing, viewer
from plugin.audit import AuditLog, orthanc_resolver, request_address
from plugin.auth import pages as auth_pages
from plugin.auth import routes as auth_routes
from plugin.auth.accounts import Accounts
from plugin.auth.apikeys import ApiKeys
from plugin.auth.guard import NO_SUCH_PAGE, PASSWORD_CHANGE_FIRST, Guard
from plugin.auth.passwords import Hasher
from plugin.auth.scope import ReferrerScope
from plugin.auth.tokens import TokenCodec, load_or_create_secret
from plugin.clock import Clock
from plugin.config import Settings
from plugin.errors import Invalid
from plugin.events import Events
from plugin.gateway import Gateway
from plugin.http import HttpError, Response, Router
from plugin.ingest import Ingest
from plugin.ingest_screen import Examination, examine
from plugin.mpps.service import KnownNodes, MppsServer, PerformedSteps
from plugin.mwl.service import ModalityWorklist
from plugin.nodes.service import RemoteNodes
from plugin.orders.service import Orders
from plugin.permissions import permissions_of
from plugin.reports.copies import DicomCopies
from plugin.reports.service import Reports
from plugin.thumbnails import Thumbnails
from plugin.viewer_ready import make_viewer_ready
from plugin.webui import default_webui, error_page
from plugin.webui import gettext as _
from plugin.worklist.actions import Worklist

LOGGER = logging.getLogger(__name__)

STOP_TIMEOUT = 10.0  # seconds one thread may take to end at shutdown

# Routes for Orthanc's internal calls (e.g. its Lua callbacks): never an HTTP client's.
INTERNAL_PREFIX = "/pacs-internal/"
CANNOT_UNDERSTAND = 0xC000  # DIMSE: "Error: Cannot understand" (PS3.7 C.4.2)


class App:
    def __init__(self, host, settings, clock):
        self.host = host
        self.settings = settings
        self.clock = clock  # the clinic's time zone: every local date and time
        self.router = Router()
        self.events = Events()  # named events (plugin/events.py): publishers and listeners meet here
        self.ingest = Ingest(host, settings.reconcile_interval, settings.stable_age, events=self.events)
        self.audit = AuditLog(window_seconds=settings.image_audit_window)
        self.audit.set_resolver(orthanc_resolver(host))  # patient and study of an Orthanc resource
        codec = TokenCodec(
            load_or_create_secret(settings.data_dir, settings.jwt_secret), int(settings.access_token_minutes * 60)
        )
        self.accounts = Accounts(
            Hasher(settings.bcrypt_cost),
            codec,
            self.audit,
            settings.session_hours,
            settings.idle_hours,
            events=self.events,
        )
        self.apikeys = ApiKeys(self.audit, permissions_of)
        self.scope = ReferrerScope()
        self.guard = Guard(
            self.accounts,
            self.apikeys,
            self.scope,
            self.audit,
            settings.trusted_proxies,
            {"upload": settings.max_upload_mb * 1024 * 1024},
            table=route_table.TABLE,
        )
        self.gateway = Gateway(host, self._screen_reason, settings.max_upload_mb * 1024 * 1024)
        self.routes = route_table.ROUTES
        routing.register(self.router, self.routes, self, self._page_error)
        self.worklist = Worklist(self.audit, Thumbnails(host), settings.claim_minutes)
        self.viewer_assets = viewer.bundled_assets()
        self.static_files = default_webui().static
        self.reports = Reports(
            self.audit,
            self.worklist,
            lambda document: DicomCopies(host, document, clock),
            clock,
            settings.institution_name,
            settings.logo_path or None,
            events=self.events,
        )
        self.nodes = RemoteNodes(
            host, self.audit, host.configuration().get("DicomAet", "PACS"), settings.remote_timeout
        )
        self.events.subscribe("study.removed", self.reports.study_removed)
        self.orders = Orders(self.audit, generate_uid, clock, events=self.events)
        self.modality_worklist = ModalityWorklist(
            self.orders.worklist_candidates, settings.case_sensitive_pn, settings.mwl_max_answers
        )
        self.mpps = MppsServer(
            PerformedSteps(clock, events=self.events), KnownNodes(host, settings.strict_aet), settings
        )
        self._warming = None  # the viewer's warm-up thread
        self._stop_lock = threading.Lock()
        self._stopped = False

    @staticmethod
    def _page_error(status, message, request):
        """A page's refusal, as the HTML error page with the asker's navigation."""
        return error_page(status, message, request, **auth_pages.signed_in(request))

    def start(self):
        """Background work that needs Orthanc up: workers, listeners, the viewer's warm-up.
        Whatever starts a thread here has its step in `stop`."""
        self.audit.start()
        self.ingest.start()
        self._warming = threading.Thread(target=self.viewer_assets.warm, name="pacs-viewer-warm", daemon=True)
        self._warming.start()
        self.reports.copies.start()
        self.mpps.start()

    def stop(self):
        """End every thread, listener and connection the plugin opened, before Orthanc's
        Python plugin finalizes the interpreter, so that none of our code runs while it
        is torn down (see also host._REST_CALLBACKS). Inputs first (MPPS associations), then the
        workers that make work for others (report copies, ingest), the viewer's
        warm-up, the audit writer (it writes what the others recorded), and last the
        loopback HTTP session and the database connections. The host calls it on
        ORTHANC_STOPPED and again as the interpreter exits: the second call does nothing."""
        with self._stop_lock:
            if self._stopped:
                return
            self._stopped = True
        started = time.monotonic()
        steps = (
            ("mpps", self.mpps.stop),
            ("report_copies", self.reports.copies.stop),
            ("ingest", self.ingest.stop),
            ("viewer_warm", self._stop_warming),
            ("audit", self.audit.stop),
            ("http_session", self.host.close),
            ("database", db.close_connections),
        )
        for name, step in steps:
            try:
                step()
            except Exception:  # the other steps still run
                LOGGER.exception("event=plugin_stop_failed step=%s", name)
        left = sorted(thread.name for thread in plugin_threads())
        LOGGER.info(
            "event=plugin_stopped took_ms=%.1f threads_left=%s",
            (time.monotonic() - started) * 1000,
            ",".join(left) or "none",
        )

    def _stop_warming(self, timeout=STOP_TIMEOUT):
        if self._warming is not None:
            self._warming.join(timeout)

    def allows(self, method, path, headers, query, ip):
        """The HTTP filter's answer for one request (every request, every frame).

        Our own routes are always let through to `handle`, which asks the
        same guard and can answer with a 401/redirect and a message (the
        filter can only answer a bare 403). ``query`` is as Orthanc hands it
        over, not %-decoded: the guard approves what Orthanc will read.
        """
        if path.startswith(INTERNAL_PREFIX):  # Orthanc's own internal calls only: they skip this filter
            return False
        refusal = self.guard.body_refusal(method, path, headers)
        if refusal:
            LOGGER.warning("event=request_body_refused method=%s path=%s reason=%s", method, path[:200], refusal)
            return False
        if routing.is_ours(path) or path == "/":  # "/": our redirect to the worklist
            return True
        decision = self.guard.check(method, path, headers, query, self.guard.client_address(ip, headers))
        return decision.allowed

    @db.unit_of_work
    def handle(self, request):
        """Answer one of our HTTP routes (any Orthanc HTTP thread)."""
        request.client_ip = self.guard.client_address(request.client_ip, request.headers)
        address = request_address.set(request.client_ip)
        try:
            decision = self.guard.check(request.method, request.path, request.headers, request.query, request.client_ip)
            if not decision.allowed:
                return self._renewing(request, decision, self.refusal(request, decision))
            request.principal = decision.principal
            request.form_csrf = decision.form_csrf
            return self._renewing(request, decision, self.router.dispatch(request))
        finally:
            request_address.reset(address)

    def _renewing(self, request, decision, response):
        """The answer, carrying the session cookie's renewed access token when the guard
        renewed it (unless the answer sets the cookie itself: a login, a logout)."""
        if decision.renewed and "Set-Cookie" not in response.headers:
            response.headers["Set-Cookie"] = auth_routes.session_cookie(
                decision.renewed, self.settings.session_hours * 3600, auth_routes.is_https(request, self.settings)
            )
        return response

    @staticmethod
    def refusal(request, decision):
        request.principal = decision.principal  # an error page shows the navigation of who is asking
        wants_page = (
            request.method == "GET"
            and not request.path.startswith("/pacs/api/")
            and "text/html" in request.headers.get("accept", "")
        )
        if wants_page and decision.reason == PASSWORD_CHANGE_FIRST:
            return Response.redirect(auth_pages.ACCOUNT)
        if decision.status == 401 and wants_page:  # back to the same view, filters included
            path = request.path if request.path != routing.PREFIX else routing.HOME  # Orthanc drops the slash
            wanted = path + ("?" + urlencode(request.query) if request.query else "")
            return Response.redirect("/pacs/login?next=" + quote(wanted, safe=""))
        if wants_page:
            message = _("There is no such page.", request) if decision.reason == NO_SUCH_PAGE else decision.reason
            return error_page(decision.status, message, request, **auth_pages.signed_in(request))
        headers = {"WWW-Authenticate": 'Bearer realm="pacs"'} if decision.status == 401 else {}
        if decision.allow:
            headers["Allow"] = decision.allow
        return Response.error(decision.status, decision.reason, headers)

    def handle_gateway(self, request):
        """One of Orthanc's own routes that take a body (plugin/gateway.py). The HTTP
        filter has already let it through: who may call it and the body's size."""
        request.client_ip = self.guard.client_address(request.client_ip, request.headers)
        return self.gateway.router.dispatch(request)

    def handle_internal(self, request):
        """Orthanc's internal calls to /pacs-internal/ (never an HTTP client's: the
        filter refuses them): a DICOM node's C-FIND reported by plugin/dicom_audit.lua."""
        if (request.method, request.path) != ("POST", INTERNAL_PREFIX + "dicom-access"):
            return Response.error(404, "no such internal route")
        try:
            recorded = self.audit.record_node_access(request.json())
        except HttpError as error:
            return Response.error(error.status, error.message)
        except ValueError as error:
            return Response.error(400, str(error))
        return Response.json({"recorded": recorded})

    def cstore_status(self, data, calling_aet):
        """The DIMSE status for an image a modality stores (Orthanc's DICOM thread)."""
        reason = self._screen_reason(data)
        if not reason:
            return 0
        LOGGER.warning("event=instance_refused source=dicom calling_aet=%s reason=%s", calling_aet, reason)
        return CANNOT_UNDERSTAND

    def received_instance(self, data, source):
        """What Orthanc stores of an instance it received: None to discard it, else the
        bytes to store (``data`` itself, or made viewer-ready: plugin/viewer_ready.py).

        C-STORE has passed `cstore_status` already, which answered the modality; a
        discard here would answer it "success" and lose the image, so only other
        sources (STOW-RS, another plugin, Lua) are refused here."""
        examination = self._examine(data)
        if examination.refusal:
            if source == "dicom":
                return data
            LOGGER.warning("event=instance_refused source=%s reason=%s", source, examination.refusal)
            return None
        if not examination.viewer_fixes or not self.settings.viewer_conversion:
            return data
        fixes = ",".join(sorted(examination.viewer_fixes))
        try:
            ready = make_viewer_ready(data, examination.viewer_fixes, self.host.transcode)
        except Exception:  # the file as sent is better than no file
            LOGGER.exception("event=viewer_conversion_failed source=%s fixes=%s", source, fixes)
            return data
        LOGGER.info("event=instance_made_viewer_ready source=%s fixes=%s", source, fixes)
        return ready

    def _screen_reason(self, data):
        return self._examine(data).refusal

    @staticmethod
    def _examine(data):
        try:
            return examine(data)
        except Exception:  # the screen is total; should it fail, the file is refused, not stored
            LOGGER.exception("event=instance_screen_failed")
            return Examination("the PACS could not check this file")

    @db.unit_of_work
    def worklist_find(self, query, issuer_aet, called_aet):
        """An MWL C-FIND (Orthanc's DICOM thread): (answers as DICOM bytes, complete?).
        Raises MwlQueryError for a query that cannot be answered."""
        started = time.perf_counter()
        answers, complete = self.modality_worklist.find(query)
        LOGGER.info(
            "event=mwl_find issuer=%s called=%s answers=%d complete=%s took_ms=%.1f",
            issuer_aet,
            called_aet,
            len(answers),
            complete,
            (time.perf_counter() - started) * 1000,
        )
        # Orthanc's worklist callback names the calling AE but not its address.
        self.audit.record_access(
            "dicom_query",
            username=f"dicom:{issuer_aet}",
            role="node",
            address="",
            path="MWL C-FIND",
            query={"called_aet": called_aet, "answers": str(len(answers))},
        )
        return answers, complete

    def on_change(self, change, level, resource_id):
        """One Orthanc change event (Orthanc's change thread): must stay cheap."""
        if change == "orthanc_started":
            self.start()
        elif change == "orthanc_stopped":
            self.stop()
        else:
            self.ingest.on_change(change, level, resource_id)


def plugin_threads():
    """The threads of this interpreter still alive besides the calling one: those the
    plugin (or a library it uses) started. Orthanc's own threads that run our callbacks
    are not among them (`threading` sees them only as dummies)."""
    current = threading.current_thread()
    return [
        thread
        for thread in threading.enumerate()
        if thread is not current
        and thread is not threading.main_thread()
        and not isinstance(thread, threading._DummyThread)
        and thread.is_alive()
    ]


def create_app(host, environ=None):
    try:
        settings = Settings.from_configuration(host.configuration(), environ)
        clock = Clock.named(settings.time_zone)
    except ValueError as error:  # a setting that cannot work: say which, and do not start
        raise SystemExit(f"PACS cannot start: {error}") from None
    logs.configure(settings.log_level)
    try:
        database = db.open_database(settings.database_url)
        migrations.migrate(database)
    except Exception as error:
        LOGGER.error(
            "event=database_unavailable url=%s error=%s",
            db.redact(settings.database_url),
            str(error).strip().replace("\n", " "),
        )
        raise
    app = App(host, settings, clock)
    try:
        password_file = app.accounts.ensure_first_admin(settings.data_dir, settings.admin_password)
    except Invalid as error:
        LOGGER.error("event=first_admin_refused reason=%r", error.message)
        raise SystemExit(f"PACS cannot start: {error.message}") from None
    if password_file:
        LOGGER.warning(
            "event=first_admin_password_written file=%s (read it, log in as admin, change it, then delete the file)",
            password_file,
        )
    LOGGER.info(
        "event=plugin_ready database=%s data_dir=%s time_zone=%s",
        settings.database_url.split("://", 1)[0],
        settings.data_dir,
        clock.name,
    )
    return app
