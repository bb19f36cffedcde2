"""The Modality Worklist: matching rules in-process (plugin.mwl.service),
then through a real Orthanc with `findscu -W`, compared with dcmtk's own
worklist server `wlmscpfs` on dcmtk's example worklists and queries."""

import datetime
import io
import json
from types import SimpleNamespace

import mwlfiles
import pytest
from pacs_server import PacsServer, free_port
from pydicom import dcmread
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from plugin.mwl import service as mwl
from plugin.mwl.service import ModalityWorklist, MwlQueryError, parse_constraint

# --- matching, in-process ------------------------------------------------------------------------


def order(**fields):
    values = dict(
        accession_number="ACC1",
        referring_physician="WHO^DR",
        patient_name="Müller^Anna",
        patient_id="P1",
        patient_birth_date=datetime.date(1970, 1, 2),
        patient_sex="F",
        medical_alerts="",
        allergies="",
        study_instance_uid="1.2.3",
        requesting_physician="",
        procedure="CT HEAD",
        requested_procedure_id="RP1",
        priority="urgent",
        modality="CT",
        contrast_agent="",
        scheduled_station_aet="CT1\\CT2",
        scheduled_date="20261123",
        scheduled_time="093000",
        performing_physician="Smith^Jane",
        step_description="CT HEAD",
        scheduled_procedure_step_id="SPS1",
        station_name="",
        location="",
        pre_medication="",
        comments="",
        status="scheduled",
    )
    values.update(fields)
    return SimpleNamespace(**values)


def query(step=None, **keys):
    ds = Dataset()
    for keyword, value in keys.items():
        setattr(ds, keyword, value)
    if step is not None:
        item = Dataset()
        for keyword, value in step.items():
            setattr(item, keyword, value)
        ds.ScheduledProcedureStepSequence = [item] if step else []
    return ds


def matches(identifier, target, fold_case=True):
    return mwl.parse_query(identifier, fold_case).matches(target)


def answer(identifier, target):
    """Our answer to a query, read back with pydicom (so our DICOM writer is checked too)."""
    parsed = identifier if isinstance(identifier, mwl.Query) else mwl.parse_query(identifier)
    data = parsed.answer(target)
    assert data[128:132] == b"DICM"
    return dcmread(io.BytesIO(data))


def part10(identifier):
    identifier.file_meta = FileMetaDataset()
    identifier.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    identifier.file_meta.MediaStorageSOPClassUID = mwl.MWL_SOP_CLASS
    identifier.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    buffer = io.BytesIO()
    identifier.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


@pytest.mark.parametrize(
    "value, stored, expected",
    [
        ("", "anything", True),
        ("*", "anything", True),
        ("MÜLLER^ANNA", "Müller^Anna", True),  # person names: case-insensitive by default
        ("Mül*", "Müller^Anna", True),
        ("M?ller*", "Müller^Anna", True),
        ("M?ller", "Müller^Anna", False),
        ("Müller", "Müller^Anna", False),  # single value: the whole name
        ("Other\\Müller^Anna", "Müller^Anna", True),  # several values: any
    ],
)
def test_person_name_matching(value, stored, expected):
    assert matches(query(PatientName=value), order(patient_name=stored)) is expected


def test_person_names_can_be_case_sensitive():
    assert not matches(query(PatientName="müller^anna"), order(), fold_case=False)
    assert not matches(query(PatientName="mül*"), order(), fold_case=False)
    assert matches(query(PatientName="Müller^Anna"), order(), fold_case=False)
    assert matches(query(PatientName="Mül*"), order(), fold_case=False)
    assert matches(query(PatientName="STRASSE^*"), order(patient_name="Straße^Eva"))  # full case folding


def test_other_values_are_case_sensitive_and_exact():
    assert matches(query(AccessionNumber="ACC1"), order())
    assert not matches(query(AccessionNumber="acc1"), order())
    assert not matches(query(AccessionNumber="ACC"), order())
    assert matches(query(AccessionNumber="AC?1"), order())
    assert matches(query(PatientID=" P1 "), order())  # leading/trailing spaces are padding


