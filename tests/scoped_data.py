"""Shared set-up for the generated attack tests: accounts of each role made through
the PACS API, a few studies of distinct patients stored over DICOM, and raw HTTP
(http.client: the URL and headers go out byte for byte, nothing re-encoded)."""

import gzip
import http.client
from dataclasses import dataclass, field

import dicomgen
from pydicom.uid import generate_uid

PASSWORD = "Generated-attack-{}-passw0rd"
REFERRING_NAME = "SMITH^JOHN"


def make_account(server, username, role, **fields):
    """Create a user through /pacs/api/users (as the admin) and an API key for it:
    {"user": ..., "password": ..., "key": "Authorization" header value}."""
    password = PASSWORD.format(role)
    answer = server.post("/pacs/api/users", json=dict(username=username, password=password, role=role, **fields))
    assert answer.status_code == 201, answer.text
    user = answer.json()
    key = server.post("/pacs/api/apikeys", json={"name": f"{username}-key", "user_id": user["id"]})
    assert key.status_code in (200, 201), key.text
    return {"user": user, "password": password, "authorization": f"Bearer {key.json()['key']}"}


def session_cookie(server, username, password):
    """The session cookie a browser gets at login ("name=value")."""
    answer = server.login(username, password)
    assert answer.status_code == 200, answer.text
    return "; ".join(f"{c.name}={c.value}" for c in answer.cookies)


@dataclass
class StoredStudy:
    """What one stored study is known by: every identifier that must not leak."""

    spec: dicomgen.StudySpec
    series: dict = field(default_factory=dict)  # SeriesInstanceUID -> [SOPInstanceUID, ...]
    pixel_marker: bytes = b""

    @property
    def uid(self):
        return self.spec.study_uid

    def first(self):
        """(series UID, instance UID) of its first image."""
        series_uid = sorted(self.series)[0]
        return series_uid, self.series[series_uid][0]

    def identifiers(self):
        """Bytes that only this study's answers contain."""
        names = self.spec.patient_name.split("^")
        found = {self.uid, self.spec.patient_id, self.spec.accession, *names, *self.series}
        found.update(uid for instances in self.series.values() for uid in instances)
        return {text.encode() for text in found} | ({self.pixel_marker} if self.pixel_marker else set())


def store_study(server, folder, patient_name, referring, marker=b"", patient_id=None):
    """Store a two-series study (3 CT slices, 2 more CT slices) of one new patient (or of
    the patient with ``patient_id``) with storescu and wait until the plugin indexed it.
    ``marker``: the pixel data is this text repeated, so a frame of it is recognisable in
    any uncompressed answer."""
    spec = dicomgen.StudySpec(
        patient_name=patient_name, referring_physician=referring, patient_id=patient_id or "PID" + generate_uid()[-10:]
    )
    pixels = (marker * (64 * 64 * 2 // len(marker) + 1))[: 64 * 64 * 2] if marker else None
    datasets = dicomgen.ct_series(spec, slices=3, series_number=1, pixels=pixels) + dicomgen.ct_series(
        spec, slices=2, series_number=2, pixels=pixels
    )
    study = StoredStudy(spec, pixel_marker=marker)
    for ds in datasets:
        study.series.setdefault(ds.SeriesInstanceUID, []).append(ds.SOPInstanceUID)
    server.storescu(dicomgen.write(datasets, folder))
    server.wait_indexed(spec.study_uid, instances=len(datasets))
    return study


def raw_request(server, method, target, headers=None, body=b"", timeout=30):
    """Send one request exactly as given; (status, headers dict, body bytes)."""
    connection = http.client.HTTPConnection("127.0.0.1", server.http_port, timeout=timeout)
    try:
        connection.putrequest(method, target, skip_accept_encoding=True)
        for name, value in (headers or {}).items():
            connection.putheader(name, value)
        framed = {name.lower() for name in headers or {}} & {"content-length", "transfer-encoding"}
        if body and not framed:
            connection.putheader("Content-Length", str(len(body)))
        connection.endheaders()
        try:
            connection.send(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered (413...) and closed before reading it all: read that answer
        answer = connection.getresponse()
        return answer.status, {k.lower(): v for k, v in answer.getheaders()}, answer.read()
    finally:
        connection.close()


def alive(server):
    """Orthanc's process is running and /pacs/health answers 200."""
    if server.process.poll() is not None:
        return False
    try:
        return raw_request(server, "GET", "/pacs/health", timeout=10)[0] == 200
    except OSError:
        return False


def gzip_bomb(megabytes=64):
    """A small gzip body that inflates to ``megabytes`` of zeros."""
    return gzip.compress(b"\0" * (megabytes * 1024 * 1024), compresslevel=9)
