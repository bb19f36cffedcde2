"""A clinic on Europe/Paris, set the container's way (TZ): an order posted for
09:00+01:00, or for 08:00Z, is answered to the modality as 09:00, the clinic's
local time that the modality's own clock compares with (it was 08:00 on a
server running on UTC)."""

import pytest
from pacs_server import PacsServer
from pydicom.dataset import Dataset
from pynetdicom import AE
from pynetdicom.sop_class import ModalityWorklistInformationFind

STATION = "CT_PARIS"


@pytest.fixture(scope="module")
def paris(tmp_path_factory):
    server = PacsServer(tmp_path_factory.mktemp("paris") / "pacs", environ={"TZ": "Europe/Paris"})
    try:
        server.start()
        server.add_node("ct", STATION, 104, allow_find_worklist=True)
        yield server
    finally:
        server.stop()


def order(server, patient_id, scheduled_at):
    answer = server.post(
        "/pacs/api/orders",
        json={
            "patient_id": patient_id,
            "patient_name": "Dupont^Jean",
            "modality": "CT",
            "scheduled_station_aet": STATION,
            "scheduled_at": scheduled_at,
            "procedure": "CT THORAX",
        },
    )
    assert answer.status_code == 201, answer.text
    return answer.json()


def worklist(server, date):
    query = Dataset()
    query.PatientID = ""
    step = Dataset()
    step.ScheduledStationAETitle = STATION
    step.ScheduledProcedureStepStartDate = date
    step.ScheduledProcedureStepStartTime = ""
    query.ScheduledProcedureStepSequence = [step]
    ae = AE(ae_title=STATION)
    ae.add_requested_context(ModalityWorklistInformationFind)
    association = ae.associate("127.0.0.1", server.dicom_port, ae_title=server.aet)
    assert association.is_established
    try:
        answers = [
            identifier
            for status, identifier in association.send_c_find(query, ModalityWorklistInformationFind)
            if status and status.Status in (0xFF00, 0xFF01)
        ]
    finally:
        association.release()
    return {
        item.PatientID: (
            item.ScheduledProcedureStepSequence[0].ScheduledProcedureStepStartDate,
            item.ScheduledProcedureStepSequence[0].ScheduledProcedureStepStartTime,
        )
        for item in answers
    }


def test_orders_with_offsets_are_answered_in_the_clinics_local_time(paris):
    assert "time_zone=Europe/Paris" in paris.log_text()
    posted = {
        "TZ-OFFSET": "2026-11-23T09:00+01:00",
        "TZ-UTC": "2026-11-23T08:00:00Z",
        "TZ-LOCAL": "2026-11-23T14:00",
        "TZ-NEWYORK": "2026-11-23T18:30-05:00",
    }
    # The API gives each as the moment it is, in UTC; modalities get Paris' wall clock.
    shown = {patient_id: order(paris, patient_id, moment)["scheduled_at"] for patient_id, moment in posted.items()}
    assert shown == {
        "TZ-OFFSET": "2026-11-23T08:00:00Z",
        "TZ-UTC": "2026-11-23T08:00:00Z",
        "TZ-LOCAL": "2026-11-23T13:00:00Z",
        "TZ-NEWYORK": "2026-11-23T23:30:00Z",
    }
    assert worklist(paris, "20261123") == {
        "TZ-OFFSET": ("20261123", "090000"),
        "TZ-UTC": ("20261123", "090000"),
        "TZ-LOCAL": ("20261123", "140000"),
    }
    assert worklist(paris, "20261124") == {"TZ-NEWYORK": ("20261124", "003000")}