@pytest.mark.parametrize(
    "value, expected",
    [
        ("20261123", True),
        ("20261122", False),
        ("20261101-20261130", True),
        ("20261124-", False),
        ("-20261123", True),
        ("20261123-20261123", True),
        ("20261124-20261130", False),
    ],
)
def test_date_matching(value, expected):
    assert matches(query(step={"ScheduledProcedureStepStartDate": value}), order()) is expected


@pytest.mark.parametrize(
    "value, expected",
    [
        ("093000", True),
        ("0930", True),
        ("09", False),
        ("0900-1000", True),
        ("0930-", True),
        ("-0929", False),
        ("093000.000000", True),
        ("0931-", False),
        ("-093000", True),
    ],
)
def test_time_matching(value, expected):
    """A partial time is padded with zeros, as wlmscpfs does: 09 is 09:00:00."""
    assert matches(query(step={"ScheduledProcedureStepStartTime": value}), order()) is expected


def test_birth_date_range():
    assert matches(query(PatientBirthDate="19700101-19700131"), order())
    assert not matches(query(PatientBirthDate="19800101-"), order())


@pytest.mark.parametrize("value", ["2026-11-23", "20261332", "2026112", "20261123-2026", "A-B", "1-2-3", "-"])
def test_malformed_dates_fail_the_query(value):
    with pytest.raises(MwlQueryError):
        mwl.parse_query(query(step={"ScheduledProcedureStepStartDate": value}))


@pytest.mark.parametrize("value", ["25", "0961", "9:30", "093000.1234567", "12-13-14"])
def test_malformed_times_fail_the_query(value):
    with pytest.raises(MwlQueryError):
        mwl.parse_query(query(step={"ScheduledProcedureStepStartTime": value}))


def test_multi_valued_station_matches_any_value_and_answers_the_matched_one():
    """Orthanc matches the answered step again against the whole multi-value: we answer the
    value(s) the modality asked for, so the step survives (mwl's docstring)."""

    def stations(answer):
        return mwlfiles.plain(answer)["ScheduledProcedureStepSequence"][0]["ScheduledStationAETitle"]

    parsed = mwl.parse_query(query(step={"ScheduledStationAETitle": "CT2"}))
    assert parsed.matches(order())
    assert stations(answer(parsed, order())) == "CT2"
    assert stations(answer(query(step={"ScheduledStationAETitle": ""}), order())) == "CT1\\CT2"
    assert not matches(query(step={"ScheduledStationAETitle": "MR1"}), order())


def test_answer_holds_the_asked_keys_only_with_utf8():
    found = answer(query(PatientName="", AccessionNumber="", step={"Modality": ""}), order())
    assert [e.keyword for e in found] == [
        "SpecificCharacterSet",
        "AccessionNumber",
        "PatientName",
        "ScheduledProcedureStepSequence",
    ]
    assert found.SpecificCharacterSet == "ISO_IR 192" and str(found.PatientName) == "Müller^Anna"
    assert [e.keyword for e in found.ScheduledProcedureStepSequence[0]] == ["Modality"]


@pytest.mark.parametrize("step", [{}, "empty item"])
def test_an_empty_step_sequence_or_item_asks_for_every_step_attribute(step):
    identifier = query(PatientName="")
    if step == "empty item":
        identifier.ScheduledProcedureStepSequence = [Dataset()]
    else:
        identifier.ScheduledProcedureStepSequence = []
    item = answer(identifier, order()).ScheduledProcedureStepSequence[0]
    assert [e.keyword for e in item] == list(mwl.STEP)
    assert (item.ScheduledProcedureStepStatus, item.ScheduledProcedureStepID) == ("SCHEDULED", "SPS1")


