"""Orders: scheduled procedures that modalities find on the worklist.

Each order owns a `study` row (status `scheduled`, no images) so that it is on
the reading worklist from the start; the images take that row over when they
arrive (plugin/studyindex.store calls `link_arrival`). The row mirrors the
order's patient, accession, date, procedure, referring physician and
priority while the order can still be edited.
"""

import collections
import datetime
import json
import logging
import secrets
from typing import Annotated

from peewee import IntegrityError
from pydantic import Field

from plugin.db import database, utcnow
from plugin.dicomnames import pn_key, search_text
from plugin.errors import Conflict, Invalid, NotFound, Unavailable
from plugin.events import Events
from plugin.http import path_id
from plugin.listquery import Choices, Codes, Date, ListQuery, Text, Whole
from plugin.models import Patient, Study, save_search_terms
from plugin.orders import fields
from plugin.orders.models import OPEN_STATUSES, ORDER_STATUSES, Order, PerformedStep

LOGGER = logging.getLogger(__name__)

EDITABLE = ("scheduled",)
CANCELLABLE = ("scheduled", "in_progress", "discontinued")
MAX_PAGE_SIZE = 200
MAX_PAGE = 1_000_000  # OFFSET = page x page size must stay a database integer
ACCESSION_ATTEMPTS = 8
PATIENT_FIELDS = ("patient_name", "patient_birth_date", "patient_sex")


# mwl.Query.prefilter's operators as peewee expressions.
_PREFILTER_OPERATORS = {
    "=": lambda field, value: field == value,
    ">=": lambda field, value: field >= value,
    "<=": lambda field, value: field <= value,
    "contains": lambda field, value: field.contains(value),
    "prefix": lambda field, value: field.startswith(value),
}


class OrderSearch(ListQuery):
    """The filters and page of the orders list."""

    status: Annotated[list, Choices(ORDER_STATUSES)] = Field(
        [], description="comma list of " + ", ".join(ORDER_STATUSES)
    )
    modality: Annotated[list, Codes()] = Field([], description="comma list of modality codes")
    date_from: Annotated[datetime.date | None, Date()] = Field(None, description="YYYY-MM-DD (scheduled date)")
    date_to: Annotated[datetime.date | None, Date()] = Field(None, description="YYYY-MM-DD")
    q: Annotated[str, Text()] = Field("", description="patient name, patient ID or accession; partial")
    page: Annotated[int, Whole(1, MAX_PAGE)] = Field(1, description="1-based page number")
    page_size: Annotated[int, Whole(1, MAX_PAGE, cap=MAX_PAGE_SIZE)] = Field(50, description=f"1-{MAX_PAGE_SIZE}")


