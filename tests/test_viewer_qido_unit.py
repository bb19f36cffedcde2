"""The QIDO layer's answer to a referrer's study search, and the viewer's app config:
plain Python, every spelling of the search generated."""

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from plugin.viewer.app_config import app_config
from plugin.viewer.qido import only_studies, referrer_search

MINE, MINE_TOO, OTHER = "1.2.826.0.1.3680043.8.498.1", "1.2.826.0.1.3680043.8.498.3", "1.2.826.0.1.3680043.8.498.2"
SCOPE = frozenset({MINE, MINE_TOO})
PATIENTS = {"P1": {MINE, OTHER}, "P2": {MINE_TOO}, "P3": {OTHER}}  # P1: one study in scope, a prior not
VIEWER_FIELDS = "00081030,00080060,00080090,00100030"


def search(query):
    return referrer_search(query, SCOPE, lambda patient: PATIENTS.get(patient, set()))


@pytest.mark.parametrize(
    "query",
    [
        {"StudyInstanceUID": MINE},
        {
            "StudyInstanceUID": MINE,
            "limit": "101",
            "offset": "0",
            "fuzzymatching": "false",
            "includefield": VIEWER_FIELDS,
        },
        {"StudyInstanceUID": f"{MINE}\\{MINE_TOO}"},
    ],
)
def test_the_searches_the_viewer_makes_for_a_study_are_answered(query):
    problem, studies = search(query)
    assert problem == "" and MINE in studies and studies <= SCOPE


def test_the_patient_search_is_answered_from_the_scope():
    """OHIF's search for the patient's other studies: the studies in scope, never the prior."""
    ohif = {"limit": "101", "offset": "0", "fuzzymatching": "false", "includefield": VIEWER_FIELDS}
    assert search(dict(ohif, **{"00100020": "P1"})) == ("", {MINE})
    assert search({"PatientID": "P2"}) == ("", {MINE_TOO})
    assert search({"00100020": "P3"}) == ("", set())  # nothing in scope: an empty answer, no refusal
    assert search({"00100020": "P1*"}) == ("", set())  # matched exactly: no wildcard
    assert search({"00100020": "P1", "StudyInstanceUID": MINE}) == ("", {MINE})
    assert search({"00100020": "P2", "StudyInstanceUID": MINE}) == ("", set())


@pytest.mark.parametrize(
    "query,refusal",
    [
        ({}, "name the study"),
        ({"limit": "10"}, "name the study"),
        ({"StudyInstanceUID": OTHER}, "this study is not in your scope"),
        ({"StudyInstanceUID": f"{MINE}\\{OTHER}"}, "this study is not in your scope"),
        ({"00100020": "P1", "StudyInstanceUID": OTHER}, "this study is not in your scope"),
        ({"StudyInstanceUID": "*"}, "query parameter"),
        ({"StudyInstanceUID": MINE, "0020000D": OTHER}, "query parameter"),
        ({"patientid": "P1"}, "query parameter"),
        ({"0010,0020": "P1"}, "query parameter"),
        ({"00100020": "P1", "PatientName": "*"}, "query parameter"),
        ({"00100020": ""}, "query parameter"),
        ({"00100020": "P1\\P3"}, "query parameter"),
        ({"00100020": "P1", "PatientID": "P3"}, "query parameter"),
        ({"00100020": "x" * 65}, "query parameter"),
    ],
)
def test_other_searches_are_refused_as_the_guard_words_it(query, refusal):
    problem, studies = search(query)
    assert problem.startswith(refusal) and studies == set()


NAMES = st.sampled_from(
    [
        "StudyInstanceUID",
        "0020000D",
        "0020000d",
        "20,d",
        "studyinstanceuid",
        "00100020",
        "PatientID",
        "patientid",
        "0010,0020",
        "PatientName",
        "AccessionNumber",
        "limit",
        "offset",
        "includefield",
        "fuzzymatching",
        "SeriesInstanceUID",
        "Modality",
        "",
    ]
)
VALUES = st.sampled_from(
    [
        "",
        " ",
        "*",
        "?",
        MINE,
        MINE_TOO,
        OTHER,
        f"{MINE}\\{OTHER}",
        f"{MINE},{OTHER}",
        "P1",
        "P2",
        "P3",
        "P1*",
        "10",
        "false",
        VIEWER_FIELDS,
        "CT",
    ]
) | st.text(max_size=12)


@settings(max_examples=500, deadline=None)
@given(query=st.dictionaries(NAMES, VALUES, max_size=5))
def test_a_referrer_never_gets_a_study_outside_the_scope(query):
    """Whatever the search, the answer is a refusal or studies in scope; a study the
    query names narrows the answer, it never widens it."""
    problem, studies = search(query)
    assert studies <= SCOPE
    if problem:
        assert studies == set()
    elif query.get("StudyInstanceUID"):
        assert studies <= set(query["StudyInstanceUID"].replace("\\", ",").split(","))


def test_only_studies_cuts_an_answer_to_the_studies_chosen():
    answer = json.dumps([{"0020000D": {"vr": "UI", "Value": [uid]}} for uid in (MINE, OTHER)]).encode()
    assert [item["0020000D"]["Value"][0] for item in json.loads(only_studies(answer, {MINE}))] == [MINE]
    assert json.loads(only_studies(b"[]", {MINE})) == []
    assert json.loads(only_studies(json.dumps([{"00100020": {"vr": "LO"}}]).encode(), {MINE})) == []


def test_the_viewer_opens_clean_and_leads_back():
    config = app_config()
    assert "investigationalUseDialog: { option: 'never' }" in config  # OHIF 3.13: no banner
    assert "'ohif.tours': { $set: [] }" in config  # no onboarding tour
    assert "whiteLabeling: { createLogoComponentFn: wayBack }" in config
    labels = json.loads(config.split("var LABELS = ", 1)[1].split(";\n", 1)[0])
    assert labels["worklist"] == "Worklist" and labels["report"] == "Report"
    assert "__LABELS__" not in config
