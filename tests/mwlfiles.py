"""dcmtk's worklist tools as a reference for our Modality Worklist: worklist
files turned into orders, dcmtk's `wlmscpfs` on a free loopback port,
`findscu -W` queries and their answers as plain data to compare."""

import re
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from pydicom import dcmread

EXAMPLES = Path("/usr/share/doc/dcmtk/examples")
EXAMPLE_WORKLISTS = EXAMPLES / "wlistdb" / "OFFIS"
EXAMPLE_QUERIES = EXAMPLES / "wlistqry"
PRIORITY_OF = {"STAT": "stat", "HIGH": "urgent"}  # any other requested priority is routine


def dump2dcm(dump, target, worklist=True):
    """A dcmtk dump file -> DICOM file (-g: a new UID in the meta header, as wlmscpfs wants)."""
    command = ["dump2dcm"] + (["-g"] if worklist else []) + [str(dump), str(target)]
    subprocess.run(command, check=True, capture_output=True, timeout=30)
    return Path(target)


def example_worklists(folder):
    """dcmtk's example worklists as .wl files in ``folder``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    return [dump2dcm(dump, folder / (dump.stem + ".wl")) for dump in sorted(EXAMPLE_WORKLISTS.glob("*.dump"))]


def example_queries(folder):
    """{name: query file} of dcmtk's example queries."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    return {
        dump.stem: dump2dcm(dump, folder / (dump.stem + ".dcm"), worklist=False)
        for dump in sorted(EXAMPLE_QUERIES.glob("*.dump"), key=lambda p: int(re.sub(r"\D", "", p.stem)))
    }


def order_from_worklist(path):
    """A worklist file -> the JSON of POST /pacs/api/orders that schedules the same procedure."""
    ds = dcmread(path)
    step = ds.ScheduledProcedureStepSequence[0]
    text = lambda dataset, keyword: str(dataset.get(keyword, "") or "")  # noqa: E731
    birth = text(ds, "PatientBirthDate")
    date, time_ = text(step, "ScheduledProcedureStepStartDate"), text(step, "ScheduledProcedureStepStartTime")
    return {
        "accession_number": text(ds, "AccessionNumber"),
        "patient_id": text(ds, "PatientID"),
        "patient_name": text(ds, "PatientName"),
        "patient_birth_date": f"{birth[:4]}-{birth[4:6]}-{birth[6:]}" if birth else None,
        "patient_sex": text(ds, "PatientSex"),
        "medical_alerts": text(ds, "MedicalAlerts"),
        "allergies": text(ds, "Allergies"),
        "study_instance_uid": text(ds, "StudyInstanceUID"),
        "requesting_physician": text(ds, "RequestingPhysician"),
        "referring_physician": text(ds, "ReferringPhysicianName"),
        "procedure": text(ds, "RequestedProcedureDescription"),
        "requested_procedure_id": text(ds, "RequestedProcedureID"),
        "priority": PRIORITY_OF.get(text(ds, "RequestedProcedurePriority"), "routine"),
        "modality": text(step, "Modality"),
        "contrast_agent": text(step, "RequestedContrastAgent"),
        "scheduled_station_aet": [str(v) for v in _values(step.get("ScheduledStationAETitle"))],
        "scheduled_at": (f"{date[:4]}-{date[4:6]}-{date[6:]}T{time_[:2]}:{time_[2:4]}:{time_[4:6] or '00'}"),
        "performing_physician": text(step, "ScheduledPerformingPhysicianName"),
        "step_description": text(step, "ScheduledProcedureStepDescription"),
        "scheduled_procedure_step_id": text(step, "ScheduledProcedureStepID"),
        "station_name": text(step, "ScheduledStationName"),
        "location": text(step, "ScheduledProcedureStepLocation"),
        "pre_medication": text(step, "PreMedication"),
        "comments": text(step, "CommentsOnTheScheduledProcedureStep"),
    }


def _values(value):
    if value in (None, ""):
        return []
    return list(value) if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue" else [value]


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Wlmscpfs:
    """dcmtk's reference worklist SCP over ``folder/aet/*.wl`` (called AE ``aet``)."""

    def __init__(self, folder, aet="WLM"):
        self.folder = Path(folder)
        self.aet = aet
        self.database = self.folder / aet
        self.database.mkdir(parents=True, exist_ok=True)
        (self.database / "lockfile").touch()
        self.port = free_port()
        self.process = None

    def __enter__(self):
        self.process = subprocess.Popen(
            ["wlmscpfs", "--single-process", "-dfp", str(self.folder), str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("wlmscpfs did not start")

    def __exit__(self, *exc):
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def findscu(port, called_aet, query=None, keys=(), calling_aet="MODALITY"):
    """Run `findscu -W`; (final status text, answers as plain data)."""
    with tempfile.TemporaryDirectory() as out:
        command = [
            "findscu",
            "-v",
            "-W",
            "-aet",
            calling_aet,
            "-aec",
            called_aet,
            "-od",
            out,
            "-X",
            "127.0.0.1",
            str(port),
        ]
        for key in keys:
            command += ["-k", key]
        if query is not None:
            command.append(str(query))
        result = subprocess.run(command, capture_output=True, text=True, timeout=60)
        log = result.stdout + result.stderr
        final = re.search(r"Received Final Find Response \(([^)]*)\)", log)
        status = final.group(1) if final else log.strip().splitlines()[-1] if log.strip() else "no answer"
        answers = [plain(dcmread(path)) for path in sorted(Path(out).glob("rsp*.dcm"))]
        return status, answers


def plain(dataset):
    """A dataset as {keyword: text or [items]} (sequences recursively), no file meta."""
    found = {}
    for element in dataset:
        if element.tag.group == 0x0002:
            continue
        if element.VR == "SQ":
            found[element.keyword] = [plain(item) for item in element.value]
        else:
            value = element.value
            found[element.keyword] = (
                "\\".join(str(v) for v in value)
                if type(value).__name__ == "MultiValue"
                else ("" if value is None else str(value))
            )
    return found