class Orders:
    def __init__(self, audit, uid_factory, clock, events=None):
        self._audit = audit
        self._events = events if events is not None else Events()  # order.created, order.changed
        self._new_uid = uid_factory
        self._clock = clock  # the clinic's: scheduled times, birth dates, accession numbers

    # --- reading -------------------------------------------------------------

    def get(self, order_id):
        number = path_id(order_id)
        order = Order.get_or_none(Order.id == number) if number else None
        if order is None:
            raise NotFound(f"no order {order_id}")
        return order

    def search(self, query):
        """(orders, total) for an `OrderSearch`: text (q) matches name, patient ID or
        accession, case-insensitive, partial; dates are scheduled dates."""
        conditions = []
        if query.status:
            conditions.append(Order.status.in_(query.status))
        if query.modality:
            conditions.append(Order.modality.in_(query.modality))
        if query.date_from:
            conditions.append(Order.scheduled_date >= query.date_from.strftime("%Y%m%d"))
        if query.date_to:
            conditions.append(Order.scheduled_date <= query.date_to.strftime("%Y%m%d"))
        if query.q:
            conditions.append(
                Order.patient_name.contains(query.q)
                | Order.patient_id.contains(query.q)
                | Order.accession_number.contains(query.q)
            )
        selected = Order.select().where(*conditions) if conditions else Order.select()
        rows = selected.order_by(Order.scheduled_date, Order.scheduled_time, Order.id).paginate(
            query.page, query.page_size
        )
        return list(rows), selected.count()

    # --- changes from users ----------------------------------------------------

    def create(self, data, principal):
        values = fields.parse(data, True, self._clock)
        self._complete_patient(values)
        values["study_instance_uid"] = values.get("study_instance_uid") or self._new_uid()
        self._refuse_known_study(values["study_instance_uid"])
        values["accession_number"] = self._accession(values.get("accession_number", ""))
        try:
            order = self._insert(values, principal, utcnow())
        except IntegrityError:  # another request took the same number or UID meanwhile
            self._refuse_duplicates(values["accession_number"], values["study_instance_uid"])
            raise
        self._record(principal, "order_created", order)
        LOGGER.info("event=order_created id=%d by=%s", order.id, principal.username)
        self._events.publish("order.created", order_id=order.id, accession_number=order.accession_number)
        return order

    def update(self, order_id, data, principal):
        order = self.get(order_id)
        values = fields.parse(data, False, self._clock)
        if order.status not in EDITABLE:
            raise Conflict(f"an order that is {order.status} cannot be changed")
        if "study_instance_uid" in values and values["study_instance_uid"] != order.study_instance_uid:
            values["study_instance_uid"] = values["study_instance_uid"] or self._new_uid()
            self._refuse_known_study(values["study_instance_uid"])
        if values.get("accession_number") == "":
            values.pop("accession_number")
        changed = {k: v for k, v in values.items() if getattr(order, k) != v}
        if not changed:
            return order
        if "patient_name" in changed:
            changed["name_key"] = changed["patient_name"].casefold()
        now = utcnow()
        try:
            with database.atomic():
                updated = (
                    Order.update(updated_at=now, **changed)
                    .where(Order.id == order.id, Order.status.in_(EDITABLE))
                    .execute()
                )
                if not updated:
                    raise Conflict("the order changed meanwhile: it can no longer be edited")
                order = Order.get_by_id(order.id)
                self._mirror(order, now)
        except IntegrityError:
            self._refuse_duplicates(changed.get("accession_number"), changed.get("study_instance_uid"))
            raise
        self._record(principal, "order_updated", order, {"fields": sorted(changed)})
        self._changed(order)
        return order

    def cancel(self, order_id, principal, reason=""):
        order = self.get(order_id)
        if order.status == "cancelled":
            return order
        now = utcnow()
        with database.atomic():
            updated = (
                Order.update(status="cancelled", updated_at=now)
                .where(Order.id == order.id, Order.status.in_(CANCELLABLE))
                .execute()
            )
            if not updated:
                raise Conflict(f"an order that is {self.get(order_id).status} cannot be cancelled")
            (
                Study.update(status="cancelled", updated_at=now)
                .where(Study.id == order.study_id, Study.status == "scheduled", Study.orthanc_id.is_null())
                .execute()
            )
        order = Order.get_by_id(order.id)
        self._record(principal, "order_cancelled", order, {"reason": reason} if reason else None)
        self._changed(order)
        return order

    def _changed(self, order):
        self._events.publish(
            "order.changed", order_id=order.id, accession_number=order.accession_number, status=order.status
        )

    # --- the modality worklist -------------------------------------------------

    def worklist_candidates(self, prefilter):
        """Open orders narrowed by what every match of an MWL query satisfies
        (mwl.Query.prefilter): the indexes do the bulk, mwl.Query the exact DICOM
        matching. Rows as named tuples: a model instance per row cost more than
        the matching."""
        conditions = [Order.status.in_(OPEN_STATUSES)]
        for column, operator, value in prefilter:
            conditions.append(_PREFILTER_OPERATORS[operator](getattr(Order, column), value))
        return (
            Order.select()
            .where(*conditions)
            .order_by(Order.scheduled_date, Order.scheduled_time, Order.id)
            .namedtuples()
        )

    # --- helpers ----------------------------------------------------------------

    def _insert(self, values, principal, now):
        with database.atomic():
            study = Study.create(
                status="scheduled",
                orthanc_id=None,
                institution_name="",
                body_parts="",
                orthanc_last_update="",
                indexed_at=now,
                arrived_at=None,
                **study_columns(values, now),
            )
            save_search_terms(study.id, study.search_text)
            return Order.create(
                study=study,
                created_by=principal.username,
                created_at=now,
                updated_at=now,
                status="scheduled",
                **order_defaults(values),
            )

    def _mirror(self, order, now):
        """Copy what the reading worklist shows onto the order's study row (no images yet)."""
        if order.study_id is None:
            return
        columns = study_columns(model_values(order), now)
        if Study.update(**columns).where(Study.id == order.study_id, Study.orthanc_id.is_null()).execute():
            save_search_terms(order.study_id, columns["search_text"])

    @staticmethod
    def _complete_patient(values):
        """An existing patient (by patient ID, from the archive or an earlier order)
        lends the name, birth date and sex that the request leaves out."""
        missing = [name for name in PATIENT_FIELDS if not values.get(name)]
        if missing:
            known = _known_patient(values["patient_id"])
            for name in missing:
                if known.get(name):
                    values[name] = known[name]
        if not values.get("patient_name"):
            raise Invalid(f"patient_name is needed for a new patient ({values['patient_id']!r} is unknown)")

    def _accession(self, wanted):
        """The requested accession number if no order has it, else a new one: "A",
        the date and five random digits (12 characters; SH allows 16)."""
        if wanted:
            self._refuse_duplicates(wanted, None)
            return wanted
        for _ in range(ACCESSION_ATTEMPTS):
            candidate = f"A{self._clock.today():%y%m%d}{secrets.randbelow(100000):05d}"
            if not Order.select().where(Order.accession_number == candidate).exists():
                return candidate
        raise Unavailable("no free accession number today: give one")

    @staticmethod
    def _refuse_known_study(study_instance_uid):
        if Study.select().where(Study.study_instance_uid == study_instance_uid).exists():
            raise Conflict(f"a study or order with StudyInstanceUID {study_instance_uid} exists already")

    @staticmethod
    def _refuse_duplicates(accession, study_instance_uid):
        if accession and Order.select().where(Order.accession_number == accession).exists():
            raise Conflict(f"accession number {accession} is already used by another order")
        if study_instance_uid and Order.select().where(Order.study_instance_uid == study_instance_uid).exists():
            raise Conflict(f"StudyInstanceUID {study_instance_uid} is already used by another order")

    def _record(self, principal, action, order, details=None):
        self._audit.record(
            action,
            username=principal.username,
            role=principal.role,
            study_uid=order.study_instance_uid,
            details=dict(details or {}, order=order.id, accession=order.accession_number),
        )


