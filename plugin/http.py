"""Requests, responses and routing for the plugin's own HTTP routes.

Plain Python: the host adapter turns Orthanc's REST callback into a
`Request` and writes the `Response` back, so every handler can be driven by
tests without Orthanc.
"""

import itertools
import json
import logging
import re
from dataclasses import dataclass, field, replace
from urllib.parse import parse_qsl, unquote_plus

from plugin import jsonout
from plugin.errors import (
    Conflict,
    DomainError,
    Forbidden,
    Invalid,
    Locked,
    NotFound,
    RemoteFailed,
    RemoteTimedOut,
    TooLarge,
    Unauthenticated,
    Unavailable,
    Unsupported,
)

LOGGER = logging.getLogger(__name__)

MAX_JSON_BODY = 1024 * 1024
MAX_JSON_DEPTH = 64

# For json_nesting_ok: strings (an unterminated one runs to the end: one linear
# pass) and what is not a bracket go; a bracket counts +1 or -1.
_JSON_STRING = re.compile(r'"[^"\\]*(?:\\[\s\S][^"\\]*)*"?')
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_BRACKET_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}


def json_nesting_ok(text, limit=MAX_JSON_DEPTH):
    """Whether JSON text nests arrays and objects at most ``limit`` deep (linear time).

    json.loads recurses in C, and an Orthanc HTTP thread's stack is small: a body
    of a few hundred "[" (sent to the login, no account needed) crashed the whole
    server before Python's recursion limit could stop it.
    """
    if text.count("[") + text.count("{") <= limit:
        return True
    brackets = _NOT_BRACKET.sub("", _JSON_STRING.sub("", text))
    return max(itertools.accumulate(map(_BRACKET_STEP.__getitem__, brackets)), default=0) <= limit


NUL_MESSAGE = "text must not contain NUL characters or invalid Unicode"
DB_INT = 2**63  # the database's integers: larger numbers overflow the driver


def path_id(value):
    """A database id from a URL segment, or None when it cannot name a row (then: 404)."""
    text = str(value)
    number = int(text) if text.isascii() and text.isdigit() else 0
    return number if 0 < number < DB_INT else None


def whole_number(value, name, minimum=-DB_INT, maximum=DB_INT - 1):
    """A whole number (an int, or ASCII digits) within bounds, else Invalid that names it.

    str.isdigit() is no guard: "²" passes it and int() then fails, and
    numbers past 2**63 overflow the database.
    """
    text = str(value).strip() if isinstance(value, (int, str)) and not isinstance(value, bool) else ""
    if not (text.isascii() and text.lstrip("-").isdigit()):
        raise Invalid(f"{name} must be a whole number")
    number = int(text)
    if number < minimum:
        raise Invalid(f"{name} must be at least {minimum}")
    if number > maximum:
        raise Invalid(f"{name} must be at most {maximum}")
    return number


def int_param(value, name, minimum=-DB_INT, maximum=DB_INT - 1):
    """`whole_number`, refused as an HttpError 400 (for callers that catch HttpError)."""
    try:
        return whole_number(value, name, minimum, maximum)
    except Invalid as error:
        raise HttpError(400, error.message) from None


def unstorable_text(value):
    """Whether a decoded query, form or JSON value holds text no database can
    store: NUL (PostgreSQL's driver raises) or a lone surrogate. Refused at the
    door, once, for every route, rather than a 500 deep in some query.
    """
    if isinstance(value, str):
        return "\x00" in value or not _encodes(value)
    if isinstance(value, dict):
        return any(unstorable_text(k) or unstorable_text(v) for k, v in value.items())
    if isinstance(value, list):
        return any(unstorable_text(item) for item in value)
    return False


def _encodes(text):
    """Lone surrogates (a JSON "\\udc80") cannot be stored either."""
    try:
        text.encode("utf-8")
        return True
    except UnicodeEncodeError:
        return False


def decode_query(raw_query):
    """Orthanc 1.10.1 hands query-string values to plugins still %-encoded."""
    return {unquote_plus(k): unquote_plus(v) for k, v in (raw_query or {}).items()}


# The one place where a domain error becomes an HTTP status.
HTTP_STATUS = {
    Invalid: 400,
    Unauthenticated: 401,
    Forbidden: 403,
    NotFound: 404,
    Conflict: 409,
    TooLarge: 413,
    Unsupported: 415,
    Locked: 423,
    RemoteFailed: 502,
    RemoteTimedOut: 504,
    Unavailable: 503,
}


def http_status(error):
    """The status for a domain error: its own class's, else its nearest ancestor's."""
    return next((HTTP_STATUS[kind] for kind in type(error).__mro__ if kind in HTTP_STATUS), 400)


