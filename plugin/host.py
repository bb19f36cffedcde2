"""The host adapter: the only module that imports Orthanc's `orthanc` module.

It turns Orthanc's callbacks into plain calls on the `App` (requests as
`plugin.http.Request`, change events as strings) and gives the rest of the
code a small `OrthancHost` to ask Orthanc things. Everything else is plain
Python that tests drive without Orthanc.
"""

import atexit
import functools
import json
import logging
import threading

import orthanc
import requests

from plugin.app import create_app
from plugin.http import HttpError, Request, Response, page_shown_with_200
from plugin.mwl.service import MwlQueryError
from plugin.permissions import GATEWAY_PATTERNS

LOGGER = logging.getLogger(__name__)

# Only the changes the PACS acts on. NEW_INSTANCE comes once per stored
# image: its whole path (here to Ingest.on_change) is a look-up and a stamp.
_CHANGES = {
    orthanc.ChangeType.NEW_INSTANCE: "new_instance",
    orthanc.ChangeType.NEW_SERIES: "new_series",
    orthanc.ChangeType.STABLE_STUDY: "stable_study",
    orthanc.ChangeType.DELETED: "deleted",
    orthanc.ChangeType.ORTHANC_STARTED: "orthanc_started",
    orthanc.ChangeType.ORTHANC_STOPPED: "orthanc_stopped",
}
# Statuses Orthanc 1.10.1 can send: with any other (429, say) it drops the
# connection without an answer.
_ORTHANC_STATUSES = frozenset(
    {201, 202, 204, 302, 303, 304, 307, 400, 401, 403, 404, 406, 409, 410, 413, 415, 422, 423, 500, 501, 502, 503, 504}
)

# /system's "Capabilities" (Orthanc 1.12.5+) -> our names for them.
_CAPABILITIES = {"HasLabels": "labels", "HasExtendedFind": "extended_find"}

# The HTTP filter gets the method as a number.
_METHODS = {1: "GET", 2: "POST", 3: "PUT", 4: "DELETE"}

_LEVELS = {
    orthanc.ResourceType.PATIENT: "patient",
    orthanc.ResourceType.STUDY: "study",
    orthanc.ResourceType.SERIES: "series",
    orthanc.ResourceType.INSTANCE: "instance",
}


class OrthancHost:
    """What the PACS may ask of Orthanc. Keep every SDK call short: it holds
    the GIL (and so every Python request) for its whole length. Calls that
    may wait (on a remote node, say) go through `rest`."""

    def __init__(self):
        self._token = None
        self._base = None
        self._http = requests.Session()
        self._capabilities = None

    def capabilities(self):
        """What this Orthanc offers beyond 1.10.1, from /system (1.12 says):
        "labels", "extended_find" (/tools/find with OrderBy, ResponseContent, metadata)."""
        if self._capabilities is None:
            system = self.get_json("/system") or {}
            offered = {**system, **(system.get("Capabilities") or {})}  # HasLabels is top-level (1.12.0)
            self._capabilities = frozenset(name for key, name in _CAPABILITIES.items() if offered.get(key))
            LOGGER.info(
                "event=orthanc_capabilities version=%s capabilities=%s",
                system.get("Version", "?"),
                ",".join(sorted(self._capabilities)) or "none",
            )
        return self._capabilities

    def configuration(self):
        return json.loads(orthanc.GetConfiguration())

    def close(self):
        """At shutdown: the loopback HTTP session's connections."""
        self._http.close()

    def get_json(self, path):
        """GET a REST resource as JSON; None if Orthanc does not have it."""
        answer = self.get_bytes(path)
        return None if answer is None else json.loads(answer)

    def get_bytes(self, path):
        """GET a REST resource as bytes; None if Orthanc does not have it."""
        return _unless_unknown(orthanc.RestApiGet, path)

    def rest(self, method, path, body=None, timeout=60, raw=None):
        """(status, JSON or None) of Orthanc's REST API over loopback HTTP.

        Waiting on a socket releases the GIL, unlike an SDK call. The token
        from GenerateRestApiAuthorizationToken passes Orthanc's checks and
        our filter: it never leaves this method (no log, no answer).
        """
        if self._token is None:
            self._token = orthanc.GenerateRestApiAuthorizationToken()
            self._base = f"http://127.0.0.1:{self.configuration().get('HttpPort', 8042)}"
        answer = self._http.request(
            method,
            self._base + path,
            timeout=timeout,
            data=raw if raw is not None else None if body is None else json.dumps(body),
            headers={"Authorization": self._token},
        )
        try:
            return answer.status_code, (answer.json() if answer.content else None)
        except ValueError:
            return answer.status_code, None

    def post_instance(self, dicom):
        """Store a DICOM instance (Part-10 bytes); Orthanc's answer as JSON.
        Over loopback HTTP: storing takes a while and must not hold the GIL."""
        status, answer = self.rest("POST", "/instances", raw=dicom)
        if status != 200:
            raise RuntimeError(f"Orthanc refused the instance ({status}): {answer}")
        return answer

    def transcode(self, dicom, syntax_uid):
        """Part-10 bytes re-encoded in another transfer syntax by Orthanc's DCMTK (an SDK
        call: a few milliseconds for one image, and only for the rare files that need it)."""
        return orthanc.TranscodeDicomInstance(dicom, syntax_uid).SerializeDicomInstance()

    def builtin(self, method, uri, body=b""):
        """Orthanc's built-in REST API, skipping every plugin's routes (ours too): the
        gateway's way in, once it has checked the body. An SDK call: it holds the GIL
        while Orthanc works, so only short calls go this way. Orthanc's refusals are
        the client's: a 404 or 400 that says what Orthanc said."""
        try:
            if method == "GET":
                return orthanc.RestApiGet(uri)
            if method == "POST":
                return orthanc.RestApiPost(uri, body)
            if method == "PUT":
                return orthanc.RestApiPut(uri, body)
            orthanc.RestApiDelete(uri)
            return b""
        except orthanc.OrthancException as error:
            code = error.args[0] if error.args else None
            raise HttpError(
                404 if code in _NOT_FOUND else 400,
                f"Orthanc refused the request: {error.args[-1] if error.args else error}",
            ) from None

    def get_after_plugins(self, path):
        """GET a route of another plugin (e.g. DICOMweb) as bytes; None if unknown.

        A query that plugin refuses (an unknown tag, a bad value) is the
        client's mistake: a 400 that says so, not a 500.
        """
        try:
            return _unless_unknown(orthanc.RestApiGetAfterPlugins, path)
        except orthanc.OrthancException as error:
            raise HttpError(400, f"DICOMweb refused the query: {error.args[-1] if error.args else error}") from None


