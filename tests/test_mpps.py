"""The MPPS SCP and the whole modality round: a scripted modality (pynetdicom)
picks its patient from our worklist, reports the procedure IN PROGRESS,
stores its images, reports it COMPLETED, and the study shows up linked to its
order and `arrived`. Then every way an MPPS can be wrong."""

import datetime
import socket
import time

import dicomgen
import pytest
from pacs_server import PacsServer, free_port, utc_of_local
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid
from pynetdicom import AE
from pynetdicom.sop_class import (
    CTImageStorage,
    ModalityPerformedProcedureStep,
    ModalityWorklistInformationFind,
    Verification,
)

from plugin.mpps.service import NODES_TTL, KnownNodes

STATION = "CT_SCANNER1"
MPPS_AET = "PACS_MPPS"
TODAY = datetime.date.today()
NOT_AUTHORIZED = 0x0124  # PS3.7 C.4, "Refused: Not authorized"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    mpps_port = free_port()
    pacs = PacsServer(
        tmp_path_factory.mktemp("mpps") / "pacs", overrides={"Pacs": {"MppsPort": mpps_port, "MppsBind": "127.0.0.1"}}
    ).start()
    pacs.mpps_port = mpps_port
    pacs.add_node("scanner", STATION, 104, allow_find_worklist=True)  # a known node: it may report
    yield pacs
    pacs.stop()


def schedule(server, **changes):
    body = {
        "patient_id": "MP-" + generate_uid()[-6:],
        "patient_name": "Scan^Sam",
        "patient_sex": "M",
        "patient_birth_date": "1966-06-06",
        "modality": "CT",
        "scheduled_station_aet": STATION,
        "scheduled_at": f"{TODAY.isoformat()}T10:00",
        "procedure": "CT THORAX",
        "priority": "urgent",
        "referring_physician": "Ref^Rita",
    }
    answer = server.post("/pacs/api/orders", json=dict(body, **changes))
    assert answer.status_code == 201, answer.text
    return answer.json()


class Modality:
    """A scanner as pynetdicom plays it: one association per task, as modalities do."""

    def __init__(self, server, aet=STATION):
        self.server = server
        self.ae = AE(ae_title=aet)
        for context in (ModalityWorklistInformationFind, ModalityPerformedProcedureStep, CTImageStorage, Verification):
            self.ae.add_requested_context(context)

    def _associate(self, port, aet):
        assoc = self.ae.associate("127.0.0.1", port, ae_title=aet)
        assert assoc.is_established, f"association to {aet} refused"
        return assoc

    def worklist(self, patient_id=""):
        query = Dataset()
        query.SpecificCharacterSet = "ISO_IR 192"
        for keyword in (
            "PatientName",
            "PatientBirthDate",
            "PatientSex",
            "AccessionNumber",
            "StudyInstanceUID",
            "RequestedProcedureID",
            "RequestedProcedureDescription",
            "ReferringPhysicianName",
        ):
            setattr(query, keyword, "")
        query.PatientID = patient_id
        step = Dataset()
        step.ScheduledStationAETitle = self.ae.ae_title
        step.ScheduledProcedureStepStartDate = TODAY.strftime("%Y%m%d")
        for keyword in (
            "Modality",
            "ScheduledProcedureStepID",
            "ScheduledProcedureStepDescription",
            "ScheduledProcedureStepStartTime",
            "ScheduledProcedureStepStatus",
        ):
            setattr(step, keyword, "")
        query.ScheduledProcedureStepSequence = [step]
        assoc = self._associate(self.server.dicom_port, self.server.aet)
        try:
            found = [
                identifier
                for status, identifier in assoc.send_c_find(query, ModalityWorklistInformationFind)
                if status and status.Status in (0xFF00, 0xFF01)
            ]
        finally:
            assoc.release()
        return found

    def n_create(self, attributes, uid=None):
        assoc = self._associate(self.server.mpps_port, MPPS_AET)
        try:
            status, answer = assoc.send_n_create(attributes, ModalityPerformedProcedureStep, uid)
        finally:
            assoc.release()
        return status.Status, answer

    def n_set(self, uid, modifications):
        assoc = self._associate(self.server.mpps_port, MPPS_AET)
        try:
            status, answer = assoc.send_n_set(modifications, ModalityPerformedProcedureStep, uid)
        finally:
            assoc.release()
        return status.Status

    def store(self, datasets):
        assoc = self._associate(self.server.dicom_port, self.server.aet)
        try:
            return [assoc.send_c_store(ds).Status for ds in datasets]
        finally:
            assoc.release()


