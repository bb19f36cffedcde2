"""Other DICOM nodes: the list (kept by Orthanc in its database, so every
node of a scaled-out site shares it), C-ECHO, sending a study, querying a
node and retrieving from it.

Everything that waits on a remote node goes through ``host.rest`` (Orthanc's
REST API over loopback HTTP): a node that does not answer costs a thread,
not the GIL, so nobody else waits. Every call carries a timeout, and sends
and retrieves run as Orthanc jobs with one: no job waits forever.
"""

import re

from pydantic import BaseModel, Field, StrictBool, StrictInt, model_validator

from plugin.errors import Invalid, NotFound, RemoteFailed, RemoteTimedOut

NAME = re.compile(r"^[A-Za-z0-9_-]{1,32}$")
AET = re.compile(r"^[\x21-\x5b\x5d-\x7e]([\x20-\x5b\x5d-\x7e]{0,14}[\x21-\x5b\x5d-\x7e])?$")  # no backslash
HOST = re.compile(r"^[A-Za-z0-9.\-:]{1,253}$")
PERMISSIONS = {
    "allow_echo": "AllowEcho",
    "allow_find": "AllowFind",
    "allow_move": "AllowMove",
    "allow_get": "AllowGet",
    "allow_store": "AllowStore",
    "allow_find_worklist": "AllowFindWorklist",
}
QUERY_KEYS = {
    "patient_id": "PatientID",
    "patient_name": "PatientName",
    "accession_number": "AccessionNumber",
    "study_date": "StudyDate",
    "modality": "ModalitiesInStudy",
    "study_description": "StudyDescription",
}
ANSWER_KEYS = (
    "StudyInstanceUID",
    "PatientID",
    "PatientName",
    "AccessionNumber",
    "StudyDate",
    "ModalitiesInStudy",
    "StudyDescription",
    "NumberOfStudyRelatedInstances",
)


class NodeSettings(BaseModel):
    """A node as the PACS knows it: where it is and what it may ask of the PACS."""

    aet: str = Field(
        pattern=AET.pattern, description="1-16 printable characters, no backslash, no leading/trailing space"
    )
    host: str = Field(pattern=HOST.pattern, description="a host name or an IP address")
    port: StrictInt = Field(ge=1, le=65535, description="a whole number from 1 to 65535")
    allow_echo: StrictBool = Field(True, description="true or false")
    allow_find: StrictBool = Field(True, description="true or false")
    allow_move: StrictBool = Field(True, description="true or false")
    allow_get: StrictBool = Field(True, description="true or false")
    allow_store: StrictBool = Field(True, description="true or false")
    allow_find_worklist: StrictBool = Field(True, description="true or false")


def _query_value():
    return Field("", max_length=64, pattern=r"^[^\\]*$", description="text of at most 64 characters, no backslash")


class StudyQuery(BaseModel):
    """A study-level C-FIND: at least one field, DICOM matching (wildcards allowed)."""

    patient_id: str = _query_value()
    patient_name: str = _query_value()
    accession_number: str = _query_value()
    study_date: str = _query_value()
    modality: str = _query_value()
    study_description: str = _query_value()

    @model_validator(mode="after")
    def one_at_least(self):
        if not any(getattr(self, field) for field in QUERY_KEYS):
            raise ValueError(f"give at least one of {', '.join(QUERY_KEYS)}")
        return self


class Retrieval(BaseModel):
    study_instance_uid: str = Field(pattern=r"^[0-9.]{1,64}$", description="a DICOM UID")


class Sending(BaseModel):
    node: str = Field(description="the node's name")


JOB_TIMEOUT = 60
NETWORK_ERROR = 9  # Orthanc's "Error in the network protocol": the remote side failed


