"""The DICOM nodes page: the list with C-ECHO for everyone who may see it,
add/edit/delete for admins, query and retrieve for those who may."""

from plugin.errors import DomainError
from plugin.http import http_status
from plugin.nodes.service import PERMISSIONS, NodeSettings
from plugin.permissions import can
from plugin.routing import Route, validate
from plugin.webui import gettext as _
from plugin.webui import render
from plugin.webui.forms import checked_form


def _nodes_page(app, request, status=200, error=None, messages=()):
    principal = request.principal
    return render(
        "nodes.html",
        request,
        status,
        nodes=app.nodes.list(),
        error=error,
        messages=list(messages),
        can_manage=can(principal, "nodes.manage"),
        can_query=can(principal, "nodes.query"),
        user=app.accounts.get_user(principal.user_id),
        csrf_token=principal.csrf,
        active_nav="nodes",
    )


def _change(app, request, action, done):
    """The page again, saying what was done or why not."""
    try:
        action()
    except DomainError as error:
        return _nodes_page(app, request, http_status(error), error.message)
    return _nodes_page(app, request, messages=[{"level": "success", "text": done}])


def show(app, request):
    return _nodes_page(app, request)


def save(app, request):
    form = checked_form(request)
    port = form.get("port", "")
    settings = {
        "aet": form.get("aet", "").strip(),
        "host": form.get("host", "").strip(),
        "port": int(port) if port.isascii() and port.isdigit() else port,
        **{field: form.get(field) == "1" for field in PERMISSIONS},
    }
    return _change(
        app,
        request,
        lambda: app.nodes.save(
            form.get("name", "").strip(), validate(NodeSettings, settings, "node"), request.principal
        ),
        _("Node saved.", request),
    )


def delete(app, request, name):
    checked_form(request)
    return _change(app, request, lambda: app.nodes.delete(name, request.principal), _("Node removed.", request))


ROUTES = (
    Route("GET", "/pacs/nodes", show, "nodes.read", page=True),
    Route("POST", "/pacs/admin/nodes", save, "nodes.manage", page=True),
    Route("POST", "/pacs/admin/nodes/{name}/delete", delete, "nodes.manage", page=True),
)
