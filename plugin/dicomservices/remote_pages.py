"""The DICOM nodes page: the list with C-ECHO for everyone who may see it,
add/edit/delete for admins, query and retrieve for those who may."""

from plugin.auth.pages import checked_form, page
from plugin.auth.permissions import permissions_of
from plugin.http import HttpError
from plugin.webui import gettext as _
from plugin.webui import render


def register(router, nodes, accounts):
    def nodes_page(request, status=200, error=None, messages=()):
        principal = request.principal
        allowed = permissions_of(principal.role)
        return render(
            "nodes.html",
            request,
            status,
            nodes=nodes.list(),
            error=error,
            messages=list(messages),
            can_manage="nodes.manage" in allowed,
            can_query="nodes.query" in allowed,
            user=accounts.get_user(principal.user_id),
            csrf_token=principal.csrf,
            active_nav="nodes",
        )

    def change(request, action, done):
        try:
            action()
        except HttpError as error:
            return nodes_page(request, error.status, error.message)
        return nodes_page(request, messages=[{"level": "success", "text": done}])

    @router.route("GET", "/pacs/nodes")
    @page
    def show(request):
        return nodes_page(request)

    @router.route("POST", "/pacs/admin/nodes")
    @page
    def save(request):
        form = checked_form(request)
        port = form.get("port", "")
        body = {
            "aet": form.get("aet", "").strip(),
            "host": form.get("host", "").strip(),
            "port": int(port) if port.isascii() and port.isdigit() else port,
            **{
                field: form.get(field) == "1"
                for field in (
                    "allow_echo",
                    "allow_find",
                    "allow_move",
                    "allow_get",
                    "allow_store",
                    "allow_find_worklist",
                )
            },
        }
        return change(
            request,
            lambda: nodes.save(form.get("name", "").strip(), body, request.principal),
            _("Node saved.", request),
        )

    @router.route("POST", "/pacs/admin/nodes/{name}/delete")
    @page
    def delete(request, name):
        checked_form(request)
        return change(request, lambda: nodes.delete(name, request.principal), _("Node removed.", request))
