"""The harness never leaks an Orthanc: a PacsServer whose start fails, at any
stage, has its process ended and waited for before the error reaches the test."""

import socket
from pathlib import Path

import pytest
from pacs_server import PacsServer


def orthanc_processes(data_dir):
    """Pids of live processes started on this data folder's configuration."""
    config = str(Path(data_dir).resolve() / "run" / "orthanc.json")
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:  # gone meanwhile
            continue
        if config.encode() in argv:
            found.append(int(proc.name))
    return found


def assert_failed_start_leaves_nothing(server, **start):
    # Whatever the failure (Orthanc exited, did not answer in time, something else answered on
    # its port, the harness's log-in failed), nothing may be left running.
    with pytest.raises(Exception):  # noqa: B017
        server.start(**start)
    assert server.process is not None, "the test must get as far as launching Orthanc"
    assert server.process.returncode is not None, "the process was not waited for"
    assert orthanc_processes(server.data_dir) == []


def test_start_that_times_out_kills_the_running_orthanc(tmp_path):
    # Orthanc needs ~0.8 s before it answers: with 0.2 s it is alive when start gives up.
    assert_failed_start_leaves_nothing(PacsServer(tmp_path / "pacs"), timeout=0.2)


def test_start_with_the_http_port_taken_leaves_nothing(tmp_path):
    server = PacsServer(tmp_path / "pacs")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", server.http_port))
        taken.listen()
        assert_failed_start_leaves_nothing(server, timeout=15)


def test_start_whose_admin_login_fails_kills_the_answering_orthanc(tmp_path):
    # Orthanc is up and answers; the harness's own log-in then fails.
    server = PacsServer(tmp_path / "pacs", environ={"PACS_ADMIN_PASSWORD": "Another-Chief-passw0rd-4-PACS"})
    assert_failed_start_leaves_nothing(server)


def test_a_failed_start_leaves_the_ports_free_for_the_next_server(tmp_path):
    failed = PacsServer(tmp_path / "first")
    assert_failed_start_leaves_nothing(failed, timeout=0.2)
    again = PacsServer(tmp_path / "second")
    again.http_port, again.dicom_port = failed.http_port, failed.dicom_port
    try:
        assert again.start().get("/system").status_code == 200
    finally:
        again.stop()