class HttpError(Exception):
    """An answer with a 4xx/5xx status and a JSON ``{"error": message}``."""

    def __init__(self, status, message, headers=None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = dict(headers or {})


@dataclass
class Request:
    method: str
    path: str
    query: dict = field(default_factory=dict)
    headers: dict = field(default_factory=dict)
    body: bytes = b""
    client_ip: str = ""
    principal: object = None  # set by the guard: who is asking
    form_csrf: bool = False  # set by the guard: a form post whose csrf_token field must match

    @classmethod
    def from_orthanc(cls, method, path, raw_query, headers, body, client_ip=""):
        return cls(method.upper(), path, decode_query(raw_query), dict(headers or {}), body or b"", client_ip)

    def form(self):
        """An application/x-www-form-urlencoded body as a dict (last value wins)."""
        if len(self.body) > MAX_JSON_BODY:
            raise HttpError(413, f"request body larger than {MAX_JSON_BODY} bytes")
        try:
            text = self.body.decode("utf-8")
        except UnicodeDecodeError:
            raise HttpError(400, "form data is not valid UTF-8") from None
        form = dict(parse_qsl(text, keep_blank_values=True))
        if unstorable_text(form):
            raise HttpError(400, NUL_MESSAGE)
        return form

    def json(self):
        """The body as a JSON object, or a 400 that says what is wrong."""
        if len(self.body) > MAX_JSON_BODY:
            raise HttpError(413, f"request body larger than {MAX_JSON_BODY} bytes")
        try:
            text = self.body.decode("utf-8")
        except UnicodeDecodeError:
            raise HttpError(400, "request body is not valid JSON") from None
        if not json_nesting_ok(text):
            raise HttpError(400, f"request body nests JSON deeper than {MAX_JSON_DEPTH} levels")
        try:
            data = json.loads(text)
        except ValueError:
            raise HttpError(400, "request body is not valid JSON") from None
        if not isinstance(data, dict):
            raise HttpError(400, "request body must be a JSON object")
        if unstorable_text(data):
            raise HttpError(400, NUL_MESSAGE)
        return data


@dataclass
class Response:
    status: int = 200
    body: bytes = b""
    content_type: str = "text/plain; charset=utf-8"
    headers: dict = field(default_factory=dict)

    @classmethod
    def json(cls, data, status=200, headers=None):
        """A JSON answer, written by the one encoder (plugin.jsonout: times in UTC with a Z)."""
        body = jsonout.dumps(data).encode("ascii")
        return cls(status, body, "application/json", dict(headers or {}))

    @classmethod
    def error(cls, status, message, headers=None):
        return cls.json({"error": message}, status, headers)

    @classmethod
    def redirect(cls, location, status=303):
        return cls(status, b"", "text/plain", {"Location": location})


class Router:
    """Method + path pattern -> handler(request, **path_params)."""

    def __init__(self):
        self._routes = []

    def add(self, method, pattern, handler):
        self.add_regex(method, re.compile("^" + re.sub(r"{(\w+)}", r"(?P<\1>[^/]+)", pattern) + "$"), handler)

    def add_regex(self, method, regex, handler):
        """A route by a compiled, anchored regex (its named groups are the handler's arguments)."""
        self._routes.append((method.upper(), regex, handler))

    def route(self, method, pattern):
        def register(handler):
            self.add(method, pattern, handler)
            return handler

        return register

    def dispatch(self, request):
        """Run the matching handler; every failure becomes a JSON error."""
        try:
            handler, params = self._match(request)
            if unstorable_text(request.query):
                raise HttpError(400, NUL_MESSAGE)
            return handler(request, **params)
        except HttpError as error:
            return Response.error(error.status, error.message, error.headers)
        except DomainError as error:
            return Response.error(http_status(error), error.message, error.headers)
        except Exception:  # a bug must not take the worker thread down
            LOGGER.exception("event=http_handler_failed method=%s path=%s", request.method, request.path)
            return Response.error(500, "internal error")

    def _match(self, request):
        allowed = []
        for method, regex, handler in self._routes:
            match = regex.match(request.path)
            if match is None:
                continue
            if method == request.method:
                return handler, match.groupdict()
            allowed.append(method)
        if allowed:
            methods = ", ".join(sorted(set(allowed)))
            raise HttpError(405, f"method {request.method} not allowed here; use {methods}", {"Allow": methods})
        raise HttpError(404, f"no such route: {request.path}")


def page_shown_with_200(response):
    """An HTML page answered with an error status (a form refused with what was typed,
    the error page), as a server that can send such a page only as text must send it:
    with 200, and its own status in X-Pacs-Status, so the browser shows the page.
    Other answers (JSON, redirects, files) are returned unchanged."""
    if response.status < 400 or not response.content_type.startswith("text/html"):
        return response
    return replace(response, status=200, headers={**response.headers, "X-Pacs-Status": str(response.status)})
