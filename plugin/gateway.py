"""Orthanc's own routes that take a request body, answered through the plugin.

Orthanc parses a body before anything of ours could look at it, and some
bodies kill it: JSON nested a few hundred levels deep segfaults its parser
(any role that may POST to /tools/find could stop the PACS), a ZIP posted to
/instances is unpacked at the size its headers claim, and a DICOM file with
pathological structure crashes DCMTK later, when someone opens it. The HTTP
filter never sees bodies; a plugin's REST callback wins over Orthanc's own
route. So for every route of the permission table marked ``gateway`` the
plugin receives the request, checks the body, and only then hands it to
Orthanc's built-in REST API (``host.builtin``). Those SDK calls hold the GIL
while Orthanc works: the gateway serves short calls (find, lookup, storing
one instance at a time, administration), and the long ones (archives, sending
to nodes) are not gateway routes.

The filter has already checked who may call the route and the body's size.
"""

import io
import json
import logging
import re
import zipfile
import zlib
from urllib.parse import urlencode

from plugin.http import MAX_JSON_DEPTH, HttpError, Response, Router, json_nesting_ok
from plugin.permissions import GATEWAY_PATTERNS

LOGGER = logging.getLogger(__name__)

METHODS = ("GET", "POST", "PUT", "DELETE")
MAX_ZIP_ENTRIES = 20_000
ZIP_MAGIC = b"PK\x03\x04"
# A body that is not JSON is one short value (an id, a UID, "0"/"1", a log level).
_TEXT_BODY = re.compile(r"[\x20-\x7e\t\r\n]*")
# What a damaged or hostile ZIP makes zipfile raise (encrypted members: RuntimeError).
_UNREADABLE_ZIP = (
    zipfile.BadZipFile,
    zipfile.LargeZipFile,
    NotImplementedError,
    RuntimeError,
    EOFError,
    OSError,
    ValueError,
    zlib.error,
)


def check_body(body):
    """A 400 unless ``body`` is empty, plain text or JSON that nests at most MAX_JSON_DEPTH deep.
    Brackets are counted whatever the body looks like: Orthanc's parser may see JSON where we
    would not."""
    if not body:
        return
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise HttpError(400, "request body is not UTF-8 text") from None
    if not json_nesting_ok(text):
        raise HttpError(400, f"request body nests JSON deeper than {MAX_JSON_DEPTH} levels")
    if text.lstrip()[:1] in ("{", "["):
        try:
            json.loads(text)
        except ValueError:
            raise HttpError(400, "request body is not valid JSON") from None
    elif not _TEXT_BODY.fullmatch(text):
        raise HttpError(400, "request body holds control characters")


class Gateway:
    def __init__(self, host, screen, max_upload_bytes):
        self._host = host
        self._screen = screen
        self._max_upload = max_upload_bytes
        self._max_unzipped = 2 * max_upload_bytes
        self.router = Router()
        self.router.add_regex("POST", re.compile(r"^/instances$"), self.upload)
        for pattern in GATEWAY_PATTERNS:
            for method in METHODS:
                self.router.add_regex(method, re.compile(pattern), self.forward)

    def forward(self, request, **_groups):
        """Any other gateway route: the body checked, then Orthanc's own answer."""
        if len(request.body) > self._max_upload:
            raise HttpError(413, f"request body larger than {self._max_upload} bytes")
        check_body(request.body)
        uri = request.path + ("?" + urlencode(request.query) if request.query else "")
        return _answer(self._host.builtin(request.method, uri, request.body))

    def upload(self, request):
        """POST /instances: a DICOM file or a ZIP of them. Each file passes the ingest screen
        and is stored on its own; a ZIP's answer lists what was stored and what refused."""
        is_zip = request.body.startswith(ZIP_MAGIC)
        files = self._unzip(request.body) if is_zip else [("", request.body)]
        stored, refused = [], []
        for name, data in files:
            reason = self._screen(data)
            if reason:
                LOGGER.warning("event=instance_refused source=http address=%s reason=%s", request.client_ip, reason)
                refused.append({"Path": name, "Status": "Refused", "Reason": reason})
                continue
            try:
                stored.append(json.loads(self._host.builtin("POST", "/instances", data)))
            except HttpError as error:
                refused.append({"Path": name, "Status": "Refused", "Reason": error.message})
        if not is_zip:
            if refused:
                raise HttpError(400, f"not stored: {refused[0]['Reason']}")
            return Response.json(stored[0])
        return Response.json(stored + refused, 200 if stored or not refused else 400)

    def _unzip(self, body):
        """[(name, bytes)] of a ZIP's files, within bounds whatever its headers claim."""
        try:
            archive = zipfile.ZipFile(io.BytesIO(body))
            entries = [info for info in archive.infolist() if not info.is_dir()]
            if len(entries) > MAX_ZIP_ENTRIES:
                raise HttpError(413, f"the ZIP holds more than {MAX_ZIP_ENTRIES} files")
            files, total = [], 0
            for info in entries:
                with archive.open(info) as member:
                    data = member.read(self._max_upload + 1)
                total += len(data)
                if len(data) > self._max_upload or total > self._max_unzipped:
                    raise HttpError(413, "the ZIP unpacks to more than this server accepts")
                files.append((info.filename[:255], data))
            return files
        except _UNREADABLE_ZIP as error:
            raise HttpError(400, f"not a readable ZIP archive ({type(error).__name__})") from None


def _answer(body):
    kind = "application/json" if body[:1] in (b"{", b"[") else "text/plain; charset=utf-8"
    return Response(200, body, kind)
