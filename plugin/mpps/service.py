"""Modality Performed Procedure Step SCP (PS3.4 F.7): modalities report that
a procedure started (N-CREATE, IN PROGRESS) and how it ended (N-SET,
COMPLETED or DISCONTINUED, with the series they made).

Orthanc 1.10 has no MPPS, so `MppsServer` is a pynetdicom listener of its
own (port, AE title and bind address from the settings), started and
stopped with Orthanc. `PerformedSteps` is the part without the network: the
state of each step and what it does to its order:

    order scheduled --N-CREATE IN PROGRESS--> in_progress
    in_progress --N-SET COMPLETED--> completed, --DISCONTINUED--> discontinued

(images arriving make any of them `arrived`: plugin/studyindex). A step
that names no known order (an unscheduled procedure) is kept all the same,
so the modality's later N-SETs find it.

Only known nodes report: `KnownNodes` is the list Orthanc checks for the
worklist C-FIND (its DICOM nodes with AllowFindWorklist), and `MppsServer`
refuses any other calling AE with 0x0124 before `PerformedSteps` is asked.
Its associations follow Orthanc's own DICOM server settings: at most
DicomThreadsCount at once, each aborted after DicomScpTimeout idle seconds.
"""

import datetime
import json
import logging
import re

from peewee import IntegrityError
from pydicom.uid import generate_uid
from pynetdicom import AE, ALL_TRANSFER_SYNTAXES, evt

# pynetdicom creates its SOP classes at import time: its stubs do not list them.
from pynetdicom.sop_class import ModalityPerformedProcedureStep, Verification  # type: ignore[attr-defined]

from plugin import db
from plugin.auth.refreshing import Refreshing
from plugin.db import database, utcnow
from plugin.events import Events
from plugin.orders.models import Order, PerformedStep

LOGGER = logging.getLogger(__name__)

IN_PROGRESS, COMPLETED, DISCONTINUED = "IN PROGRESS", "COMPLETED", "DISCONTINUED"
STEP_STATUSES = (IN_PROGRESS, COMPLETED, DISCONTINUED)
FINAL = (COMPLETED, DISCONTINUED)
ORDER_STATUS_AFTER = {IN_PROGRESS: "in_progress", COMPLETED: "completed", DISCONTINUED: "discontinued"}
# What each step status may move an order from (arrived and cancelled orders keep their status).
ORDER_MOVES_FROM = {
    IN_PROGRESS: ("scheduled",),
    COMPLETED: ("scheduled", "in_progress"),
    DISCONTINUED: ("scheduled", "in_progress"),
}

# DIMSE statuses (PS3.7 C.4.1-C.4.2, PS3.4 F.7.2)
SUCCESS = 0x0000
INVALID_ATTRIBUTE_VALUE = 0x0106
PROCESSING_FAILURE = 0x0110  # also: "Performed Procedure Step Object may no longer be updated"
DUPLICATE_SOP_INSTANCE = 0x0111
NO_SUCH_SOP_INSTANCE = 0x0112
MISSING_ATTRIBUTE = 0x0120
MISSING_ATTRIBUTE_VALUE = 0x0121
NOT_AUTHORIZED = 0x0124  # PS3.7 C.4: "Refused: Not authorized"

NODES_TTL = 5  # seconds: a node added in the UI may report procedures within this
NODES_TIMEOUT = 5  # seconds one reload of the node list may wait on Orthanc