class RemoteNodes:
    def __init__(self, host, audit, local_aet, timeout=10):
        self._host = host
        self._audit = audit
        self._local_aet = local_aet
        self._timeout = timeout  # seconds a remote node gets to answer

    def list(self):
        nodes = self._call("GET", "/modalities?expand") or {}
        return [_public(name, node) for name, node in sorted(nodes.items())]

    def save(self, name, settings: NodeSettings, actor):
        _check_name(name)
        body = {"AET": settings.aet, "Host": settings.host, "Port": settings.port, "Manufacturer": "Generic"}
        body.update({key: getattr(settings, field) for field, key in PERMISSIONS.items()})
        self._call("PUT", f"/modalities/{name}", body)
        self._record(
            actor, "node_saved", details={"name": name, "aet": body["AET"], "host": body["Host"], "port": body["Port"]}
        )
        return _public(name, body)

    def delete(self, name, actor):
        self._known(name)
        self._call("DELETE", f"/modalities/{name}")
        self._record(actor, "node_deleted", details={"name": name})

    def echo(self, name):
        """C-ECHO: {"ok": bool, "message"} — a node that does not answer is a result, not an error."""
        self._known(name)
        status, answer = self._host.rest(
            "POST", f"/modalities/{name}/echo", {"Timeout": self._timeout}, timeout=self._timeout + 5
        )
        if status == 200:
            return {"ok": True, "message": "the node answered C-ECHO"}
        return {"ok": False, "message": f"no answer to C-ECHO: {_details(answer)}"}

    def send(self, study_orthanc_id, study_uid, name, actor):
        """C-STORE a study to a node, as an Orthanc job; returns the job's ID."""
        self._known(name)
        job = self._call(
            "POST",
            f"/modalities/{name}/store",
            {"Resources": [study_orthanc_id], "Asynchronous": True, "Timeout": self._timeout, "Permissive": False},
            failure=RemoteFailed,
        )
        self._record(actor, "send", study_uid, {"to": name, "job": job["ID"]})
        return job["ID"]

    def query(self, name, filters: StudyQuery, actor):
        """C-FIND at study level on a node; the answers as dicts."""
        query = {tag: "" for tag in ANSWER_KEYS}
        query.update({tag: getattr(filters, field) for field, tag in QUERY_KEYS.items() if getattr(filters, field)})
        self._known(name)
        found = self._call(
            "POST",
            f"/modalities/{name}/query",
            {"Level": "Study", "Query": query, "Timeout": self._timeout},
            failure=RemoteTimedOut,
        )
        answers = self._call("GET", f"/queries/{found['ID']}/answers?expand&simplify") or []
        self._record(actor, "node_queried", details={"node": name, "answers": len(answers)})
        return [{key: answer.get(key, "") for key in ANSWER_KEYS} for answer in answers]

    def retrieve(self, name, study_uid: str, actor):
        """C-MOVE a study from a node to this PACS: {"job": ID or None, "state"}.

        Orthanc 1.10 moves synchronously (no job; bounded by the timeout)
        where a later one hands back a job.
        """
        self._known(name)
        job = self._call(
            "POST",
            f"/modalities/{name}/move",
            {
                "Level": "Study",
                "Resources": [{"StudyInstanceUID": study_uid}],
                "TargetAet": self._local_aet,
                "Asynchronous": True,
                "Timeout": self._timeout,
            },
            failure=RemoteFailed,
        )
        job_id = (job or {}).get("ID")
        self._record(actor, "retrieve", study_uid, {"from": name, "job": job_id})
        return {"job": job_id, "state": "Pending" if job_id else "Success"}

    def job(self, job_id):
        if not re.fullmatch(r"[0-9a-f-]{36}", job_id or ""):
            raise Invalid("not a job ID")
        job = self._call("GET", f"/jobs/{job_id}")
        return {
            "id": job["ID"],
            "state": job["State"],
            "progress": job.get("Progress", 0),
            "error": job.get("ErrorDescription", "") if job["State"] == "Failure" else "",
            "details": job.get("ErrorDetails", "") if job["State"] == "Failure" else "",
        }

    # --- helpers ---------------------------------------------------------------

    def _known(self, name):
        _check_name(name)
        if self._host.rest("GET", f"/modalities/{name}/configuration", timeout=self._timeout)[0] != 200:
            raise NotFound(f"no DICOM node named {name!r}")

    def _call(self, method, path, body=None, failure=RemoteFailed):
        status, answer = self._host.rest(method, path, body, timeout=JOB_TIMEOUT)
        if status == 404:
            raise NotFound(f"not found: {path.split('?')[0]}")
        if status >= 400:
            remote = status >= 500 or (isinstance(answer, dict) and answer.get("OrthancStatus") == NETWORK_ERROR)
            raise (failure if remote else Invalid)(_details(answer))
        return answer

    def _record(self, actor, action, study_uid="", details=None):
        self._audit.record(action, username=actor.username, role=actor.role, study_uid=study_uid, details=details)


def _public(name, node):
    return {
        "name": name,
        "aet": node["AET"],
        "host": node["Host"],
        "port": node["Port"],
        **{field: node.get(key, True) for field, key in PERMISSIONS.items()},
    }


def _details(answer):
    if isinstance(answer, dict):
        return answer.get("Details") or answer.get("Message") or "the node did not answer"
    return "the node did not answer"


def _check_name(name):
    if not isinstance(name, str) or not NAME.match(name):
        raise Invalid("a node name is 1-32 letters, digits, _ or -")
