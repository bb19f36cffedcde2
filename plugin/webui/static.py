"""The web UI's CSS, JS and images, served as /pacs/static/<name> (plugin/site.py).

The files are small, so they are read once at start-up and served from
memory (with a gzip copy for the larger text files). Only files found inside
the static folder at start-up can ever be served: a request names a key of
that in-memory table, never a path on disk.

Orthanc 1.10.1 already %-decodes the URI and folds "..", "." and "//" before
the plugin sees it; `checked_name` does not rely on that. The gzip copy needs
Orthanc's own "HttpCompressionEnabled" to stay false (orthanc.json), or
Orthanc would compress the compressed body again.

Front-end libraries installed from npm by `make install` (git-ignored, so
possibly absent) live in a second root, build/vendor/chartjs, served as
/pacs/static/vendor/<file> under the same rules; without it those URLs are
404s. A page asks `StaticFiles.has` before linking one.
"""

import gzip
import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote

from plugin.errors import Invalid, NotFound
from plugin.http import Response

from .headers import quality, request_header

LOGGER = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).resolve().parent / "static"
VENDOR_DIR = Path(__file__).resolve().parents[2] / "build" / "vendor" / "chartjs"
VENDOR_PREFIX = "vendor/"
URL_PREFIX = "/pacs/static/"
GZIP_MIN_BYTES = 1024
LONG_CACHE = "public, max-age=31536000, immutable"

MIME_TYPES = {
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".json": "application/json",
    ".map": "application/json",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".ico": "image/x-icon",
    ".woff2": "font/woff2",
    ".txt": "text/plain; charset=utf-8",
}
_COMPRESSIBLE = {".css", ".js", ".json", ".map", ".svg", ".txt"}

# A static file opened on its own (an SVG, say) may run nothing.
_STATIC_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
}


@dataclass(frozen=True)
class StaticFile:
    body: bytes
    content_type: str
    version: str
    gzipped: bytes = None


class StaticFiles:
    """Every file under `root`, keyed by its relative POSIX path, and every
    file under `vendor_root` (when it exists), keyed "vendor/<path>"."""

    def __init__(self, root=STATIC_DIR, vendor_root=VENDOR_DIR):
        self.root = Path(root).resolve()
        self._files = dict(_load_all(self.root))
        vendor = Path(vendor_root).resolve()
        if vendor.is_dir():
            self._files.update((VENDOR_PREFIX + name, static) for name, static in _load_all(vendor))

    def has(self, name):
        return name in self._files

    def url(self, name):
        """The URL of a static file with its content hash, so a browser may
        cache it for a year and still gets the new file after a change."""
        return f"{URL_PREFIX}{name}?v={self._files[name].version}"

    def respond(self, request, raw_path):
        name = checked_name(raw_path)
        static = self._files.get(name)
        if static is None:
            raise NotFound(f"no such static file: {name}")
        headers = dict(_STATIC_HEADERS)
        # Long caching only for the current version: a page asking for a
        # newer version than this server has must not pin the old file.
        headers["Cache-Control"] = LONG_CACHE if request.query.get("v") == static.version else "no-cache"
        body = static.body
        if static.gzipped is not None:
            headers["Vary"] = "Accept-Encoding"
            if accepts_gzip(request_header(request, "Accept-Encoding")):
                body = static.gzipped
                headers["Content-Encoding"] = "gzip"
        return Response(200, body, static.content_type, headers)


def _load_all(root):
    for path in sorted(root.rglob("*")):
        resolved = path.resolve()
        relative = path.relative_to(root)
        if not resolved.is_file() or any(part.startswith(".") for part in relative.parts):
            continue
        if not resolved.is_relative_to(root):
            LOGGER.warning("event=static_file_outside_root path=%s", path)
            continue
        yield relative.as_posix(), _load(resolved)


def _load(path):
    body = path.read_bytes()
    suffix = path.suffix.lower()
    gzipped = None
    if suffix in _COMPRESSIBLE and len(body) > GZIP_MIN_BYTES:
        compressed = gzip.compress(body, compresslevel=9, mtime=0)
        gzipped = compressed if len(compressed) < len(body) else None
    return StaticFile(
        body=body,
        content_type=MIME_TYPES.get(suffix, "application/octet-stream"),
        version=hashlib.sha256(body).hexdigest()[:12],
        gzipped=gzipped,
    )


def checked_name(raw_path):
    """The relative file name a request asks for, or Invalid (400) for anything that
    could climb out of the static folder: "..", ".", hidden names, empty
    segments ("a//b"), absolute paths, backslashes, NUL, drive letters, and
    the same again %-encoded (once or twice)."""
    name = unquote(raw_path or "")
    segments = name.split("/")
    if (
        "%" in name
        or "\\" in name
        or "\x00" in name
        or ":" in name
        or any(not segment or segment.startswith(".") for segment in segments)
    ):
        raise Invalid("invalid static file path")
    return name


def accepts_gzip(accept_encoding):
    """True when Accept-Encoding accepts gzip: named, or "*", without q=0."""
    qualities = {}
    for part in accept_encoding.split(","):
        coding, _, params = part.partition(";")
        qualities[coding.strip().lower()] = quality(params)
    return qualities.get("gzip", qualities.get("*", 0.0)) > 0