def _unless_unknown(call, path):
    try:
        return call(path)
    except orthanc.OrthancException as error:
        if error.args and error.args[0] == orthanc.ErrorCode.UNKNOWN_RESOURCE:
            return None
        raise


_ORIGINS = {
    orthanc.InstanceOrigin.DICOM_PROTOCOL: "dicom",
    orthanc.InstanceOrigin.REST_API: "rest",
    orthanc.InstanceOrigin.PLUGIN: "plugin",
    orthanc.InstanceOrigin.LUA: "lua",
    orthanc.InstanceOrigin.WEB_DAV: "webdav",
}
_NOT_FOUND = frozenset(
    {
        orthanc.ErrorCode.UNKNOWN_RESOURCE,
        orthanc.ErrorCode.INEXISTENT_ITEM,
        orthanc.ErrorCode.INEXISTENT_FILE,
        orthanc.ErrorCode.INEXISTENT_TAG,
    }
)


# Orthanc gives the client's address to the filter only; the REST callback
# for the same request runs next on the same HTTP thread. Keyed by OS thread
# id: orthanc-python makes a new Python thread state per callback, so a
# threading.local() would be empty again. Bounded by Orthanc's HTTP threads.
_client_ip = {}


def _request_from(method, uri, req):
    return Request.from_orthanc(
        method, uri, req.get("get"), req.get("headers"), req.get("body"), _client_ip.get(threading.get_ident(), "")
    )


def _send(output, response: Response):
    if response.status == 405:  # Orthanc reserves 405 and 301 to these calls
        output.SendMethodNotAllowed(response.headers.get("Allow", ""))
        return
    if response.status == 301:
        output.Redirect(response.headers["Location"])
        return
    if not _error_answers_keep_their_type():
        response = page_shown_with_200(response)
    for name, value in response.headers.items():
        output.SetHttpHeader(name, value)
    if response.status == 200:
        output.AnswerBuffer(response.body, response.content_type)
        return
    status = response.status if response.status in _ORTHANC_STATUSES else (400 if response.status < 500 else 500)
    output.SetHttpHeader("Content-Type", response.content_type)
    _send_http_status(output, status, response.body)


@functools.cache
def _error_answers_keep_their_type():
    """Whether a non-200 answer goes with the Content-Type the plugin set: so on Orthanc
    1.10.1; 1.12.7 adds its own "Content-Type: text/plain" after ours, and browsers take
    the last (both measured; 1.11, not measured, is taken as 1.12). Where it does not,
    HTML pages go with 200 (http.page_shown_with_200): a refused form must stay a form."""
    return not orthanc.CheckVersionAdvanced(1, 11, 0)


def _send_status_bytes(output, status, body):
    """orthanc-python 4.2 and later (Debian 13's 5.0): SendHttpStatus(status, bytes)."""
    output.SendHttpStatus(status, body)


def _send_status_text(output, status, body):
    """orthanc-python 4.0/4.1 (Debian 12's 4.0): SendHttpStatus(status, str, length),
    the length in characters: keep the text 7-bit."""
    text = body.decode("utf-8", "replace").encode("ascii", "xmlcharrefreplace").decode("ascii")
    output.SendHttpStatus(status, text, len(text))


# Which of the two this orthanc-python has, found on the first error answer:
# both releases give the method the same docstring, and only a call tells.
_status_sender = None