def test_unknown_keys_are_ignored():
    identifier = query(PatientName="", StudyDescription="X", AdmissionID="Y")
    identifier.add_new(0x00091010, "LO", "private")
    parsed = mwl.parse_query(identifier)
    assert parsed.matches(order())
    assert [e.keyword for e in answer(parsed, order())] == ["SpecificCharacterSet", "PatientName"]
    assert set(parsed.ignored) >= {"StudyDescription", "AdmissionID"}


def test_two_step_items_fail_the_query():
    identifier = query(PatientName="")
    identifier.ScheduledProcedureStepSequence = [Dataset(), Dataset()]
    with pytest.raises(MwlQueryError):
        mwl.parse_query(identifier)


def test_priority_and_step_status_are_answered_in_dicom_terms():
    found = answer(
        query(RequestedProcedurePriority="", step={"ScheduledProcedureStepStatus": ""}), order(status="in_progress")
    )
    assert found.RequestedProcedurePriority == "HIGH"
    assert found.ScheduledProcedureStepSequence[0].ScheduledProcedureStepStatus == "STARTED"
    assert matches(query(RequestedProcedurePriority="HIGH"), order())


def test_prefilter_narrows_by_what_every_match_has():
    parsed = mwl.parse_query(
        query(
            AccessionNumber="ACC1",
            PatientName="MÜ*",
            PatientID="*1",
            step={
                "ScheduledProcedureStepStartDate": "20261101-20261130",
                "Modality": "CT",
                "ScheduledStationAETitle": "CT1",
            },
        )
    )
    assert sorted(parsed.prefilter) == [
        ("accession_number", "=", "ACC1"),
        ("modality", "=", "CT"),
        ("name_key", "prefix", "mü"),
        ("scheduled_date", "<=", "20261130"),
        ("scheduled_date", ">=", "20261101"),
        ("scheduled_station_aet", "contains", "CT1"),
    ]
    assert mwl.parse_query(query(PatientName="SMI*")).prefilter == [("name_key", "prefix", "smi")]
    assert mwl.parse_query(query(PatientName="STRASSE*")).prefilter == [("name_key", "prefix", "strasse")]
    assert mwl.parse_query(query(PatientName="SMI*"), fold_case=False).prefilter == [("patient_name", "prefix", "SMI")]
    assert mwl.parse_query(query(PatientName="Smith^John")).prefilter == []
    assert mwl.parse_query(query(PatientName="Smith^John"), fold_case=False).prefilter == [
        ("patient_name", "=", "Smith^John")
    ]
    assert mwl.parse_query(query(PatientName="A_B*")).prefilter == [("name_key", "prefix", "a_b")]
    station = mwl.parse_query(query(step={"ScheduledStationAETitle": "CT*"}))
    assert station.prefilter == [("scheduled_station_aet", "contains", "CT")]  # CT2 may be a second value


def test_find_reads_bytes_and_caps_the_answers():
    identifier = query(PatientName="")
    worklist = ModalityWorklist(lambda prefilter: [order(accession_number=f"A{i}") for i in range(5)], max_answers=3)
    answers, complete = worklist.find(part10(identifier))
    assert (len(answers), complete) == (3, False)
    with pytest.raises(MwlQueryError):
        worklist.find(b"not dicom at all")


def test_constraint_kinds():
    assert parse_constraint("StudyInstanceUID", "UI", "1.2\\1.3").kind == "list"
    assert parse_constraint("PatientID", "LO", "A*").kind == "wildcard"
    assert parse_constraint("ScheduledProcedureStepStartDate", "DA", "-20260101").value == (None, "20260101")


# --- through Orthanc, compared with wlmscpfs ----------------------------------------------------

CALLING_AET = "MODALITY"