class PerformedSteps:
    def __init__(self, clock, events=None):
        self._clock = clock  # the clinic's: a step's start and end are kept in its zone
        self._events = events if events is not None else Events()  # order.changed, when a step moves its order

    @db.unit_of_work
    def create(self, sop_instance_uid, attributes, calling_aet=""):
        """N-CREATE: a new step, IN PROGRESS. Returns a DIMSE status."""
        status = _text(attributes, "PerformedProcedureStepStatus")
        if "PerformedProcedureStepStatus" not in attributes:
            return self._refuse(MISSING_ATTRIBUTE, sop_instance_uid, "no PerformedProcedureStepStatus")
        if not status:
            return self._refuse(MISSING_ATTRIBUTE_VALUE, sop_instance_uid, "empty PerformedProcedureStepStatus")
        if status != IN_PROGRESS:
            return self._refuse(INVALID_ATTRIBUTE_VALUE, sop_instance_uid, f"a step starts IN PROGRESS, not {status!r}")
        now = utcnow()
        try:
            order = self._create(sop_instance_uid, attributes, calling_aet, now, self._clock, self._events)
        except IntegrityError:  # the same N-CREATE on two associations at once
            return self._refuse(DUPLICATE_SOP_INSTANCE, sop_instance_uid, "exists already")
        if order is DUPLICATE_SOP_INSTANCE:
            return self._refuse(DUPLICATE_SOP_INSTANCE, sop_instance_uid, "exists already")
        LOGGER.info(
            "event=mpps_created uid=%s aet=%s order=%s",
            sop_instance_uid,
            calling_aet,
            order.id if order else "unscheduled",
        )
        return SUCCESS

    @staticmethod
    def _create(sop_instance_uid, attributes, calling_aet, now, clock, events):
        """Insert the step and move its order; the order (or None), or
        DUPLICATE_SOP_INSTANCE when the step exists already."""
        with database.atomic():
            if PerformedStep.select().where(PerformedStep.sop_instance_uid == sop_instance_uid).exists():
                return DUPLICATE_SOP_INSTANCE
            order = _order_named_by(attributes)
            PerformedStep.create(
                sop_instance_uid=sop_instance_uid,
                order=order,
                status=IN_PROGRESS,
                calling_aet=calling_aet,
                study_instance_uid=_scheduled_value(attributes, "StudyInstanceUID"),
                patient_id=_text(attributes, "PatientID"),
                patient_name=_text(attributes, "PatientName"),
                started_at=_moment(attributes, "PerformedProcedureStepStart", clock),
                ended_at="",
                performed_series=json.dumps(performed_series(attributes)),
                created_at=now,
                updated_at=now,
            )
            if order is not None:
                _move_order(order, IN_PROGRESS, now, events)
            return order

    @db.unit_of_work
    def update(self, sop_instance_uid, modifications):
        """N-SET: new attributes, perhaps the final status. Returns a DIMSE status."""
        now = utcnow()
        with database.atomic():
            step = PerformedStep.get_or_none(PerformedStep.sop_instance_uid == sop_instance_uid)
            if step is None:
                return self._refuse(NO_SUCH_SOP_INSTANCE, sop_instance_uid, "unknown step")
            if step.status in FINAL:
                return self._refuse(
                    PROCESSING_FAILURE, sop_instance_uid, f"the step is {step.status} and may no longer be updated"
                )
            status = _text(modifications, "PerformedProcedureStepStatus") or step.status
            if status not in STEP_STATUSES:
                return self._refuse(INVALID_ATTRIBUTE_VALUE, sop_instance_uid, f"unknown status {status!r}")
            changes = {"status": status, "updated_at": now}
            if "PerformedSeriesSequence" in modifications:
                changes["performed_series"] = json.dumps(performed_series(modifications))
            ended = _moment(modifications, "PerformedProcedureStepEnd", self._clock)
            if ended:
                changes["ended_at"] = ended
            updated = (
                PerformedStep.update(**changes)
                .where(PerformedStep.id == step.id, PerformedStep.status.not_in(FINAL))
                .execute()
            )
            if not updated:
                return self._refuse(PROCESSING_FAILURE, sop_instance_uid, "ended meanwhile")
            if step.order_id is not None and status in FINAL:
                _move_order(Order.get_by_id(step.order_id), status, now, self._events)
        LOGGER.info(
            "event=mpps_updated uid=%s status=%s order=%s", sop_instance_uid, status, step.order_id or "unscheduled"
        )
        return SUCCESS

    @staticmethod
    def _refuse(status, sop_instance_uid, reason):
        LOGGER.warning("event=mpps_refused uid=%s status=0x%04X reason=%r", sop_instance_uid, status, reason)
        return status