def in_progress(item, series_uid=None):
    """An MPPS N-CREATE for the worklist item a modality picked."""
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 192"
    for keyword in ("PatientName", "PatientID", "PatientBirthDate", "PatientSex"):
        setattr(ds, keyword, item.get(keyword, ""))
    step = item.ScheduledProcedureStepSequence[0] if "ScheduledProcedureStepSequence" in item else Dataset()
    scheduled = Dataset()
    scheduled.StudyInstanceUID = item.get("StudyInstanceUID", "")
    scheduled.AccessionNumber = item.get("AccessionNumber", "")
    scheduled.RequestedProcedureID = item.get("RequestedProcedureID", "")
    scheduled.ScheduledProcedureStepID = step.get("ScheduledProcedureStepID", "")
    scheduled.ScheduledProcedureStepDescription = step.get("ScheduledProcedureStepDescription", "")
    scheduled.ReferencedStudySequence = []
    ds.ScheduledStepAttributesSequence = [scheduled]
    ds.Modality = "CT"
    ds.PerformedStationAETitle = STATION
    ds.PerformedProcedureStepID = "PPS" + generate_uid()[-6:]
    ds.PerformedProcedureStepStartDate = TODAY.strftime("%Y%m%d")
    ds.PerformedProcedureStepStartTime = "100500"
    ds.PerformedProcedureStepEndDate = ""
    ds.PerformedProcedureStepEndTime = ""
    ds.PerformedProcedureStepStatus = "IN PROGRESS"
    ds.PerformedProcedureStepDescription = step.get("ScheduledProcedureStepDescription", "")
    ds.PerformedSeriesSequence = []
    return ds


def final(status, series_uid="", images=0):
    """An MPPS N-SET that ends the step."""
    ds = Dataset()
    ds.PerformedProcedureStepStatus = status
    ds.PerformedProcedureStepEndDate = TODAY.strftime("%Y%m%d")
    ds.PerformedProcedureStepEndTime = "102000"
    if series_uid:
        series = Dataset()
        series.SeriesInstanceUID = series_uid
        series.SeriesDescription = "THORAX 1mm"
        series.ProtocolName = "CHEST"
        series.PerformingPhysicianName = ""
        series.OperatorsName = "Tech^Tom"
        series.RetrieveAETitle = ""
        series.ReferencedImageSequence = []
        for _ in range(images):
            image = Dataset()
            image.ReferencedSOPClassUID = CTImageStorage
            image.ReferencedSOPInstanceUID = generate_uid()
            series.ReferencedImageSequence.append(image)
        ds.PerformedSeriesSequence = [series]
    return ds


def order_state(server, order_id):
    return server.get(f"/pacs/api/orders/{order_id}").json()


