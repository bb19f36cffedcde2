"""The plugin's shutdown: `App.stop` ends everything `App.start` started, in a
defined order, before Orthanc's Python plugin finalizes the interpreter; a real
Orthanc stopped by SIGTERM exits 0 and leaves no thread of ours behind.

On Debian 13 (Orthanc 1.12.7, orthanc-python 5.0, Python 3.13) every stop used
to end in a segfault while "Python plugin is finalizing": orthanc-python drops
its references to the REST callbacks there without holding the GIL, and freeing
a closure then crashed. plugin/host.py keeps them referenced
(`_REST_CALLBACKS`); `.ci/other-release trixie tests/test_shutdown.py` runs
this file on that release.
"""

import re
import signal
import threading
import time
from pathlib import Path

import pytest
from fakes import FakeHost
from pacs_server import PacsServer, free_port
from pynetdicom import AE
from pynetdicom.sop_class import ModalityPerformedProcedureStep

from plugin import db, migrations
from plugin.app import App, plugin_threads
from plugin.clock import Clock
from plugin.config import Settings

ORDER = ["mpps", "report_copies", "ingest", "viewer_warm", "audit", "http_session", "database"]


@pytest.fixture
def app(tmp_path):
    handle = db.open_database(f"sqlite:///{tmp_path / 'pacs.sqlite'}")
    migrations.migrate(handle)
    host = FakeHost(
        {"Pacs": {"DataDir": str(tmp_path), "BcryptCost": 4, "MppsPort": free_port(), "MppsBind": "127.0.0.1"}}
    )
    application = App(host, Settings.from_configuration(host.configuration(), {}), Clock.named("UTC"))
    try:
        yield application
    finally:
        application.stop()
        handle.close()


class Step:
    """A part of the app that records when it is stopped (and may fail doing so)."""

    def __init__(self, name, calls, fails=False):
        self.name, self.calls, self.fails = name, calls, fails

    def stop(self, *args):
        self.calls.append(self.name)
        if self.fails:
            raise RuntimeError(f"{self.name} would not stop")

    join = close = stop


def test_stop_ends_the_parts_in_order_each_once_even_when_one_fails(app, monkeypatch, caplog):
    calls = []
    app.mpps, app.reports.copies = Step("mpps", calls), Step("report_copies", calls, fails=True)
    app.ingest, app._warming = Step("ingest", calls), Step("viewer_warm", calls)
    app.audit, app.host = Step("audit", calls), Step("http_session", calls)
    monkeypatch.setattr(db, "close_connections", Step("database", calls).stop)
    with caplog.at_level("INFO", logger="plugin.app"):
        app.stop()
        app.stop()  # ORTHANC_STOPPED, then the interpreter's exit: the second does nothing
    assert calls == ORDER
    assert "event=plugin_stop_failed step=report_copies" in caplog.text
    assert caplog.text.count("event=plugin_stopped") == 1


def open_mpps_association(port):
    ae = AE(ae_title="MODALITY")
    ae.add_requested_context(ModalityPerformedProcedureStep)
    association = ae.associate("127.0.0.1", port, ae_title="PACS_MPPS")
    assert association.is_established
    return association


def settle(threads, timeout=5):
    """The threads among ``threads`` still alive once they had ``timeout`` seconds to end."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(thread.is_alive() for thread in threads):
        time.sleep(0.05)
    return [thread.name for thread in threads if thread.is_alive()]


def test_stop_leaves_no_thread_of_the_plugin_alive(app, caplog):
    before = set(threading.enumerate())
    app.start()
    association = open_mpps_association(app.mpps.port)  # a modality still connected at the stop
    started = set(threading.enumerate()) - before
    assert {"pacs-audit", "pacs-ingest", "pacs-report-copies"} <= {thread.name for thread in started}
    assert any("Acceptor" in thread.name for thread in started)  # pynetdicom's listener and association
    with caplog.at_level("INFO"):
        app.stop()
    assert settle([association]) == []  # the modality's side saw the abort
    assert association.is_aborted
    assert settle(list(started)) == []
    assert "event=mpps_stopped aborted=1" in caplog.text
    # Inside Orthanc every other thread is the plugin's; in this test process others may run
    # (a browser test's asyncio threads): none of the app's may be named as left.
    left = re.search(r"event=plugin_stopped took_ms=\S+ threads_left=(\S+)", caplog.text).group(1).split(",")
    assert not {thread.name for thread in started} & set(left), left
    assert app.host.closed


def test_plugin_threads_are_those_started_in_this_interpreter():
    done = threading.Event()
    worker = threading.Thread(target=done.wait, name="pacs-test-worker", daemon=True)
    worker.start()
    try:
        assert worker in plugin_threads()
        assert threading.current_thread() not in plugin_threads()
    finally:
        done.set()
        worker.join(5)
    assert worker not in plugin_threads()


def test_a_stop_step_waits_for_the_viewer_warm_up_a_bounded_time(app, monkeypatch):
    release = threading.Event()
    monkeypatch.setattr(app.viewer_assets, "warm", lambda: release.wait(30))
    app.start()
    started = time.monotonic()
    app._stop_warming(timeout=0.2)
    assert 0.2 <= time.monotonic() - started < 5  # bounded, even for a warm-up that hangs
    release.set()
    assert settle([app._warming]) == []


def test_app_stop_is_registered_for_the_interpreter_exit_and_rest_callbacks_stay_referenced():
    """What plugin/host.py must do (it imports Orthanc's module, so it is read, not run):
    App.stop registered with atexit, every REST callback registered through
    _register_rest, which keeps a reference to it."""
    source = (Path(__file__).resolve().parent.parent / "plugin" / "host.py").read_text()
    assert "atexit.register(app.stop)" in source
    assert source.count("orthanc.RegisterRestCallback(") == 1  # inside _register_rest only
    assert "_REST_CALLBACKS.append(callback)" in source


# --- a real Orthanc, stopped as a container engine stops it --------------------------------


@pytest.fixture
def server_with_mpps(tmp_path):
    server = PacsServer(tmp_path / "pacs", overrides={"Pacs": {"MppsPort": free_port()}})
    try:
        server.start()
        yield server
    finally:
        server.stop()


def test_sigterm_stops_orthanc_cleanly_with_no_thread_left(server_with_mpps):
    server = server_with_mpps
    assert server.get("/pacs/health").status_code == 200
    association = open_mpps_association(server.overrides["Pacs"]["MppsPort"])
    started = time.monotonic()
    server.process.send_signal(signal.SIGTERM)
    code = server.process.wait(30)
    took = time.monotonic() - started
    log = server.log_text()
    assert code == 0, f"Orthanc exited with {code} after SIGTERM:\n{server.log_tail()}"
    assert took < 15, f"the stop took {took:.1f} s"
    assert "threads_left=none" in log and "event=mpps_stopped aborted=1" in log
    stopped_at = log.index("event=plugin_stopped")
    finalizing_at = log.index("Python plugin is finalizing")
    assert stopped_at < finalizing_at < log.index("Orthanc has stopped")
    assert "Segmentation fault" not in log and "Traceback" not in log
    assert settle([association]) == []
