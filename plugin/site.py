"""The site's routes that belong to no feature: Orthanc's root, which leads to the
worklist, and the web UI's static files (CSS, JS, images: plugin/webui/static.py).
Neither is JSON API: both stay out of the OpenAPI document.

Not in plugin.webui: declaring a route needs plugin.routing, which needs
plugin.auth, whose pages need plugin.webui (an import cycle)."""

from plugin.http import Response
from plugin.permissions import PUBLIC
from plugin.routing import HOME, Route


def static_file(app, request, path):
    """A file of the static folder; traversal attempts are a clear 400, no such file a 404."""
    return app.static_files.respond(request, path)


def server_root(app, request):
    """Orthanc's root leads to the worklist (whoever is not signed in then goes on to the login)."""
    return Response.redirect(HOME)


ROUTES = (
    # Orthanc's root is not under /pacs, so the guard reads its body limit from its rule: JSON's, as ever.
    Route("GET", "/", server_root, PUBLIC, page=True, body_limit="json"),
    Route("GET", "/pacs/static/{path:path}", static_file, PUBLIC, documented=False),
)
