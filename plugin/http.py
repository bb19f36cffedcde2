"""Requests, responses and routing for the plugin's own HTTP routes.

Plain Python: the host adapter turns Orthanc's REST callback into a
`Request` and writes the `Response` back, so every handler can be driven by
tests without Orthanc.
"""

import itertools
import json
import logging
import re
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, unquote_plus

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


def decode_query(raw_query):
    """Orthanc 1.10.1 hands query-string values to plugins still %-encoded."""
    return {unquote_plus(k): unquote_plus(v) for k, v in (raw_query or {}).items()}


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
        return cls(method.upper(), path, decode_query(raw_query), dict(headers or {}), body or b"",
                   client_ip)

    def form(self):
        """An application/x-www-form-urlencoded body as a dict (last value wins)."""
        if len(self.body) > MAX_JSON_BODY:
            raise HttpError(413, f"request body larger than {MAX_JSON_BODY} bytes")
        try:
            text = self.body.decode("utf-8")
        except UnicodeDecodeError:
            raise HttpError(400, "form data is not valid UTF-8") from None
        return dict(parse_qsl(text, keep_blank_values=True))

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
        return data


@dataclass
class Response:
    status: int = 200
    body: bytes = b""
    content_type: str = "text/plain; charset=utf-8"
    headers: dict = field(default_factory=dict)

    @classmethod
    def json(cls, data, status=200, headers=None):
        # ensure_ascii: Orthanc's SendHttpStatus takes a str whose length is
        # counted in characters, so non-200 bodies must stay 7-bit.
        body = json.dumps(data, ensure_ascii=True, default=str).encode("ascii")
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
        regex = re.compile("^" + re.sub(r"{(\w+)}", r"(?P<\1>[^/]+)", pattern) + "$")
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
            return handler(request, **params)
        except HttpError as error:
            return Response.error(error.status, error.message, error.headers)
        except Exception:  # a bug must not take the worker thread down
            LOGGER.exception("event=http_handler_failed method=%s path=%s",
                             request.method, request.path)
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
            raise HttpError(405, f"method {request.method} not allowed here; use {methods}",
                            {"Allow": methods})
        raise HttpError(404, f"no such route: {request.path}")