def _send_http_status(output, status, body):
    """The first call tries the newer form; a TypeError comes from parsing the
    arguments, before anything is sent, and means the older form. Either way the
    answer is remembered for the life of the process."""
    global _status_sender
    if _status_sender is None:
        try:
            _send_status_bytes(output, status, body)
        except TypeError:
            _status_sender = _send_status_text
        else:
            _status_sender = _send_status_bytes
            LOGGER.info("event=http_status_api form=bytes")
            return
        LOGGER.info("event=http_status_api form=text")
    _status_sender(output, status, body)


def serve():
    """Create the PACS and register its callbacks with Orthanc."""
    app = create_app(OrthancHost())

    def on_filter(uri, **req):
        ip = req.get("ip", "")
        _client_ip[threading.get_ident()] = ip
        method = _METHODS.get(req.get("method"))
        if method is None:
            return False
        try:
            return bool(app.allows(method, uri, req.get("headers") or {}, req.get("get") or {}, ip))
        except Exception:  # a raising filter answers 500: deny instead, and say why in the log
            LOGGER.exception("event=guard_failed method=%s uri=%s", method, uri)
            return False

    def on_rest(output, uri, **req):
        _send(output, app.handle(_request_from(req["method"], uri, req)))

    def on_gateway(output, uri, **req):
        _send(output, app.handle_gateway(_request_from(req["method"], uri, req)))

    def on_cstore(instance):
        return app.cstore_status(instance.GetInstanceData(), instance.GetInstanceRemoteAet())

    def on_received(data, origin):
        stored = app.received_instance(data, _ORIGINS.get(origin))
        if stored is None:
            return orthanc.ReceivedInstanceAction.DISCARD, None
        if stored is data:
            return orthanc.ReceivedInstanceAction.KEEP_AS_IS, None
        return orthanc.ReceivedInstanceAction.MODIFY, stored

    def on_change(change_type, level, resource_id):
        change = _CHANGES.get(change_type)
        if change is not None:
            app.on_change(change, _LEVELS.get(level), resource_id)

    orthanc.RegisterIncomingHttpRequestFilter(on_filter)
    _register_rest("/", on_rest)  # Orthanc's root: our redirect to the worklist
    _register_rest("/pacs", on_rest)
    _register_rest("/pacs/(.*)", on_rest)
    for pattern in GATEWAY_PATTERNS:  # Orthanc's body routes: the plugin checks the body first
        _register_rest(pattern, on_gateway)
    orthanc.RegisterIncomingCStoreInstanceFilter(on_cstore)
    orthanc.RegisterReceivedInstanceCallback(on_received)
    orthanc.RegisterOnChangeCallback(on_change)
    # The plugin stops its threads on ORTHANC_STOPPED. Should that event not reach us,
    # Py_Finalize runs atexit's callbacks before it tears the interpreter down (in
    # every orthanc-python: none offers a finalize hook of its own).
    atexit.register(app.stop)
    orthanc.RegisterWorklistCallback(_worklist_callback(app))
    _register_rest("/pacs-internal/(.*)", _internal_callback(app))
    return app


# Every REST callback handed to Orthanc, referenced here for the life of the
# interpreter. orthanc-python drops its own references to them while it finalizes,
# without holding the GIL: when that freed a closure, Orthanc 1.12.7 with Python 3.13
# (orthanc-python 5.0) segfaulted on every stop ("Python plugin is finalizing").
# Held here, they are freed by Py_Finalize itself, properly.
_REST_CALLBACKS = []


def _register_rest(pattern, callback):
    """orthanc.RegisterRestCallback, keeping ``callback`` alive (see _REST_CALLBACKS):
    always register REST callbacks through here."""
    _REST_CALLBACKS.append(callback)
    orthanc.RegisterRestCallback(pattern, callback)


def _internal_callback(app):
    """Orthanc's own internal calls (plugin/dicom_audit.lua): the HTTP filter refuses
    /pacs-internal/ to every HTTP client, and internal calls do not pass it."""

    def on_internal(output, uri, **req):
        _send(output, app.handle_internal(_request_from(req["method"], uri, req)))

    return on_internal


def _worklist_callback(app):
    """Orthanc's MWL C-FIND hook: the orders answer it. Raising fails the C-FIND
    (Orthanc sends UnableToProcess): a malformed query does, said in the log."""

    def on_worklist(answers, query, issuer_aet, called_aet):
        try:
            found, complete = app.worklist_find(query.WorklistGetDicomQuery(), issuer_aet, called_aet)
        except MwlQueryError as error:
            LOGGER.warning("event=mwl_query_refused issuer=%s reason=%s", issuer_aet, error)
            raise
        except Exception:
            LOGGER.exception("event=mwl_find_failed issuer=%s", issuer_aet)
            raise
        for answer in found:
            answers.WorklistAddAnswer(query, answer)
        if not complete:
            answers.WorklistMarkIncomplete()

    return on_worklist
