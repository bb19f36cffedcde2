"""JSON API of orders: create, list, read, edit, cancel. Each handler gets the App."""

from pydantic import BaseModel, Field, StrictStr

from plugin.http import Response
from plugin.orders.fields import NewOrder, OrderChanges, posted
from plugin.orders.service import OrderSearch, describe, describe_all
from plugin.routing import Route

ORDERS = "/pacs/api/orders"
ORDER = "/pacs/api/orders/{id}"
NO_STORE = {"Cache-Control": "no-store"}


class Cancellation(BaseModel):
    reason: StrictStr = Field("", max_length=1024, description="a text of at most 1024 characters")


def create_order(app, request, body):
    order = app.orders.create(posted(body), request.principal)
    return Response.json(describe(order, app.clock), 201, {"Location": ORDER.format(id=order.id)})


def list_orders(app, request, query):
    rows, total = app.orders.search(query)
    app.audit.record_request("search", request)
    return Response.json({"items": describe_all(rows, app.clock), "total": total}, headers=NO_STORE)


def get_order(app, request, id):
    order = describe(app.orders.get(id), app.clock)
    app.audit.record_request("resource_read", request, study_uid=order["study_instance_uid"])
    return Response.json(order, headers=NO_STORE)


def edit_order(app, request, id, body):
    return describe(app.orders.update(id, posted(body), request.principal), app.clock)


def cancel_order(app, request, id, body):
    return describe(app.orders.cancel(id, request.principal, body.reason.strip()), app.clock)


ROUTES = (
    Route(
        "GET",
        ORDERS,
        list_orders,
        "orders.read",
        summary="Orders, by scheduled time: {items, total}",
        query=OrderSearch,
    ),
    Route(
        "POST",
        ORDERS,
        create_order,
        "orders.write",
        summary="Schedule a procedure (a modality worklist item; on the reading worklist as scheduled); "
        "the accession number is generated when absent; a known patient ID lends name, birth date and sex",
        body=NewOrder,
        responses=(("201", "created"), ("409", "accession number or StudyInstanceUID in use")),
    ),
    Route("GET", ORDER, get_order, "orders.read", summary="One order with its performed procedure steps (MPPS)"),
    Route(
        "PUT",
        ORDER,
        edit_order,
        "orders.write",
        summary="Change a scheduled order (the fields given)",
        body=OrderChanges,
        responses=(("409", "no longer scheduled, or a number in use"),),
    ),
    Route(
        "POST",
        "/pacs/api/orders/{id}/cancel",
        cancel_order,
        "orders.write",
        summary="Cancel an order (scheduled, in progress or discontinued): {reason} optional",
        body=Cancellation,
        body_optional=True,
        responses=(("409", "completed or arrived"),),
    ),
)
