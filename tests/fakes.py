"""Shared fakes for tests that run our code in process, each standing for one real
thing (Orthanc, the host, the audit trail, a clock, a signed-in person) and doing only
what the code under test asks of it, so that the test is about our logic. The database
is real: conftest's ``index_db`` (a migrated SQLite file per test)."""

import itertools
import json

import pydicom

from plugin import studyindex
from plugin.auth.accounts import Principal
from plugin.auth.models import User
from plugin.db import utcnow

_counter = itertools.count(1)
REPORTED_STUDY_UID = "1.2.3.4"  # the study of conftest's signed_report, as FlakyOrthanc tells it


# --- who is asking ---------------------------------------------------------------------------


def principal(role="radiologist", user_id=1, username=None, **rest):
    """Who is asking (plugin.auth.accounts.Principal, the real class): built here only,
    so that tests keep working when what a Principal carries changes."""
    return Principal(user_id=user_id, username=username or role, role=role, **rest)


def signed_in(username, role, display_name=None):
    """A stored account (a real plugin.auth.models.User row in the test's database)
    and the Principal it signs in as."""
    now = utcnow()
    user = User.create(
        username=username,
        display_name=display_name or username,
        role=role,
        password_hash="!",  # never signs in by password: the test hands out its Principal
        created_at=now,
        updated_at=now,
        password_changed_at=now,
    )
    return principal(role, user_id=user.id, username=username)


# --- time ------------------------------------------------------------------------------------


class ManualClock:
    """``time.time`` (or a monotonic clock) where the code takes ``clock=``: it stands
    still at ``now`` until the test moves it (``clock.now += 3``)."""

    def __init__(self, now):
        self.now = now

    def __call__(self):
        return self.now


# --- the audit trail ---------------------------------------------------------------------------


class RecordingAudit:
    """The audit trail (plugin.audit.AuditLog) as services write to it: every entry kept,
    as (action, fields), in ``entries``; an access entry with who and which study only."""

    def __init__(self):
        self.entries = []

    def record(self, action, **fields):
        self.entries.append((action, fields))

    record_async = record

    def record_access(self, action, *, username, role, address, path, study_uid="", query=None):
        self.entries.append((action, {"username": username, "study_uid": study_uid}))

    def actions(self):
        """The actions recorded, in order."""
        return [action for action, _ in self.entries]


# --- Orthanc ---------------------------------------------------------------------------------


def orthanc_series(number="1", modality="CT", body_part="HEAD", instances=2, description="AXIAL"):
    n = next(_counter)
    tags = {
        "SeriesInstanceUID": f"1.2.3.{n}",
        "Modality": modality,
        "BodyPartExamined": body_part,
        "SeriesDescription": description,
    }
    if number is not None:
        tags["SeriesNumber"] = number
    return {
        "ID": f"series-{n}",
        "MainDicomTags": tags,
        "Type": "Series",
        "Instances": [f"instance-{n}-{i}" for i in range(instances)],
    }


def orthanc_study(study_id, series=None, last_update="20261123T101500", stable=True, patient="patient-1", **tags):
    """GET /studies/{id} (as /studies?expand gives it) and its series."""
    series = [orthanc_series()] if series is None else series
    main = {
        "StudyInstanceUID": f"1.2.840.{study_id}",
        "AccessionNumber": "ACC1",
        "StudyDate": "20261123",
        "StudyTime": "101500",
        "StudyDescription": "CT HEAD",
        "ReferringPhysicianName": "WHO^DR",
        "InstitutionName": "Clinic",
    }
    main.update(tags)
    study = {
        "ID": study_id,
        "Type": "Study",
        "IsStable": stable,
        "LastUpdate": last_update,
        "ParentPatient": patient,
        "MainDicomTags": main,
        "PatientMainDicomTags": {
            "PatientID": "PID1",
            "PatientName": "DOE^JANE",
            "PatientBirthDate": "19700101",
            "PatientSex": "F",
        },
        "Series": [s["ID"] for s in series],
    }
    return study, series