def test_a_modality_picks_its_patient_reports_stores_and_the_study_arrives_linked(server, tmp_path):
    order = schedule(server)
    schedule(server, scheduled_station_aet="OTHER_ROOM")  # another room's work stays off this list
    modality = Modality(server)

    items = modality.worklist()
    mine = [i for i in items if i.PatientID == order["patient_id"]]
    assert len(mine) == 1 and all(i.ScheduledProcedureStepSequence[0].ScheduledStationAETitle == STATION for i in items)
    item = mine[0]
    assert (item.AccessionNumber, item.StudyInstanceUID, str(item.ReferringPhysicianName)) == (
        order["accession_number"],
        order["study_instance_uid"],
        "Ref^Rita",
    )

    uid = generate_uid()
    status, answer = modality.n_create(in_progress(item), uid)
    assert status == 0x0000
    assert order_state(server, order["id"])["status"] == "in_progress"

    spec = dicomgen.StudySpec(
        patient_name=str(item.PatientName),
        patient_id=item.PatientID,
        accession=item.AccessionNumber,
        study_uid=item.StudyInstanceUID,
        referring_physician="",
    )
    images = dicomgen.ct_series(spec, slices=3)
    assert modality.store(images) == [0, 0, 0]

    assert modality.n_set(uid, final("COMPLETED", images[0].SeriesInstanceUID, images=3)) == 0x0000
    server.wait_for(lambda: order_state(server, order["id"])["status"] == "arrived", what="order arrived")
    state = order_state(server, order["id"])
    assert state["study"] == {
        "study_instance_uid": order["study_instance_uid"],
        "status": "arrived",
        "has_images": True,
        "instance_count": 3,
    }
    [step] = state["performed_steps"]
    assert (step["sop_instance_uid"], step["status"], step["calling_aet"]) == (uid, "COMPLETED", STATION)
    assert step["performed_series"] == [
        {
            "series_instance_uid": images[0].SeriesInstanceUID,
            "description": "THORAX 1mm",
            "protocol": "CHEST",
            "performing_physician": "",
            "operator": "Tech^Tom",
            "images": 3,
        }
    ]
    assert step["started_at"] == utc_of_local(TODAY.isoformat() + "T10:05")  # sent as the clinic's wall clock
    row = server.get(f"/pacs/api/studies/{order['study_instance_uid']}").json()
    assert (row["status"], row["priority"], row["referring_physician"], row["instance_count"]) == (
        "arrived",
        "urgent",
        "Ref^Rita",
        3,
    )
    assert modality.worklist(order["patient_id"]) == []  # done: off the worklist


def test_completed_before_any_image(server):
    order = schedule(server)
    modality = Modality(server)
    [item] = modality.worklist(order["patient_id"])
    uid = generate_uid()
    assert modality.n_create(in_progress(item), uid)[0] == 0
    assert [
        i.ScheduledProcedureStepSequence[0].ScheduledProcedureStepStatus for i in modality.worklist(order["patient_id"])
    ] == ["STARTED"]  # still there, being acquired
    assert modality.n_set(uid, final("COMPLETED")) == 0
    assert order_state(server, order["id"])["status"] == "completed"


def test_discontinued(server):
    order = schedule(server)
    modality = Modality(server)
    [item] = modality.worklist(order["patient_id"])
    uid = generate_uid()
    assert modality.n_create(in_progress(item), uid)[0] == 0
    description = Dataset()
    description.PerformedProcedureStepDescription = "CT THORAX, LOW DOSE"
    assert modality.n_set(uid, description) == 0  # still IN PROGRESS: an update of other attributes
    assert order_state(server, order["id"])["status"] == "in_progress"
    assert modality.n_set(uid, final("DISCONTINUED")) == 0
    state = order_state(server, order["id"])
    assert state["status"] == "discontinued" and state["performed_steps"][0]["status"] == "DISCONTINUED"


def test_the_scp_chooses_the_instance_uid_when_the_modality_does_not(server):
    order = schedule(server)
    modality = Modality(server)
    [item] = modality.worklist(order["patient_id"])
    status, _ = modality.n_create(in_progress(item))
    assert status == 0
    [step] = order_state(server, order["id"])["performed_steps"]
    assert step["sop_instance_uid"] and step["status"] == "IN PROGRESS"


def test_an_unscheduled_procedure_is_kept_and_can_be_completed(server):
    modality = Modality(server)
    unscheduled = Dataset()
    unscheduled.PatientName, unscheduled.PatientID = "Walk^In", "WALKIN-1"
    unscheduled.StudyInstanceUID, unscheduled.AccessionNumber = generate_uid(), ""
    uid = generate_uid()
    assert modality.n_create(in_progress(unscheduled), uid)[0] == 0
    assert modality.n_set(uid, final("COMPLETED")) == 0
    assert "order=unscheduled" in server.log_text()