# Beyond dcmtk's own example queries: keys both servers match alike.
EXTRA_QUERIES = {
    "name-wildcard": ["PatientName=VIVALDI*", "PatientID=", "AccessionNumber="],
    "name-question-mark": ["PatientName=?OZART*", "ScheduledProcedureStepSequence[0].Modality="],
    "patient-id": ["PatientID=HF", "PatientName=", "StudyInstanceUID=", "ScheduledProcedureStepSequence"],
    "accession": ["AccessionNumber=00007", "PatientName=", "RequestedProcedureID=", "RequestedProcedureDescription="],
    "birth-date-range": ["PatientBirthDate=17000101-17991231", "PatientName="],
    "step-date-range": [
        "PatientName=",
        "ScheduledProcedureStepSequence[0].ScheduledProcedureStepStartDate=19951201-19960131",
    ],
    "step-date-open-end": [
        "PatientName=",
        "ScheduledProcedureStepSequence[0].ScheduledProcedureStepStartDate=19960501-",
    ],
    "step-date-open-start": [
        "PatientName=",
        "ScheduledProcedureStepSequence[0].ScheduledProcedureStepStartDate=-19931231",
    ],
    "step-time-range": [
        "PatientName=",
        "ScheduledProcedureStepSequence[0].ScheduledProcedureStepStartTime=090000-150000",
    ],
    "step-date-single": [
        "PatientName=",
        "ScheduledProcedureStepSequence[0].ScheduledProcedureStepStartDate=19960502",
        "ScheduledProcedureStepSequence[0].ScheduledProcedureStepStartTime=",
    ],
    "modality": [
        "PatientName=",
        "ScheduledProcedureStepSequence[0].Modality=CT",
        "ScheduledProcedureStepSequence[0].ScheduledProcedureStepID=",
    ],
    "station-single-valued": ["PatientName=", "ScheduledProcedureStepSequence[0].ScheduledStationAETitle=TT67"],
    "performing-physician": ["PatientName=", "ScheduledProcedureStepSequence[0].ScheduledPerformingPhysicianName=ROSS"],
    "requesting-physician": ["RequestingPhysician=NEW*", "PatientName=", "MedicalAlerts=", "Allergies="],
    "priority": ["RequestedProcedurePriority=HIGH", "PatientName="],
    "requested-procedure-id": ["RequestedProcedureID=RP472", "PatientName="],
    "no-match": ["PatientName=NOBODY*"],
}

# Where we answer differently from wlmscpfs, on purpose (see mwl's docstring and the README):
KNOWN_DIFFERENCES = {
    # Orthanc matches the answered step item against the whole multi-valued AE: we answer
    # the value asked for (AA32) where wlmscpfs answers all (AA32\AA33).
    "station-in-a-multi-value": ["PatientName=", "ScheduledProcedureStepSequence[0].ScheduledStationAETitle=AA32"],
    # Person names are case-insensitive by default (Orthanc's CaseSensitivePN: false); dcmtk's are not.
    "name-lower-case": ["PatientName=vivaldi*"],
    # wlmscpfs has no wildcards for Modality (PS3.4 C.2.2.2.4 allows them on CS).
    "modality-wildcard": ["PatientName=", "ScheduledProcedureStepSequence[0].Modality=C*"],
    # wlmscpfs matches a step date range and time range as one date-time range (PS3.4 C.2.2.2.5.2);
    # Orthanc drops a step item failing either on its own, so we match them separately.
    "date-and-time-combined": [
        "PatientName=",
        "ScheduledProcedureStepSequence[0].ScheduledProcedureStepStartDate=19960101-19961231",
        "ScheduledProcedureStepSequence[0].ScheduledProcedureStepStartTime=-120000",
    ],
}


