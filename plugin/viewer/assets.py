"""OHIF's prebuilt files, served under /pacs/viewer/.

The OHIF build assumes it lives at "/": index.html, the webpack public path
of its bundles and workers, the stylesheet's font URLs and the manifest's
icons name absolute paths. Each file is rewritten for our sub-path once, on
first use, and kept in memory with a gzip copy, so a request costs a dict
look-up (the main bundle is 17 MB: compressing it per request took 0.4 s).
"""

import gzip
import logging
import mimetypes
import re
import threading
from pathlib import Path

from plugin.errors import Invalid, NotFound
from plugin.http import Response

LOGGER = logging.getLogger(__name__)

MOUNT = "/pacs/viewer/"
HASHED = re.compile(r"(^|\.)[0-9a-f]{16}\.[a-z0-9]+$")
COMPRESSIBLE = (".js", ".css", ".html", ".json", ".wasm", ".svg", ".map", ".txt", ".xml")
TYPES = {
    ".js": "application/javascript",
    ".mjs": "application/javascript",
    ".wasm": "application/wasm",
    ".json": "application/json",
    ".map": "application/json",
    ".css": "text/css",
    ".html": "text/html; charset=utf-8",
    ".svg": "image/svg+xml",
    ".woff2": "font/woff2",
    ".ico": "image/x-icon",
}
ISOLATION_HEADERS = {  # SharedArrayBuffer (OHIF's volume rendering) needs cross-origin isolation
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Embedder-Policy": "require-corp",
    "Cross-Origin-Resource-Policy": "same-origin",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "SAMEORIGIN",
}


def rewrite(name, data, mount=MOUNT):
    """The file's bytes with every absolute "/" reference moved under ``mount``.

    Returns (bytes, number of replacements) so a test can prove that each
    rule still finds its target in the pinned OHIF version.
    """
    rules = RULES.get(_kind(name), ())
    text = data.decode("utf-8") if rules else None
    count = 0
    for pattern, replacement in rules:
        text, n = pattern.subn(replacement.replace("{mount}", mount), text)
        count += n
    return (text.encode("utf-8") if rules else data), count


RULES = {
    "index": (
        (re.compile(r'window\.PUBLIC_URL="/"'), 'window.PUBLIC_URL="{mount}"'),
        (re.compile(r'(src|href|content)="/(?!/)'), r'\1="{mount}'),
    ),
    "bundle": ((re.compile(r'__webpack_require__\.p = "/"'), '__webpack_require__.p = "{mount}"'),),
    "css": ((re.compile(r"url\(/(?!/)"), "url({mount}"),),
    "manifest": ((re.compile(r'"src": "/(?!/)'), '"src": "{mount}'),),
}


def _kind(name):
    if name == "index.html":
        return "index"
    if name == "manifest.json":
        return "manifest"
    if name.endswith(".css"):
        return "css"
    if name.endswith(".js") and ".bundle." in name:
        return "bundle"
    return ""


def checked_path(raw):
    """A relative path inside the viewer folder, or Invalid (400) for anything suspicious."""
    if any(bad in raw for bad in ("\\", "\x00", "%", "//")) or raw.startswith("/"):
        raise Invalid("invalid path")
    parts = raw.split("/") if raw else []
    if any(part in ("", ".", "..") or part.startswith(".") for part in parts):
        raise Invalid("invalid path")
    return "/".join(parts)


class ViewerAssets:
    def __init__(self, root, app_config):
        self._root = Path(root).resolve()
        self._app_config = app_config
        self._cache = {}
        self._lock = threading.Lock()

    @property
    def installed(self):
        return (self._root / "index.html").is_file()

    def warm(self):
        """Rewrite and compress what every first open loads (the page and the main
        bundle: 17 MB) ahead of the first viewer after a restart."""
        if not self.installed:
            return
        for name in ["index.html"] + sorted(
            p.name for p in self._root.glob("app.bundle.*") if not p.name.endswith(".map")
        ):
            if name not in self._cache:
                self._load(name)
        LOGGER.info("event=viewer_warm files=%d", len(self._cache))

    def respond(self, request, raw_path):
        if not self.installed:
            raise NotFound("the viewer is not installed (run make install)")
        name = checked_path(raw_path)
        if name == "app-config.js":
            return self._answer(request, name, self._app_config(request), "no-cache")
        path = (self._root / name).resolve() if name else self._root
        if path.is_file() and self._root in path.parents:
            return self._file(request, name)
        if "." in name.rsplit("/", 1)[-1]:
            raise NotFound(f"no such viewer file: {name}")
        return self._file(request, "index.html")  # a client route of the single-page app

    def _file(self, request, name):
        entry = self._cache.get(name)
        if entry is None:
            entry = self._load(name)
        plain, packed = entry
        cache = "public, max-age=31536000, immutable" if HASHED.search(name) else "no-cache"
        return self._answer(request, name, plain, cache, packed)

    def _load(self, name):
        with self._lock:
            if name not in self._cache:
                data, _count = rewrite(name, (self._root / name).read_bytes())
                packed = gzip.compress(data, 6) if name.endswith(COMPRESSIBLE) and len(data) > 1024 else None
                self._cache[name] = (data, packed)
            return self._cache[name]

    @staticmethod
    def _answer(request, name, data, cache, packed=None):
        suffix = Path(name).suffix
        content_type = TYPES.get(suffix) or mimetypes.guess_type(name)[0] or "application/octet-stream"
        headers = dict(ISOLATION_HEADERS, **{"Cache-Control": cache, "Vary": "Accept-Encoding"})
        if packed is not None and "gzip" in request.headers.get("accept-encoding", ""):
            headers["Content-Encoding"] = "gzip"
            data = packed
        if isinstance(data, str):
            data = data.encode("utf-8")
        return Response(200, data, content_type, headers)
