"""HTTP headers shared by every page and static file of the web UI."""

# Scripts, styles and everything else only from our own origin: no inline
# script or style anywhere, so an injected tag can do nothing. Data for
# scripts travels in data-* attributes or <script type="application/json">.
_CSP_DIRECTIVES = (
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data: blob:",
    "connect-src 'self'",
    "frame-src 'self'",
    "frame-ancestors {frame_ancestors}",
    "object-src 'none'",
    "base-uri 'self'",
    "form-action 'self'",
)

# X-Frame-Options can only say one of these; CSP frame-ancestors says the rest.
_X_FRAME_OPTIONS = {"'self'": "SAMEORIGIN", "'none'": "DENY"}


def security_headers(frame_ancestors="'self'"):
    """Headers for an HTML page. Same-origin framing is allowed by default
    because our own pages embed the viewer in an iframe."""
    headers = {
        "Content-Security-Policy": "; ".join(_CSP_DIRECTIVES).format(frame_ancestors=frame_ancestors),
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "same-origin",
        "Cache-Control": "no-store",
    }
    x_frame_options = _X_FRAME_OPTIONS.get(frame_ancestors)
    if x_frame_options:
        headers["X-Frame-Options"] = x_frame_options
    return headers


def request_header(request, name):
    """A request header by case-insensitive name ("" when absent or no request).
    Orthanc hands header names over in lower case; tests may not."""
    if request is None:
        return ""
    wanted = name.lower()
    for key, value in request.headers.items():
        if key.lower() == wanted:
            return value or ""
    return ""


def quality(params):
    """The q value of a header element's parameters ("q=0.8" -> 0.8; 1.0
    when absent, 0.0 when unreadable)."""
    name, _, value = params.strip().partition("=")
    if name.strip().lower() != "q":
        return 1.0
    try:
        return float(value)
    except ValueError:
        return 0.0