def _move_order(order, step_status, now, events):
    """Move the order as the step says, if its status allows; a move is published
    (order.changed) once the caller's transaction has committed it."""
    status = ORDER_STATUS_AFTER[step_status]
    moved = (
        Order.update(status=status, updated_at=now)
        .where(Order.id == order.id, Order.status.in_(ORDER_MOVES_FROM[step_status]))
        .execute()
    )
    if moved:
        database.after_commit(
            lambda: events.publish(
                "order.changed", order_id=order.id, accession_number=order.accession_number, status=status
            )
        )


def _order_named_by(attributes):
    """The order the step's Scheduled Step Attributes name: by Study Instance
    UID, else by accession number."""
    for name, column in (("StudyInstanceUID", Order.study_instance_uid), ("AccessionNumber", Order.accession_number)):
        value = _scheduled_value(attributes, name)
        if value:
            order = Order.get_or_none(column == value)
            if order is not None:
                return order
    return None


def _scheduled_value(attributes, keyword):
    for item in attributes.get("ScheduledStepAttributesSequence", None) or []:
        value = _text(item, keyword)
        if value:
            return value
    return ""


def performed_series(attributes):
    """The Performed Series Sequence as plain data."""
    series = []
    for item in attributes.get("PerformedSeriesSequence", None) or []:
        images = item.get("ReferencedImageSequence", None) or []
        series.append(
            {
                "series_instance_uid": _text(item, "SeriesInstanceUID"),
                "description": _text(item, "SeriesDescription"),
                "protocol": _text(item, "ProtocolName"),
                "performing_physician": _text(item, "PerformingPhysicianName"),
                "operator": _text(item, "OperatorsName"),
                "images": len(images),
            }
        )
    return series


def _text(dataset, keyword):
    value = dataset.get(keyword, None)
    value = getattr(value, "value", value)
    return "" if value is None else str(value).strip()


def _moment(attributes, prefix, clock):
    """A step's start or end as DICOM DA+TM in the clinic's zone. DICOM dates and times
    are the sender's local time, taken as the clinic's, unless the message gives its
    Timezone Offset From UTC: then they are converted to the clinic's zone."""
    date, time = _text(attributes, prefix + "Date"), _text(attributes, prefix + "Time")
    if not date:
        return ""
    offset = _text(attributes, "TimezoneOffsetFromUTC")
    if not (
        re.fullmatch(r"[+-]\d{4}", offset)
        and re.fullmatch(r"\d{8}", date)
        and re.fullmatch(r"\d{2}(\d{2}(\d{2}(\.\d{1,6})?)?)?", time or "00")
    ):
        return f"{date}{time}"
    digits = (time or "").split(".")[0].ljust(6, "0")
    sign = -1 if offset[0] == "-" else 1
    try:
        zone = datetime.timezone(sign * datetime.timedelta(hours=int(offset[1:3]), minutes=int(offset[3:5])))
        moment = datetime.datetime(
            int(date[:4]),
            int(date[4:6]),
            int(date[6:8]),
            int(digits[:2]),
            int(digits[2:4]),
            int(digits[4:6]),
            tzinfo=zone,
        )
        return clock.local(moment).strftime("%Y%m%d%H%M%S")
    except (ValueError, OverflowError):  # 20261332, 256000, +2500: kept as sent
        return f"{date}{time}"


