"""The orders pages: the list with a form to schedule a procedure (/pacs/orders)
and one order with its edit and cancel forms (/pacs/orders/{id}). Plain forms,
no script: the service (plugin.orders.service) checks every field."""

from plugin.dicomnames import name_parts, pn_from_parts
from plugin.errors import DomainError, Invalid
from plugin.http import Response, http_status
from plugin.models import PRIORITIES
from plugin.orders.fields import SEXES
from plugin.orders.models import OPEN_STATUSES, ORDER_STATUSES
from plugin.orders.service import CANCELLABLE, EDITABLE, OrderSearch, describe, describe_all
from plugin.permissions import can
from plugin.routing import Route
from plugin.webui import render
from plugin.webui.forms import checked_form

FORM_FIELDS = (
    "patient_id",
    "patient_birth_date",
    "patient_sex",
    "modality",
    "scheduled_station_aet",
    "scheduled_at",
    "procedure",
    "accession_number",
    "priority",
)
# Person names are typed as a family and a given name (fields <prefix>_family, <prefix>_given).
NAME_FIELDS = {"patient_name": "patient", "referring_physician": "referring"}
MODALITIES = ("CR", "CT", "DX", "MG", "MR", "NM", "OT", "PT", "RF", "US", "XA")
PAGE_SIZE = 50
ORDERS = "/pacs/orders"
ORDER = "/pacs/orders/{id}"


def fields_of(form, order=None):
    """The order fields a form posted (the CSRF token and anything else left out), its
    names made DICOM person names from their family and given fields. Editing an
    order, a name whose two fields were left as shown keeps its stored value (with
    any prefix, suffix or ideographic form the fields do not show)."""
    fields = {name: form[name] for name in FORM_FIELDS if name in form}
    for name, prefix in NAME_FIELDS.items():
        if f"{prefix}_family" in form or f"{prefix}_given" in form:
            typed = (form.get(f"{prefix}_family", "").strip(), form.get(f"{prefix}_given", "").strip())
            stored = getattr(order, name, None) or ""
            fields[name] = stored if order is not None and typed == name_parts(stored) else pn_from_parts(*typed)
    return fields


def as_shown(described, clock):
    """An order as its pages show and its forms take it: times on the clinic's wall
    clock, "YYYY-MM-DDTHH:MM:SS" (the API gives them as UTC moments)."""

    def wall(moment):
        return "" if moment is None else clock.local(moment).strftime("%Y-%m-%dT%H:%M:%S")

    steps = [
        dict(step, started_at=wall(step["started_at"]), ended_at=wall(step["ended_at"]))
        for step in described["performed_steps"]
    ]
    return dict(described, scheduled_at=wall(described["scheduled_at"]), performed_steps=steps)


def _context(app, request, **extra):
    principal = request.principal
    return dict(
        user=app.accounts.get_user(principal.user_id),
        csrf_token=principal.csrf,
        active_nav="orders",
        can_write=can(principal, "orders.write"),
        priorities=PRIORITIES,
        sexes=[s for s in SEXES if s],
        modalities=MODALITIES,
        order_statuses=ORDER_STATUSES,
        **extra,
    )


def _list_page(app, request, status=200, error=None, form=None):
    """The list, filtered as the query asks (a filter it cannot take is said on the page;
    a malformed page number is the error page)."""
    filters = {name: request.query.get(name, "") for name in ("status", "q", "date_from", "date_to")}
    page = OrderSearch.model_validate({"page": request.query.get("page", "")}).page
    asked = dict(filters, status=filters["status"] or ",".join(OPEN_STATUSES), page=page, page_size=PAGE_SIZE)
    try:
        rows, total = app.orders.search(OrderSearch.model_validate(asked))
        app.audit.record_request("search", request)
    except Invalid as bad_filter:
        rows, total, error = [], 0, bad_filter.message
    return render(
        "orders.html",
        request,
        status,
        **_context(
            app,
            request,
            orders=[as_shown(order, app.clock) for order in describe_all(rows, app.clock)],
            total=total,
            filters=filters,
            page=page,
            page_size=PAGE_SIZE,
            form=form or {"priority": "routine"},
            error=error,
        ),
    )


def _order_page(app, request, order, status=200, error=None, form=None):
    described = as_shown(describe(order, app.clock), app.clock)
    app.audit.record_request("resource_read", request, study_uid=described["study_instance_uid"])
    return render(
        "order.html",
        request,
        status,
        **_context(
            app,
            request,
            order=described,
            form=form or described,
            error=error,
            editable=order.status in EDITABLE,
            cancellable=order.status in CANCELLABLE,
        ),
    )


def show_orders(app, request):
    return _list_page(app, request)


def create_order(app, request):
    """A refusal shows the list again with the form as it was typed."""
    values = fields_of(checked_form(request))
    try:
        order = app.orders.create(values, request.principal)
    except DomainError as error:
        return _list_page(app, request, http_status(error), error.message, values)
    return Response.redirect(ORDER.format(id=order.id))


def show_order(app, request, id):
    return _order_page(app, request, app.orders.get(id))


def edit_order(app, request, id):
    """A refusal shows the order again with the form as it was typed."""
    order = app.orders.get(id)
    values = fields_of(checked_form(request), order)
    try:
        app.orders.update(id, values, request.principal)
    except DomainError as error:
        typed = dict(as_shown(describe(order, app.clock), app.clock), **values)
        return _order_page(app, request, order, http_status(error), error.message, typed)
    return Response.redirect(ORDER.format(id=id))


def cancel_order(app, request, id):
    order = app.orders.get(id)
    reason = checked_form(request).get("reason", "").strip()[:1024]
    try:
        app.orders.cancel(id, request.principal, reason)
    except DomainError as error:
        return _order_page(app, request, order, http_status(error), error.message)
    return Response.redirect(ORDER.format(id=id))


ROUTES = (
    Route("GET", ORDERS, show_orders, "orders.read", page=True),
    Route("POST", ORDERS, create_order, "orders.write", page=True),
    Route("GET", ORDER, show_order, "orders.read", page=True),
    Route("POST", ORDER, edit_order, "orders.write", page=True),
    Route("POST", "/pacs/orders/{id}/cancel", cancel_order, "orders.write", page=True),
)
