"""The orders pages: the list with a form to schedule a procedure (/pacs/orders)
and one order with its edit and cancel forms (/pacs/orders/{id}). Plain forms,
no script: the service (plugin.orders.service) checks every field."""

from plugin.auth.pages import page
from plugin.auth.permissions import permissions_of
from plugin.dicomnames import name_parts, pn_from_parts
from plugin.http import HttpError, Response, int_param
from plugin.models import PRIORITIES
from plugin.orders.fields import SEXES
from plugin.orders.models import OPEN_STATUSES, ORDER_STATUSES
from plugin.orders.service import CANCELLABLE, EDITABLE, describe, describe_all
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


def register(router, orders, accounts, audit):
    def context(request, **extra):
        principal = request.principal
        return dict(
            user=accounts.get_user(principal.user_id),
            csrf_token=principal.csrf,
            active_nav="orders",
            can_write="orders.write" in permissions_of(principal.role),
            priorities=PRIORITIES,
            sexes=[s for s in SEXES if s],
            modalities=MODALITIES,
            order_statuses=ORDER_STATUSES,
            **extra,
        )

    def list_page(request, status=200, error=None, form=None):
        filters = {name: request.query.get(name, "") for name in ("status", "q", "date_from", "date_to")}
        query = dict(
            filters,
            status=filters["status"] or ",".join(OPEN_STATUSES),
            page=request.query.get("page", "1"),
            page_size=str(PAGE_SIZE),
        )
        try:
            rows, total = orders.search(query)
            audit.record_request("search", request)
        except HttpError as bad_filter:
            rows, total, error = [], 0, bad_filter.message
        return render(
            "orders.html",
            request,
            status,
            **context(
                request,
                orders=describe_all(rows),
                total=total,
                filters=filters,
                page=int_param(query["page"], "page", minimum=1) if query["page"] else 1,
                page_size=PAGE_SIZE,
                form=form or {"priority": "routine"},
                error=error,
            ),
        )

    def order_page(request, order, status=200, error=None, form=None):
        described = describe(order)
        audit.record_request("resource_read", request, study_uid=described["study_instance_uid"])
        return render(
            "order.html",
            request,
            status,
            **context(
                request,
                order=described,
                form=form or described,
                error=error,
                editable=order.status in EDITABLE,
                cancellable=order.status in CANCELLABLE,
            ),
        )

    @router.route("GET", "/pacs/orders")
    @page
    def show_orders(request):
        return list_page(request)

    @router.route("POST", "/pacs/orders")
    @page
    def create_order(request):
        values = fields_of(checked_form(request))
        try:
            order = orders.create(values, request.principal)
        except HttpError as error:
            return list_page(request, error.status, error.message, values)
        return Response.redirect(f"/pacs/orders/{order.id}")

    @router.route("GET", "/pacs/orders/{id}")
    @page
    def show_order(request, id):
        return order_page(request, orders.get(id))

    @router.route("POST", "/pacs/orders/{id}")
    @page
    def edit_order(request, id):
        order = orders.get(id)
        values = fields_of(checked_form(request), order)
        try:
            orders.update(id, values, request.principal)
        except HttpError as error:
            return order_page(request, order, error.status, error.message, dict(describe(order), **values))
        return Response.redirect(f"/pacs/orders/{id}")

    @router.route("POST", "/pacs/orders/{id}/cancel")
    @page
    def cancel_order(request, id):
        order = orders.get(id)
        reason = checked_form(request).get("reason", "").strip()[:1024]
        try:
            orders.cancel(id, request.principal, reason)
        except HttpError as error:
            return order_page(request, order, error.status, error.message)
        return Response.redirect(f"/pacs/orders/{id}")