def order_defaults(values):
    """Identifiers a modality needs that the request may leave out: the accession
    number names the requested procedure and its one step; the step describes
    the procedure."""
    values = dict(values, name_key=values.get("patient_name", "").casefold())
    for name in ("requested_procedure_id", "scheduled_procedure_step_id"):
        values[name] = values.get(name) or values["accession_number"]
    values["step_description"] = values.get("step_description") or values.get("procedure", "")
    return values


def study_columns(values, now):
    name, patient_id, accession = values.get("patient_name", ""), values["patient_id"], values["accession_number"]
    referring = values.get("referring_physician", "")
    return dict(
        study_instance_uid=values["study_instance_uid"],
        accession_number=accession,
        study_date=_date_of(values["scheduled_date"]),
        study_time=values["scheduled_time"],
        description=values.get("procedure", ""),
        referring_physician=referring,
        referring_key=pn_key(referring),
        modalities=values["modality"],
        priority=values.get("priority", "routine"),
        patient_name=name,
        patient_dicom_id=patient_id,
        patient_sex=values.get("patient_sex", ""),
        patient_birth_date=values.get("patient_birth_date"),
        search_text=search_text(name, patient_id, accession, values.get("procedure", "")),
        updated_at=now,
    )


def model_values(order):
    return {name: getattr(order, name) for name in order._meta.fields}


