"""A real Orthanc with the PACS plugin, started the way `make run` starts it
(plugin.launcher), on free loopback ports with its own data folder."""

import datetime
import json
import os
import signal
import socket
import sqlite3
import subprocess
import time
from pathlib import Path

import requests

from plugin import launcher

TEST_OVERRIDES = {
    "StableAge": 1,
    "RemoteAccessAllowed": False,
    # bcrypt's cost is the policy's business (unit-tested); logins in tests stay quick.
    # No MPPS listener unless a test asks for one on a port of its own (servers side by side
    # would fight over 4243), and never beyond the loopback.
    "Pacs": {"MinFreeDiskMB": 1, "LogLevel": "DEBUG", "BcryptCost": 4, "MppsPort": 0, "MppsBind": "127.0.0.1"},
}
ADMIN_PASSWORD = "Test-Chief-passw0rd-4-PACS"


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class PacsServer:
    def __init__(self, data_dir, overrides=None, environ=None, plugin=True):
        self.data_dir = Path(data_dir)
        self.http_port = free_port()
        self.dicom_port = free_port()
        self.overrides = launcher.merge(TEST_OVERRIDES, overrides or {})
        self.environ = {**os.environ, "PACS_ADMIN_PASSWORD": ADMIN_PASSWORD, **(environ or {})}
        self.plugin = plugin
        self.process = None
        self.http = requests.Session()  # authenticated as admin once started
        self.log_path = self.data_dir / "orthanc.log"
        self.aet = "PACS"

    # --- life cycle ---------------------------------------------------------

    def start(self, timeout=30):
        self.data_dir.mkdir(parents=True, exist_ok=True)
        config = launcher.build_config(self.data_dir, self.http_port, self.dicom_port, self.overrides)
        if not self.plugin:
            config["Plugins"] = [p for p in config["Plugins"] if "Python" not in p]
        path = launcher.write_config(config, self.data_dir)
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            launcher.orthanc_command(path),
            env=launcher.orthanc_environment(self.environ),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        try:
            self._wait_ready(timeout)
            if self.plugin:
                self._authenticate_as_admin()
        except BaseException:  # Ctrl-C included: a server that did not start is never left running
            self.kill()
            raise
        return self

    def _authenticate_as_admin(self):
        """Tests talk to Orthanc's REST API as an admin, with an API key (no expiry)."""
        if "Authorization" in self.http.headers:
            return
        token = self.login("admin", ADMIN_PASSWORD).json()["access_token"]
        answer = requests.post(
            self.url("/pacs/api/apikeys"),
            timeout=30,
            headers={"Authorization": f"Bearer {token}"},
            json={"name": "tests", "user_id": 1},
        )
        answer.raise_for_status()
        self.http.headers["Authorization"] = f"Bearer {answer.json()['key']}"

    def login(self, username, password, session=None):
        """POST the login API (with a fresh session unless one is given)."""
        return (session or requests).post(
            self.url("/pacs/api/auth/login"), timeout=30, json={"username": username, "password": password}
        )

    def bearer_session(self, username, password):
        """A requests.Session signed in as ``username`` by bearer token, as an API client is."""
        session = requests.Session()
        session.headers["Authorization"] = "Bearer " + self.login(username, password).json()["access_token"]
        return session

    def _wait_ready(self, timeout):
        probe = "/pacs/health" if self.plugin else "/system"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"Orthanc exited with {self.process.returncode}:\n{self.log_tail()}")
            try:
                if requests.get(self.url(probe), timeout=1).status_code in (200, 503):
                    return
            except (requests.ConnectionError, requests.Timeout):  # not listening yet, or slow to start
                pass
            time.sleep(0.05)
        raise RuntimeError(f"Orthanc did not answer {probe} within {timeout}s:\n{self.log_tail()}")

    def stop(self, timeout=30):
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def kill(self):
        """SIGKILL: no chance to finish anything."""
        self.process.kill()
        self.process.wait()

    def restart(self):
        self.stop()
        return self.start()

    # --- HTTP ----------------------------------------------------------------

    def url(self, path):
        return f"http://127.0.0.1:{self.http_port}{path}"

    def get(self, path, **kwargs):
        """GET as the admin (pass headers/auth to be someone else)."""
        return self.http.get(self.url(path), timeout=kwargs.pop("timeout", 30), **kwargs)

    def post(self, path, **kwargs):
        return self.http.post(self.url(path), timeout=kwargs.pop("timeout", 30), **kwargs)

    def put(self, path, **kwargs):
        return self.http.put(self.url(path), timeout=kwargs.pop("timeout", 30), **kwargs)

    def delete(self, path, **kwargs):
        return self.http.delete(self.url(path), timeout=kwargs.pop("timeout", 30), **kwargs)

    def add_node(self, name, aet, port, **permissions):
        """Register a DICOM node (a known AE) through the PACS API."""
        answer = self.put(
            f"/pacs/api/nodes/{name}", json=dict({"aet": aet, "host": "127.0.0.1", "port": port}, **permissions)
        )
        answer.raise_for_status()
        return answer.json()

    def orthanc_studies(self):
        """{orthanc_id: StudyInstanceUID} of what Orthanc holds."""
        studies = self.get("/studies?expand").json()
        return {s["ID"]: s["MainDicomTags"]["StudyInstanceUID"] for s in studies}

    # --- the plugin's index, read straight from its SQLite file --------------

    def index_rows(self, sql, params=()):
        with sqlite3.connect(f"file:{self.data_dir / 'pacs.sqlite'}?mode=ro", uri=True, timeout=10) as conn:
            conn.row_factory = sqlite3.Row
            return [dict(row) for row in conn.execute(sql, params)]

    def indexed_studies(self):
        """{orthanc_id: StudyInstanceUID} of what the plugin's index holds."""
        rows = self.index_rows("SELECT orthanc_id, study_instance_uid FROM study WHERE orthanc_id IS NOT NULL")
        return {r["orthanc_id"]: r["study_instance_uid"] for r in rows}

    def indexed_study(self, study_uid):
        rows = self.index_rows(
            "SELECT s.*, p.patient_id AS patient_dicom_id, p.name AS patient_name, "
            "p.birth_date AS patient_birth_date, p.sex AS patient_sex "
            "FROM study s LEFT JOIN patient p ON p.id = s.patient_id WHERE s.study_instance_uid = ?",
            (study_uid,),
        )
        return rows[0] if rows else None

    def wait_for(self, condition, timeout=20, interval=0.1, what="condition"):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = condition()
            if value:
                return value
            time.sleep(interval)
        raise AssertionError(f"timed out after {timeout}s waiting for {what}\n{self.log_tail()}")

    def wait_indexed(self, study_uid, instances=None, timeout=20):
        def ready():
            row = self.indexed_study(study_uid)
            if row and (instances is None or row["instance_count"] == instances):
                return row
            return None

        return self.wait_for(ready, timeout, what=f"study {study_uid} in the index")

    def log_tail(self, lines=60):
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def log_text(self):
        return self.log_path.read_text(errors="replace")

    # --- DICOM -----------------------------------------------------------------

    def storescu(self, paths, calling_aet="MODALITY", check=True):
        """Send files with dcmtk's stock storescu (as a modality would)."""
        command = ["storescu", "-aet", calling_aet, "-aec", self.aet, "127.0.0.1", str(self.dicom_port)] + [
            str(p) for p in paths
        ]
        result = subprocess.run(command, capture_output=True, text=True, timeout=300)
        if check and result.returncode != 0:
            raise AssertionError(f"storescu failed ({result.returncode}): {result.stderr}")
        return result


def json_dump(data):
    return json.dumps(data, indent=2, sort_keys=True)


def shown_status(answer):
    """The status the PACS gave a page: Orthanc 1.12 cannot send an HTML page with an
    error status (it makes every non-200 answer text/plain), so there the page comes with
    200 and its status in X-Pacs-Status (README, Both Debian releases). Takes a requests
    or a Playwright response."""
    headers = {name.lower(): value for name, value in answer.headers.items()}
    status = getattr(answer, "status_code", None) or answer.status
    return int(headers.get("x-pacs-status", status))


def utc_of_local(wall):
    """A wall-clock time of the server's zone (a PacsServer's is this machine's) as the API
    gives the moment: ISO 8601 in UTC with a Z."""
    return datetime.datetime.fromisoformat(wall).astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