def comparable(answers):
    """Answers as a sorted list of JSON texts, leaving out what dcmtk does not model like us:
    - SpecificCharacterSet: wlmscpfs sends none by default (-cs0); Orthanc always names the
      character set it converted the answer to (ISO_IR 192 here);
    - ScheduledProcedureStepStatus: our orders know theirs (SCHEDULED); wlmscpfs answers the
      file's, and dcmtk's examples have none;
    - RequestedProcedurePriority LOW and MEDIUM: our orders have three priorities (routine,
      urgent, stat), answered ROUTINE, HIGH, STAT.
    """

    def clean(answer):
        answer = dict(answer)
        answer.pop("SpecificCharacterSet", None)
        if answer.get("RequestedProcedurePriority") in ("LOW", "MEDIUM"):
            answer["RequestedProcedurePriority"] = "ROUTINE"
        for item in answer.get("ScheduledProcedureStepSequence", []):
            item.pop("ScheduledProcedureStepStatus", None)
        return json.dumps(answer, sort_keys=True)

    return sorted(clean(a) for a in answers)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("mwl")
    pacs = PacsServer(folder / "pacs", overrides={"Pacs": {"MppsPort": free_port(), "MppsBind": "127.0.0.1"}})
    pacs.start()
    pacs.add_node("modality", CALLING_AET, 104, allow_find_worklist=True)
    worklists = mwlfiles.example_worklists(folder / "wl")
    for path in worklists:
        answer = pacs.post("/pacs/api/orders", json=mwlfiles.order_from_worklist(path))
        assert answer.status_code == 201, answer.text
    pacs.worklists = worklists
    pacs.queries = mwlfiles.example_queries(folder / "queries")
    yield pacs
    pacs.stop()


@pytest.fixture(scope="module")
def reference(server, tmp_path_factory):
    wlm = mwlfiles.Wlmscpfs(tmp_path_factory.mktemp("wlmscpfs"))
    for path in server.worklists:
        (wlm.database / path.name).write_bytes(path.read_bytes())
    with wlm:
        yield wlm


def ours(server, query=None, keys=(), calling_aet=CALLING_AET):
    return mwlfiles.findscu(server.dicom_port, server.aet, query, keys, calling_aet)


def theirs(reference, query=None, keys=()):
    return mwlfiles.findscu(reference.port, reference.aet, query, keys)


@pytest.mark.parametrize("name", [f"wlistqry{i}" for i in range(13)])
def test_dcmtk_example_query_answers_as_wlmscpfs(server, reference, name):
    our_status, our_answers = ours(server, server.queries[name])
    their_status, their_answers = theirs(reference, server.queries[name])
    assert (our_status, their_status) == ("Success", "Success")
    assert comparable(our_answers) == comparable(their_answers)


@pytest.mark.parametrize("name", sorted(EXTRA_QUERIES))
def test_more_queries_answer_as_wlmscpfs(server, reference, name):
    our_status, our_answers = ours(server, keys=EXTRA_QUERIES[name])
    their_status, their_answers = theirs(reference, keys=EXTRA_QUERIES[name])
    assert our_status == their_status == "Success"
    assert comparable(our_answers) == comparable(their_answers)
    if name != "no-match":
        assert our_answers


def test_the_comparison_covers_answers_of_every_example_worklist(server, reference):
    answered = set()
    for name in list(server.queries) + list(EXTRA_QUERIES):
        keys = EXTRA_QUERIES.get(name, ())
        query_file = server.queries.get(name)
        _, answers = theirs(reference, query_file, keys + ["PatientID="] if keys else ())
        answered |= {a.get("PatientName") for a in answers}
    assert answered >= {"VIVALDI^ANTONIO", "HAYDN^FRANZ^JOSEPH", "BEETHOVEN^LUDWIG^VAN", "MOZART^WOLFGANG^AMADEUS"}