class FakeOrthanc:
    """Orthanc's REST API as Ingest and the study index read it (plugin/host.py's
    get_json, capabilities, builtin): answers their GETs from studies held in memory."""

    def __init__(self, extended_find=False):
        self.studies = {}
        self.failing = set()
        self.hidden_from_listing = set()
        self.extended_find = extended_find
        self.reads = []

    def capabilities(self):
        return frozenset({"extended_find"}) if self.extended_find else frozenset()

    def builtin(self, method, uri, body=b""):
        """Orthanc 1.12's extended /tools/find: IDs with LastUpdate and IsStable only."""
        assert (method, uri) == ("POST", "/tools/find") and self.extended_find
        query = json.loads(body)
        assert query["ResponseContent"] == ["Metadata", "IsStable"]
        listed = [self.studies[k][0] for k in sorted(self.studies) if k not in self.hidden_from_listing]
        page = listed[query["Since"] : query["Since"] + query["Limit"]]
        return json.dumps(
            [
                {"ID": s["ID"], "Type": "Study", "IsStable": s["IsStable"], "Metadata": {"LastUpdate": s["LastUpdate"]}}
                for s in page
            ]
        ).encode()

    def add(self, study_id, **kwargs):
        self.studies[study_id] = orthanc_study(study_id, **kwargs)
        return self.studies[study_id]

    def get_json(self, path):
        self.reads.append(path)
        if path.startswith("/studies?"):
            assert not self.extended_find, "1.12 lists studies with /tools/find"
            return self._page(path)
        parts = path.strip("/").split("/")
        study_id = parts[1]
        if study_id in self.failing:
            raise RuntimeError(f"Orthanc failed on {path}")
        if study_id not in self.studies:
            return None
        study, series = self.studies[study_id]
        return series if parts[2:] == ["series"] else study

    def _page(self, path):
        query = dict(p.split("=") for p in path.split("?", 1)[1].split("&") if "=" in p)
        since, limit = int(query["since"]), int(query["limit"])
        listed = [self.studies[k][0] for k in sorted(self.studies) if k not in self.hidden_from_listing]
        return listed[since : since + limit]


def stored(study_id, orthanc):
    """Index one of ``orthanc``'s studies as Ingest would (plugin.studyindex); the Study row."""
    return studyindex.store(studyindex.summarise(*orthanc.studies[study_id]))


class FakeHost:
    """Orthanc as App needs it to start (plugin/host.py): no studies, one DICOM node
    allowed the worklist."""

    def __init__(self, configuration):
        self._configuration = configuration
        self.closed = False

    def configuration(self):
        return self._configuration

    def capabilities(self):
        return frozenset()

    def get_json(self, path):
        return [] if path.startswith("/studies?") else None

    def rest(self, method, path, body=None, timeout=60, raw=None):
        return 200, {"modality": {"AET": "MODALITY", "AllowFindWorklist": True}}

    def close(self):
        self.closed = True


class FakeCopies:
    """The report's DICOM copies (plugin.reports.copies.DicomCopies) as Reports uses them:
    ``Reports(..., copies_factory=FakeCopies, ...)``; what was queued is kept in ``added``."""

    def __init__(self, document):
        self.document = document  # Reports.document: (PDF, study UID, title) of a signature
        self.added = []

    def add(self, report_id, addendum_id=None):
        self.added.append((report_id, addendum_id))

    def states(self, report_id):
        return []


class FlakyOrthanc:
    """Orthanc as the report's DICOM copies use it (plugin/host.py's get_json and
    post_instance): the reported study's tags; refuses ``failures`` stores, then keeps
    what it is sent, read back as datasets, in ``stored``."""

    def __init__(self, failures):
        self.failures = failures
        self.stored = []

    def get_json(self, path):
        return {
            "MainDicomTags": {"StudyInstanceUID": REPORTED_STUDY_UID, "AccessionNumber": "A1", "StudyID": "7"},
            "PatientMainDicomTags": {"PatientName": "Doe^Jane", "PatientID": "P1"},
        }

    def post_instance(self, data):
        if self.failures:
            self.failures -= 1
            raise RuntimeError("Orthanc is busy")
        self.stored.append(pydicom.dcmread(pydicom.filebase.DicomBytesIO(data)))
        return {"Status": "Success"}
