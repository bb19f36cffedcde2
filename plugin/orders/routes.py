"""JSON API of orders: create, list, read, edit, cancel."""

from plugin.http import HttpError, Response
from plugin.orders.service import describe, describe_all


def register(router, orders, audit):
    @router.route("POST", "/pacs/api/orders")
    def create_order(request):
        order = orders.create(request.json(), request.principal)
        return Response.json(describe(order), 201, {"Location": f"/pacs/api/orders/{order.id}"})

    @router.route("GET", "/pacs/api/orders")
    def list_orders(request):
        rows, total = orders.search(request.query)
        audit.record_request("search", request)
        return Response.json({"items": describe_all(rows), "total": total}, headers={"Cache-Control": "no-store"})

    @router.route("GET", "/pacs/api/orders/{id}")
    def get_order(request, id):
        order = describe(orders.get(id))
        audit.record_request("resource_read", request, study_uid=order["study_instance_uid"])
        return Response.json(order, headers={"Cache-Control": "no-store"})

    @router.route("PUT", "/pacs/api/orders/{id}")
    def edit_order(request, id):
        return Response.json(describe(orders.update(id, request.json(), request.principal)))

    @router.route("POST", "/pacs/api/orders/{id}/cancel")
    def cancel_order(request, id):
        data = request.json() if request.body else {}
        reason = data.get("reason", "")
        if not isinstance(reason, str) or len(reason) > 1024:
            raise HttpError(400, "reason must be a text of at most 1024 characters")
        return Response.json(describe(orders.cancel(id, request.principal, reason.strip())))