def test_known_differences_from_wlmscpfs_stay_as_documented(server, reference):
    def names(answers):
        return sorted(a["PatientName"] for a in answers)

    _, our_answers = ours(server, keys=KNOWN_DIFFERENCES["station-in-a-multi-value"])
    _, their_answers = theirs(reference, keys=KNOWN_DIFFERENCES["station-in-a-multi-value"])
    stations = lambda answers: sorted(  # noqa: E731
        a["ScheduledProcedureStepSequence"][0]["ScheduledStationAETitle"] for a in answers
    )
    assert stations(our_answers) == ["AA32", "AA32"] and stations(their_answers) == ["AA32", "AA32\\AA33"]

    _, our_answers = ours(server, keys=KNOWN_DIFFERENCES["name-lower-case"])
    _, their_answers = theirs(reference, keys=KNOWN_DIFFERENCES["name-lower-case"])
    assert len(our_answers) == 3 and their_answers == []

    _, our_answers = ours(server, keys=KNOWN_DIFFERENCES["modality-wildcard"])
    _, their_answers = theirs(reference, keys=KNOWN_DIFFERENCES["modality-wildcard"])
    assert len(our_answers) == 6 and their_answers == []

    _, our_answers = ours(server, keys=KNOWN_DIFFERENCES["date-and-time-combined"])
    _, their_answers = theirs(reference, keys=KNOWN_DIFFERENCES["date-and-time-combined"])
    assert set(names(our_answers)) < set(names(their_answers)) or len(our_answers) < len(their_answers)
    assert all(a["ScheduledProcedureStepSequence"] for a in our_answers)  # never a step-less answer


# --- bad input and the rest, through Orthanc ---------------------------------------------------


@pytest.mark.parametrize(
    "key",
    [
        "ScheduledProcedureStepSequence[0].ScheduledProcedureStepStartDate=2026-11-23",
        "ScheduledProcedureStepSequence[0].ScheduledProcedureStepStartDate=20261123-2026",
        "ScheduledProcedureStepSequence[0].ScheduledProcedureStepStartTime=25",
        "PatientBirthDate=yesterday",
    ],
)
def test_malformed_dates_and_times_fail_the_find(server, reference, key):
    status, answers = ours(server, keys=["PatientName=", key])
    assert answers == [] and status != "Success" and "Pending" not in status
    their_status, _ = theirs(reference, keys=["PatientName=", key])
    assert their_status != "Success"  # wlmscpfs refuses it too (A900)
    assert "event=mwl_query_refused" in server.log_text()


def test_unknown_keys_are_left_out_of_the_answers(server):
    status, answers = ours(
        server,
        keys=[
            "PatientID=HF",
            "PatientName=",
            "StudyDescription=",
            "AdmissionID=",
            "(0009,0010)=PRIVATE",
            "(0009,1001)=",
        ],
    )
    assert status == "Success" and len(answers) == 3
    assert all(set(a) <= {"SpecificCharacterSet", "PatientID", "PatientName"} for a in answers)


def test_an_empty_step_sequence_asks_for_every_step_attribute(server, reference):
    keys = ["PatientID=HF", "PatientName=", "ScheduledProcedureStepSequence"]
    status, answers = ours(server, keys=keys)
    assert status == "Success" and len(answers) == 3
    assert all(len(a["ScheduledProcedureStepSequence"][0]) == len(mwl.STEP) for a in answers)
    assert comparable(answers) == comparable(theirs(reference, keys=keys)[1])


def test_two_step_items_fail_the_find(server, tmp_path):
    dump = tmp_path / "two.dump"
    dump.write_text(
        "(0010,0010) PN []\n(0040,0100) SQ (Sequence with undefined length)\n"
        "(fffe,e000) na (Item)\n(0008,0060) CS [CT]\n(fffe,e00d) na\n"
        "(fffe,e000) na (Item)\n(0008,0060) CS [MR]\n(fffe,e00d) na\n(fffe,e0dd) na\n"
    )
    status, answers = ours(server, mwlfiles.dump2dcm(dump, tmp_path / "two.dcm", worklist=False))
    assert answers == [] and status != "Success"