class KnownNodes:
    """The calling AE titles that may report procedures: Orthanc's DICOM nodes
    allowed the modality worklist, compared as Orthanc compares them
    (StrictAetComparison). The list is reloaded every NODES_TTL seconds by
    one thread over loopback HTTP with a timeout; the others keep the last
    list meanwhile (plugin/auth/refreshing), so no DICOM thread waits long."""

    def __init__(self, host, strict=False, ttl=NODES_TTL):
        self._host = host
        self._strict = strict
        self._titles = Refreshing(self._load, ttl)

    def allows(self, aet):
        return self._key(aet) in self._titles.get()

    def _load(self):
        status, nodes = self._host.rest("GET", "/modalities?expand", timeout=NODES_TIMEOUT)
        if status != 200 or not isinstance(nodes, dict):
            raise RuntimeError(f"Orthanc answered {status} for its DICOM nodes")
        return frozenset(
            self._key(node.get("AET", ""))
            for node in nodes.values()
            if isinstance(node, dict) and node.get("AllowFindWorklist")
        )

    def _key(self, aet):
        aet = str(aet).strip()
        return aet if self._strict else aet.upper()


class MppsServer:
    """The MPPS SCP on the network: one pynetdicom listener."""

    def __init__(self, steps, nodes, settings):
        self._steps = steps
        self._nodes = nodes
        self.aet, self.port, self.bind = settings.mpps_aet, settings.mpps_port, settings.mpps_bind
        self._timeout = settings.dicom_scp_timeout or None  # 0: none, as for Orthanc
        self._max_associations = settings.dicom_threads
        self._server = None

    def start(self):
        """Listen; a port already taken is logged, and the PACS runs on without MPPS."""
        if self._server is not None or not self.port:
            return
        ae = AE(ae_title=self.aet)
        ae.require_called_aet = True
        ae.maximum_associations = self._max_associations
        ae.network_timeout = self._timeout  # idle this long: aborted
        ae.acse_timeout = ae.dimse_timeout = self._timeout
        ae.add_supported_context(ModalityPerformedProcedureStep, ALL_TRANSFER_SYNTAXES)
        ae.add_supported_context(Verification)
        handlers: list = [(evt.EVT_N_CREATE, self._on_create), (evt.EVT_N_SET, self._on_set)]
        try:
            self._server = ae.start_server((self.bind, self.port), block=False, evt_handlers=handlers)
        except OSError as error:
            LOGGER.error("event=mpps_listen_failed bind=%s port=%d error=%s", self.bind, self.port, error)
            return
        LOGGER.info(
            "event=mpps_listening aet=%s bind=%s port=%d max_associations=%d timeout=%s",
            self.aet,
            self.bind,
            self.port,
            self._max_associations,
            self._timeout,
        )

    def stop(self, timeout=5.0):
        """Stop listening, abort the associations still open and wait for their threads
        (each ends within about 0.1 s of its abort)."""
        if self._server is None:
            return
        server, self._server = self._server, None
        server.shutdown()  # no new association; the acceptor thread has ended
        associations = server.active_associations
        for association in associations:
            association.abort()
        for association in associations:
            association.join(timeout)
        LOGGER.info("event=mpps_stopped aborted=%d", len(associations))

    def _on_create(self, event):
        refusal = self._refusal(event)
        if refusal:
            return refusal, None
        given = event.request.AffectedSOPInstanceUID
        uid = given or generate_uid()
        attributes = event.attribute_list
        status = self._steps.create(uid, attributes, event.assoc.requestor.ae_title)
        if status != SUCCESS:
            return status, None
        if not given:
            attributes.AffectedSOPInstanceUID = uid  # pynetdicom moves it into the response
        return status, attributes

    def _on_set(self, event):
        refusal = self._refusal(event)
        if refusal:
            return refusal, None
        modifications = event.modification_list
        status = self._steps.update(event.request.RequestedSOPInstanceUID, modifications)
        return status, (modifications if status == SUCCESS else None)

    def _refusal(self, event):
        """None for a known node; else the DIMSE status that refuses the request."""
        calling_aet = event.assoc.requestor.ae_title
        try:
            if self._nodes.allows(calling_aet):
                return None
        except Exception as error:  # no node list from Orthanc: a failure to process, not a refusal
            LOGGER.error("event=mpps_refused calling_aet=%s reason=node list unavailable error=%s", calling_aet, error)
            return PROCESSING_FAILURE
        LOGGER.warning("event=mpps_refused calling_aet=%s reason=unknown node", calling_aet)
        return NOT_AUTHORIZED
