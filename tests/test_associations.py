"""DICOM associations do not block each other: with a clinic's worth of idle
associations open (modalities that connect and wait), a new one is served at
once, on Orthanc's DICOM port and on the MPPS port; and an idle association
is ended by the server after DicomScpTimeout seconds, on both ports."""

import contextlib
import subprocess
import time

import pytest
from pacs_server import PacsServer, free_port
from pynetdicom import AE
from pynetdicom.sop_class import ModalityPerformedProcedureStep, Verification

IDLE_ASSOCIATIONS = 20
ECHO_WITHIN = 2.0  # seconds
SHORT_TIMEOUT = 2  # DicomScpTimeout of the idle-timeout server
MPPS_AET = "PACS_MPPS"


def start(path, **overrides):
    mpps_port = free_port()
    pacs = PacsServer(path, overrides=dict(overrides, Pacs={"MppsPort": mpps_port, "MppsBind": "127.0.0.1"}))
    pacs.start()
    pacs.mpps_port = mpps_port
    pacs.wait_for(lambda: "event=mpps_listening" in pacs.log_text(), what="MPPS listening")
    return pacs


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """The shipped association settings (orthanc.json), nothing overridden."""
    pacs = start(tmp_path_factory.mktemp("assoc") / "pacs")
    yield pacs
    pacs.stop()


@pytest.fixture(scope="module")
def short_timeout(tmp_path_factory):
    pacs = start(tmp_path_factory.mktemp("assoc-timeout") / "pacs", DicomScpTimeout=SHORT_TIMEOUT)
    yield pacs
    pacs.stop()


def ports(pacs):
    """(port, called AE) of both DICOM listeners."""
    return {"orthanc": (pacs.dicom_port, pacs.aet), "mpps": (pacs.mpps_port, MPPS_AET)}


def requestor():
    ae = AE(ae_title="IDLE_MODALITY")
    ae.add_requested_context(Verification)
    ae.add_requested_context(ModalityPerformedProcedureStep)
    ae.network_timeout = 120  # our side never ends them: the server has to
    return ae


@contextlib.contextmanager
def idle_associations(port, aet, count):
    """``count`` established associations that send nothing; all released or aborted at the end."""
    ae, opened = requestor(), []
    try:
        for _ in range(count):
            assoc = ae.associate("127.0.0.1", port, ae_title=aet)
            opened.append(assoc)
            assert assoc.is_established, f"association {len(opened)} to {aet} refused"
        yield opened
    finally:
        for assoc in opened:
            if assoc.is_established:
                assoc.abort()
        ae.shutdown()


def echo_seconds(port, aet):
    """Seconds a stock dcmtk echoscu takes, from process start to its exit; fails on a failed echo."""
    began = time.monotonic()
    subprocess.run(
        ["echoscu", "-to", "10", "-aet", "ECHO_PROBE", "-aec", aet, "127.0.0.1", str(port)],
        check=True,
        capture_output=True,
        timeout=30,
    )
    return time.monotonic() - began


@pytest.mark.parametrize("listener", ["orthanc", "mpps"])
def test_a_new_association_is_served_at_once_behind_idle_ones(server, listener):
    port, aet = ports(server)[listener]
    with idle_associations(port, aet, IDLE_ASSOCIATIONS) as opened:
        seconds = echo_seconds(port, aet)
        assert all(assoc.is_established for assoc in opened), "an idle association ended before the timeout"
    assert seconds < ECHO_WITHIN, f"C-ECHO took {seconds:.1f} s behind {IDLE_ASSOCIATIONS} idle associations"


@pytest.mark.parametrize("listener", ["orthanc", "mpps"])
def test_an_idle_association_is_ended_by_the_server_after_the_timeout(short_timeout, listener):
    port, aet = ports(short_timeout)[listener]
    with idle_associations(port, aet, 1) as [assoc]:
        began = time.monotonic()
        time.sleep(SHORT_TIMEOUT / 2)
        assert assoc.is_established, "ended before the timeout"
        deadline = began + SHORT_TIMEOUT + 10
        while assoc.is_established and time.monotonic() < deadline:
            time.sleep(0.1)
        lived = time.monotonic() - began
        assert not assoc.is_established, f"still open {lived:.0f} s after a {SHORT_TIMEOUT} s timeout"
        assert assoc.is_aborted or assoc.is_released
        assert lived >= SHORT_TIMEOUT - 0.5
        # The listener still serves others afterwards.
        assert echo_seconds(port, aet) < ECHO_WITHIN