def test_non_ascii_names_are_answered_in_utf8(server):
    created = server.post(
        "/pacs/api/orders",
        json={
            "patient_id": "JP-1",
            "patient_name": "Yamada^Taro=山田^太郎=やまだ^たろう",
            "modality": "MR",
            "scheduled_at": "2026-11-23T10:00",
            "procedure": "MR KNEE",
            "scheduled_station_aet": "MR1",
        },
    )
    assert created.status_code == 201, created.text
    status, answers = ours(server, keys=["PatientID=JP-1", "PatientName=", "SpecificCharacterSet="])
    assert status == "Success"
    assert answers == [
        {
            "SpecificCharacterSet": "ISO_IR 192",
            "PatientID": "JP-1",
            "PatientName": "Yamada^Taro=山田^太郎=やまだ^たろう",
        }
    ]
    status, answers = ours(server, keys=["SpecificCharacterSet=ISO_IR 192", "PatientName=*山田*", "PatientID="])
    assert [a["PatientID"] for a in answers] == ["JP-1"]


def test_cancelled_orders_leave_the_worklist(server):
    created = server.post(
        "/pacs/api/orders",
        json={
            "patient_id": "CX-1",
            "patient_name": "GONE^SOON",
            "modality": "CR",
            "scheduled_at": "2026-11-23T11:00",
            "procedure": "CHEST",
        },
    ).json()
    assert [a["PatientID"] for a in ours(server, keys=["PatientID=CX-1"])[1]] == ["CX-1"]
    server.post(f"/pacs/api/orders/{created['id']}/cancel").raise_for_status()
    assert ours(server, keys=["PatientID=CX-1"])[1] == []


def test_unknown_callers_are_refused(server):
    """DicomAlwaysAllowFindWorklist is false: only known AEs allowed to (AllowFindWorklist) may ask."""
    status, answers = ours(server, keys=["PatientName="], calling_aet="STRANGER")
    assert answers == [] and "aborted" in status.lower()


def test_what_the_database_narrows_by_never_loses_a_match(server):
    """Name prefixes go through a casefolded column, station wildcards through 'contains'."""
    for name, stations in (("Straße^Eva", "MR9"), ("STRAUSS^JOHANN", "MR9"), ("Other^Olga", "MR8\\CT9")):
        server.post(
            "/pacs/api/orders",
            json={
                "patient_id": "DBN-" + name[:3],
                "patient_name": name,
                "modality": "MR",
                "scheduled_at": "2026-11-27T09:00",
                "procedure": "MR",
                "scheduled_station_aet": stations,
            },
        ).raise_for_status()
    keys = ["SpecificCharacterSet=ISO_IR 192", "PatientName=STRASSE*", "PatientID="]
    assert [a["PatientName"] for a in ours(server, keys=keys)[1]] == ["Straße^Eva"]
    _, answers = ours(server, keys=["PatientName=", "ScheduledProcedureStepSequence[0].ScheduledStationAETitle=CT?"])
    assert [(a["PatientName"], a["ScheduledProcedureStepSequence"][0]["ScheduledStationAETitle"]) for a in answers] == [
        ("Other^Olga", "CT9")
    ]


def test_like_wildcards_in_a_name_are_plain_letters(server):
    server.post(
        "/pacs/api/orders",
        json={
            "patient_id": "LIKE-1",
            "patient_name": "A_B%C^D",
            "modality": "CT",
            "scheduled_at": "2026-11-27T09:00",
            "procedure": "CT",
        },
    ).raise_for_status()
    assert [a["PatientID"] for a in ours(server, keys=["PatientName=A_B%*", "PatientID="])[1]] == ["LIKE-1"]
    assert ours(server, keys=["PatientName=AXB*", "PatientID="])[1] == []


def test_a_worklist_query_is_audited_with_the_calling_node(server):
    """A modality reading the worklist reads patient data: the audit trail names the node."""
    status, answers = ours(server, keys=["PatientName=VIVALDI*"])
    assert status == "Success" and answers

    def entries():
        return server.index_rows(
            "SELECT username, role, action, details FROM audit_log WHERE action = 'dicom_query' AND username = ?",
            (f"dicom:{CALLING_AET}",),
        )

    found = server.wait_for(entries, what="the worklist query's audit entry")
    assert found[0]["role"] == "node" and "MWL C-FIND" in found[0]["details"]