# --- bad input: the right DIMSE status for each -----------------------------------------------


def started(server):
    modality = Modality(server)
    [item] = modality.worklist(schedule(server)["patient_id"])
    uid = generate_uid()
    assert modality.n_create(in_progress(item), uid)[0] == 0
    return modality, item, uid


def test_n_set_for_an_unknown_instance_is_no_such_instance(server):
    assert Modality(server).n_set(generate_uid(), final("COMPLETED")) == 0x0112


@pytest.mark.parametrize("ending", ["COMPLETED", "DISCONTINUED"])
def test_n_set_after_the_end_may_no_longer_update(server, ending):
    modality, _, uid = started(server)
    assert modality.n_set(uid, final(ending)) == 0
    assert modality.n_set(uid, final("COMPLETED")) == 0x0110
    assert modality.n_set(uid, final("IN PROGRESS")) == 0x0110


@pytest.mark.parametrize("status", ["FINISHED", "completed", "SCHEDULED"])
def test_n_set_with_a_bad_status_is_an_invalid_value(server, status):
    modality, _, uid = started(server)
    assert modality.n_set(uid, final(status)) == 0x0106
    assert modality.n_set(uid, final("COMPLETED")) == 0  # the step is still open


def test_n_create_must_start_in_progress_once(server):
    modality, item, uid = started(server)
    assert modality.n_create(in_progress(item), uid)[0] == 0x0111  # duplicate instance
    completed = in_progress(item)
    completed.PerformedProcedureStepStatus = "COMPLETED"
    assert modality.n_create(completed, generate_uid())[0] == 0x0106
    missing = in_progress(item)
    del missing.PerformedProcedureStepStatus
    assert modality.n_create(missing, generate_uid())[0] == 0x0120
    empty = in_progress(item)
    empty.PerformedProcedureStepStatus = ""
    assert modality.n_create(empty, generate_uid())[0] == 0x0121


# --- only known nodes report: those allowed the worklist --------------------------------------


def test_an_unknown_calling_ae_is_not_authorized_and_changes_nothing(server):
    order = schedule(server)
    scanner, intruder = Modality(server), Modality(server, aet="INTRUDER")
    [item] = scanner.worklist(order["patient_id"])
    uid = generate_uid()
    assert intruder.n_create(in_progress(item), uid)[0] == NOT_AUTHORIZED
    state = order_state(server, order["id"])
    assert (state["status"], state["performed_steps"]) == ("scheduled", [])

    assert scanner.n_create(in_progress(item), uid)[0] == 0  # the intruder's N-CREATE made no step
    assert intruder.n_set(uid, final("DISCONTINUED")) == NOT_AUTHORIZED
    state = order_state(server, order["id"])
    assert state["status"] == "in_progress"
    assert [s["status"] for s in state["performed_steps"]] == ["IN PROGRESS"]
    assert "event=mpps_refused calling_aet=INTRUDER reason=unknown node" in server.log_text()
    assert scanner.n_set(uid, final("COMPLETED")) == 0


def test_a_node_reports_once_allowed_the_worklist_and_not_before(server):
    server.add_node("ultrasound2", "US_ROOM2", 104, allow_find_worklist=False)
    try:
        order = schedule(server)
        [item] = Modality(server).worklist(order["patient_id"])
        ultrasound, uid = Modality(server, aet="US_ROOM2"), generate_uid()
        assert ultrasound.n_create(in_progress(item), uid)[0] == NOT_AUTHORIZED
        assert order_state(server, order["id"])["status"] == "scheduled"

        server.add_node("ultrasound2", "US_ROOM2", 104, allow_find_worklist=True)
        allowed, deadline = time.monotonic(), time.monotonic() + NODES_TTL + 10
        while (
            status := ultrasound.n_create(in_progress(item), uid)[0]
        ) == NOT_AUTHORIZED and time.monotonic() < deadline:
            time.sleep(0.5)
        assert status == 0, f"still 0x{status:04X} {time.monotonic() - allowed:.0f} s after the node was allowed"
        assert time.monotonic() - allowed < NODES_TTL + 2
        assert ultrasound.n_set(uid, final("COMPLETED")) == 0
        assert order_state(server, order["id"])["status"] == "completed"
    finally:
        server.delete("/pacs/api/nodes/ultrasound2")


