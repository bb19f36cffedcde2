"""Issue 12's pieces without a server: one person-name formatter and its two input
forms, the audit page's readable actions and patient filter, the PDF's file name."""

import datetime
import importlib

import pytest
from fakes import FakeOrthanc, orthanc_series, principal, stored

from plugin import audit as audit_module
from plugin.auth.pages import AUDIT_ACTIONS, _detail_text
from plugin.clock import Clock
from plugin.dicomnames import display_name, name_parts, pn_from_parts, pn_from_text
from plugin.models import Series, Study, StudyTerm
from plugin.reports.pdf import file_name
from plugin.worklist import query


@pytest.mark.parametrize(
    "value, shown",
    [
        ("Müller^Anna", "MÜLLER, Anna"),
        ("DOE^JANE", "DOE, JANE"),
        ("Yamada^Taro=山田^太郎", "YAMADA, Taro (山田 太郎)"),
        ("Yamada^Taro=山田^太郎=やまだ^たろう", "YAMADA, Taro (山田 太郎 / やまだ たろう)"),
        ("Smith^John^A^Dr.^Jr.", "Dr. SMITH, John A, Jr."),
        ("=山田^太郎", "山田 太郎"),
        ("O'Neill^Mary", "O'NEILL, Mary"),
        ("SMITH", "SMITH"),
        ("", ""),
        ("^^", ""),
    ],
)
def test_one_formatter_for_every_person_name(value, shown):
    assert display_name(value) == shown


@pytest.mark.parametrize(
    "family, given, pn",
    [
        ("Doe", "Jane", "Doe^Jane"),
        ("  Doe ", " Jane  Mary ", "Doe^Jane Mary"),
        ("Doe", "", "Doe"),
        ("Do^e", "Ja=ne", "Do e^Ja ne"),  # a caret or "=" typed in a field cannot change the name's structure
    ],
)
def test_family_and_given_fields_make_a_dicom_name(family, given, pn):
    assert pn_from_parts(family, given) == pn


def test_a_name_splits_into_the_two_fields_and_back():
    for pn in ("Doe^Jane", "Page^Paula", "Smith^John^A"):
        assert pn_from_parts(*name_parts(pn)) in (pn, "Smith^John A")
    assert name_parts("Smith^John^A^Dr.^Jr.") == ("Smith", "John A")


@pytest.mark.parametrize(
    "typed, pn",
    [
        ("Smith, John", "Smith^John"),
        ("SMITH^JOHN", "SMITH^JOHN"),
        ("Smith", "Smith"),
        ("  Smith ,  John Paul ", "Smith^John Paul"),
        ("Who^Dr", "Who^Dr"),
    ],
)
def test_a_referrer_name_typed_in_words_or_as_dicom(typed, pn):
    assert pn_from_text(typed) == pn


def test_every_audit_action_reads_in_words():
    assert set(AUDIT_ACTIONS) == set(audit_module.ACTIONS)
    assert all(label[0].isupper() and "_" not in label for label in AUDIT_ACTIONS.values())


def test_audit_details_read_as_name_value_pairs():
    assert _detail_text({"taken_over_from": "rad1", "version": 3}) == "taken over from: rad1; version: 3"
    assert _detail_text(None) is None and _detail_text("as stored") == "as stored"


# --- the report's PDF series is a document, not images; the description is searched -------------


def test_a_document_series_is_not_an_image_nor_a_modality(index_db):
    orthanc = FakeOrthanc()
    orthanc.add(
        "s1",
        series=[
            orthanc_series(instances=3, body_part="KNEE"),
            orthanc_series(number="9001", modality="DOC", body_part="", instances=1),
        ],
        StudyDescription="MR KNEE LEFT",
    )
    stored("s1", orthanc)
    row = Study.get(Study.orthanc_id == "s1")
    assert (row.modalities, row.body_parts, row.series_count, row.instance_count) == ("CT", "KNEE", 1, 3)
    assert sorted(s.modality for s in row.series) == ["CT", "DOC"]  # kept: the study page shows it as the report
    words = {t.term for t in StudyTerm.select().where(StudyTerm.study == row.id)}
    assert {"knee", "left", "mr"} <= words


def test_the_migration_recounts_studies_and_adds_descriptions_to_the_search(index_db):
    orthanc = FakeOrthanc()
    orthanc.add(
        "s1",
        series=[orthanc_series(instances=3), orthanc_series(number="2", modality="DOC", instances=1)],
        StudyDescription="CT KNEE",
    )
    stored("s1", orthanc)
    row = Study.get(Study.orthanc_id == "s1")
    # As an older index had it: the DOC series counted, the description not searchable.
    Study.update(modalities="CT\\DOC", series_count=2, instance_count=4, search_text="doe jane pid1 acc1").where(
        Study.id == row.id
    ).execute()
    StudyTerm.delete().where(StudyTerm.study == row.id, StudyTerm.term.in_(["ct", "knee"])).execute()
    importlib.import_module("plugin.migrations.m0009_documents_and_descriptions").up(index_db)
    row = Study.get_by_id(row.id)
    assert (row.modalities, row.series_count, row.instance_count) == ("CT", 1, 3)
    assert Series.select().where(Series.study == row.id).count() == 2
    filters = query.parse_filters({"q": "knee"}, None)
    items, total = query.search(filters, principal("admin"))
    assert total == 1 and items[0]["description"] == "CT KNEE"


# --- the PDF's file name ------------------------------------------------------------------


@pytest.mark.parametrize(
    "study, signed_at, name",
    [
        (
            {
                "patient_name": "Müller^Anna",
                "study_date": "2026-12-04",
                "accession_number": "ACC-200",
                "patient_id": "P1",
            },
            datetime.datetime(2026, 12, 5, 9),
            "MULLER_Anna_2026-12-04_ACC-200_report.pdf",
        ),
        (
            {"patient_name": "山田^太郎", "study_date": None, "accession_number": "", "patient_id": "P/2 x"},
            datetime.datetime(2026, 12, 3, 10),
            "P-2-x_2026-12-03_report.pdf",
        ),
        (
            {"patient_name": "O'Neill^Mary Ann", "study_date": None, "accession_number": "A 1/../x", "patient_id": ""},
            None,
            "O-NEILL_Mary-Ann_2026-12-06_A-1-x_report.pdf",
        ),
    ],
)
def test_the_pdf_is_named_for_filing(study, signed_at, name):
    noon = datetime.datetime(2026, 12, 6, 12, tzinfo=datetime.timezone.utc).timestamp()
    assert file_name({"study": study, "signed_at": signed_at}, Clock(datetime.timezone.utc, lambda: noon)) == name