def _known_patient(patient_id):
    patient = Patient.select().where(Patient.patient_id == patient_id).order_by(Patient.updated_at.desc()).first()
    if patient is not None:
        return {"patient_name": patient.name, "patient_birth_date": patient.birth_date, "patient_sex": patient.sex}
    order = Order.select().where(Order.patient_id == patient_id).order_by(Order.id.desc()).first()
    return {name: getattr(order, name) for name in PATIENT_FIELDS} if order else {}


def _date_of(dicom_date):
    return datetime.date(int(dicom_date[:4]), int(dicom_date[4:6]), int(dicom_date[6:8]))


def describe(order, clock):
    """The JSON of one order; its DICOM times (the clinic's wall clock) as UTC moments."""
    return describe_all([order], clock)[0]


def describe_all(orders, clock):
    """The JSON of many orders: their steps and studies in two queries, not two per order."""
    orders = list(orders)
    steps = collections.defaultdict(list)
    for step in (
        PerformedStep.select().where(PerformedStep.order.in_([o.id for o in orders])).order_by(PerformedStep.id)
    ):
        steps[step.order_id].append(step)
    study_ids = [o.study_id for o in orders if o.study_id]
    studies = {s.id: s for s in Study.select().where(Study.id.in_(study_ids))} if study_ids else {}
    return [_describe(o, steps[o.id], studies.get(o.study_id), clock) for o in orders]


def _describe(order, steps, study, clock):
    return {
        "id": order.id,
        "accession_number": order.accession_number,
        "status": order.status,
        "priority": order.priority,
        "patient_id": order.patient_id,
        "patient_name": order.patient_name,
        "patient_birth_date": order.patient_birth_date,
        "patient_sex": order.patient_sex,
        "modality": order.modality,
        "scheduled_station_aet": order.scheduled_station_aet,
        "scheduled_at": _moment(order.scheduled_date, order.scheduled_time, clock),
        "procedure": order.procedure,
        "referring_physician": order.referring_physician,
        "study_instance_uid": order.study_instance_uid,
        "requested_procedure_id": order.requested_procedure_id,
        "scheduled_procedure_step_id": order.scheduled_procedure_step_id,
        "step_description": order.step_description,
        "requesting_physician": order.requesting_physician,
        "performing_physician": order.performing_physician,
        "station_name": order.station_name,
        "location": order.location,
        "medical_alerts": order.medical_alerts,
        "allergies": order.allergies,
        "contrast_agent": order.contrast_agent,
        "pre_medication": order.pre_medication,
        "comments": order.comments,
        "study": _linked_study(study),
        "performed_steps": [describe_step(step, clock) for step in steps],
        "created_by": order.created_by,
        "created_at": order.created_at,
        "updated_at": order.updated_at,
        "arrived_at": order.arrived_at,
    }


def describe_step(step, clock):
    """A performed step; its start and end (DICOM DA+TM as the modality sent them, in the
    clinic's zone) as UTC moments, None where the modality sent no valid date and time."""
    return {
        "sop_instance_uid": step.sop_instance_uid,
        "status": step.status,
        "calling_aet": step.calling_aet,
        "started_at": _moment(step.started_at[:8], step.started_at[8:], clock),
        "ended_at": _moment(step.ended_at[:8], step.ended_at[8:], clock),
        "performed_series": json.loads(step.performed_series or "[]"),
    }


def _linked_study(study):
    if study is None:
        return None
    return {
        "study_instance_uid": study.study_instance_uid,
        "status": study.status,
        "has_images": study.orthanc_id is not None,
        "instance_count": study.instance_count,
    }


def _moment(dicom_date, dicom_time, clock):
    """A DICOM date and time of the clinic's wall clock as the UTC moment it is, or None."""
    time = (dicom_time or "").split(".")[0].ljust(6, "0")
    try:
        wall = datetime.datetime.strptime((dicom_date or "") + time, "%Y%m%d%H%M%S")
    except ValueError:
        return None
    return clock.utc(wall)