class FakeOrthanc:
    """Orthanc's node list as KnownNodes reads it (the logic in isolation)."""

    def __init__(self, nodes):
        self.nodes, self.calls = nodes, 0

    def rest(self, method, path, timeout):
        assert (method, path) == ("GET", "/modalities?expand") and timeout <= 10
        self.calls += 1
        return (200, self.nodes) if self.nodes is not None else (500, None)


def test_known_nodes_compare_ae_titles_as_orthanc_does_and_cache_briefly():
    orthanc = FakeOrthanc(
        {"ct": {"AET": "CT_ROOM1 ", "AllowFindWorklist": True}, "mr": {"AET": "MR_ROOM1", "AllowFindWorklist": False}}
    )
    nodes = KnownNodes(orthanc, strict=False, ttl=60)
    assert nodes.allows("CT_ROOM1") and nodes.allows("ct_room1") and not nodes.allows("MR_ROOM1")
    assert not nodes.allows("") and not nodes.allows("CT_ROOM")
    assert orthanc.calls == 1  # one load for all those questions
    strict = KnownNodes(orthanc, strict=True, ttl=0)
    assert strict.allows("CT_ROOM1") and not strict.allows("ct_room1")
    orthanc.nodes = None  # Orthanc fails: an error, never a yes
    with pytest.raises(RuntimeError):
        KnownNodes(orthanc).allows("CT_ROOM1")


def test_the_mpps_listener_answers_only_its_own_ae_title(server):
    ae = AE(ae_title=STATION)
    ae.add_requested_context(ModalityPerformedProcedureStep)
    assoc = ae.associate("127.0.0.1", server.mpps_port, ae_title="NOT_MPPS")
    assert not assoc.is_established and assoc.is_rejected


def test_the_listener_starts_and_stops_with_orthanc(tmp_path):
    port = free_port()
    pacs = PacsServer(tmp_path / "pacs", overrides={"Pacs": {"MppsPort": port, "MppsBind": "127.0.0.1"}}).start()
    try:
        pacs.wait_for(lambda: "event=mpps_listening" in pacs.log_text(), what="MPPS listening")
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    finally:
        pacs.stop()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()


# --- the same round on PostgreSQL (scale-out) --------------------------------------------------


def test_orders_worklist_and_mpps_on_postgresql(pg_database, tmp_path):
    mpps_port = free_port()
    pacs = PacsServer(
        tmp_path / "pacs",
        environ={"PACS_DATABASE_URL": pg_database},
        overrides={"Pacs": {"MppsPort": mpps_port, "MppsBind": "127.0.0.1"}},
    ).start()
    pacs.mpps_port = mpps_port
    try:
        pacs.add_node("scanner", STATION, 104, allow_find_worklist=True)  # a known node: it may report
        order = schedule(pacs, patient_name="Straße^Eva")
        modality = Modality(pacs)
        [item] = modality.worklist(order["patient_id"])
        assert str(item.PatientName) == "Straße^Eva"
        uid = generate_uid()
        assert modality.n_create(in_progress(item), uid)[0] == 0
        assert modality.n_set(uid, final("COMPLETED")) == 0
        assert modality.n_set(uid, final("COMPLETED")) == 0x0110
        assert order_state(pacs, order["id"])["status"] == "completed"
        assert schedule_twice_conflicts(pacs, order["accession_number"])
    finally:
        pacs.stop()


def schedule_twice_conflicts(server, accession):
    return (
        server.post(
            "/pacs/api/orders",
            json={
                "patient_id": "X",
                "patient_name": "X^Y",
                "modality": "CT",
                "scheduled_at": "2026-11-23T10:00",
                "procedure": "CT",
                "accession_number": accession,
            },
        ).status_code
        == 409
    )
