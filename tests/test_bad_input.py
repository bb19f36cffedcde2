"""Bad input never crashes Orthanc nor loses what it stores: non-DICOM and
truncated files over HTTP and C-STORE get a 4xx or a DICOM failure status;
odd but valid studies (empty, very long or malformed tags, other character
sets, real modality files) reach the index as correct UTF-8 text."""

import contextlib
import io
import warnings
from pathlib import Path

import dicomgen
import pytest
from pydicom import dcmread
from pydicom.data import get_charset_files, get_testdata_file
from pydicom.filereader import read_file_meta_info
from pynetdicom import AE, DEFAULT_TRANSFER_SYNTAXES, _config
from pynetdicom.sop_class import CTImageStorage

# Orthanc does not answer a C-STORE whose data set it cannot parse (it waits
# for the association to time out): give up on an answer after this long.
NO_ANSWER_SECONDS = 2


# --- helpers ------------------------------------------------------------------


@contextlib.contextmanager
def lenient():
    """Silence pydicom's warnings about values that break VR rules on purpose."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def dicom_bytes(tmp_path, spec=None):
    """A valid one-instance CT study as Part 10 bytes, and its spec."""
    spec = spec or dicomgen.StudySpec()
    path = dicomgen.write(dicomgen.ct_series(spec, slices=1), tmp_path)[0]
    return path.read_bytes(), spec


def data_set_offset(data):
    """Where the data set starts: after the preamble, "DICM" and the file meta group,
    whose first element (12 bytes) gives the length of the rest."""
    meta = dcmread(io.BytesIO(data), stop_before_pixels=True).file_meta
    return 128 + 4 + 12 + meta.FileMetaInformationGroupLength


def c_store(pacs, payload, transfer_syntaxes=DEFAULT_TRANSFER_SYNTAXES):
    """C-STORE one CT instance (a Dataset or a file's path) on its own association.

    Return the status, or None when the association ended without one.
    """
    ae = AE(ae_title="BADSENDER")
    ae.add_requested_context(CTImageStorage, transfer_syntaxes)
    ae.dimse_timeout = NO_ANSWER_SECONDS
    assoc = ae.associate("127.0.0.1", pacs.dicom_port, ae_title=pacs.aet)
    assert assoc.is_established
    try:
        status = assoc.send_c_store(payload)
    finally:
        if assoc.is_established:
            assoc.release()
    return status.Status if "Status" in status else None


def c_store_raw(pacs, path, monkeypatch):
    """C-STORE a file's data set bytes as they are, unparsed, as a broken modality would.

    Bytes sent as they are need a context of the file's own transfer syntax, so only that
    one is offered: of several, Orthanc 1.10.1 accepts Explicit VR, 1.12.7 the first."""
    monkeypatch.setattr(_config, "STORE_SEND_CHUNKED_DATASET", True)
    return c_store(pacs, path, [read_file_meta_info(path).TransferSyntaxUID])


def is_refused(status):
    """No answer at all, or a DICOM failure status (0xA000 and up); never success or warning."""
    return status is None or status >= 0xA000


def sop_instance_known(pacs, sop_instance_uid):
    answer = pacs.post("/tools/lookup", data=sop_instance_uid)
    return any(item["Type"] == "Instance" for item in answer.json())


def assert_still_serving(pacs, earlier):
    """Orthanc and the plugin answer, and the study stored before is whole."""
    assert pacs.get("/pacs/health").status_code == 200
    spec, row = earlier
    assert len(pacs.get(f"/studies/{row['orthanc_id']}/instances").json()) == row["instance_count"]
    assert pacs.indexed_study(spec.study_uid)["instance_count"] == row["instance_count"]


# --- fixtures --------------------------------------------------------------------


@pytest.fixture(scope="module")
def earlier(pacs, tmp_path_factory):
    """A study stored and indexed before any bad input: (spec, index row)."""
    spec = dicomgen.StudySpec(description="STORED BEFORE BAD INPUT")
    pacs.storescu(dicomgen.write(dicomgen.ct_series(spec, slices=3), tmp_path_factory.mktemp("earlier")))
    return spec, pacs.wait_indexed(spec.study_uid, instances=3)


@pytest.fixture
def valid_file(tmp_path):
    return dicom_bytes(tmp_path)


# --- HTTP upload -------------------------------------------------------------------


def _truncated(data):
    return data[: len(data) // 2]


def _meta_only(data):
    return data[: data_set_offset(data)]


def _cut_in_meta(data):
    return data[:200]


def _garbage_data_set(data):
    return data[: data_set_offset(data)] + b"not a DICOM data set " * 20


BAD_BODIES = {  # each made from the bytes of a valid file
    "empty": lambda data: b"",
    "text": lambda data: b"hello, this is not DICOM\n" * 40,
    "zip-header": lambda data: b"PK\x03\x04" + bytes(200),  # Orthanc also takes ZIP archives
    "png": lambda data: b"\x89PNG\r\n\x1a\n" + bytes(200),
    "truncated": _truncated,
    "meta-only": _meta_only,
    "cut-in-meta": _cut_in_meta,
    "garbage-data-set": _garbage_data_set,
}


@pytest.mark.parametrize("bad", BAD_BODIES)
def test_http_upload_of_bad_bytes_is_a_4xx(pacs, earlier, valid_file, bad):
    data, spec = valid_file
    before = pacs.orthanc_studies()

    answer = pacs.post("/instances", data=BAD_BODIES[bad](data))

    assert 400 <= answer.status_code < 500, (answer.status_code, answer.text)
    assert pacs.orthanc_studies() == before
    assert pacs.indexed_study(spec.study_uid) is None
    assert_still_serving(pacs, earlier)


# --- C-STORE ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "damage", [_truncated, _garbage_data_set, _meta_only], ids=["truncated", "garbage-data-set", "empty-data-set"]
)
def test_cstore_of_a_damaged_file_is_refused(pacs, earlier, tmp_path, monkeypatch, damage):
    data, _ = dicom_bytes(tmp_path / "valid")
    damaged = tmp_path / "damaged.dcm"
    damaged.write_bytes(damage(data))
    sop_instance_uid = dcmread(io.BytesIO(data), stop_before_pixels=True).SOPInstanceUID

    assert is_refused(c_store_raw(pacs, damaged, monkeypatch))

    assert not sop_instance_known(pacs, sop_instance_uid)
    assert_still_serving(pacs, earlier)


@pytest.mark.parametrize(
    "damage",
    [
        lambda ds: delattr(ds, "StudyInstanceUID"),
        lambda ds: setattr(ds, "SeriesInstanceUID", ""),
    ],
    ids=["no-study-uid", "empty-series-uid"],
)
def test_cstore_without_a_required_uid_is_refused(pacs, earlier, damage):
    dataset = dicomgen.ct_series(dicomgen.StudySpec(), slices=1)[0]
    damage(dataset)

    assert is_refused(c_store(pacs, dataset))

    assert not sop_instance_known(pacs, dataset.SOPInstanceUID)
    assert_still_serving(pacs, earlier)


def test_valid_study_after_refused_ones_is_indexed(pacs, earlier, tmp_path, monkeypatch):
    data, _ = dicom_bytes(tmp_path / "bad")
    damaged = tmp_path / "damaged.dcm"
    damaged.write_bytes(_truncated(data))
    assert is_refused(c_store_raw(pacs, damaged, monkeypatch))

    spec = dicomgen.StudySpec()
    pacs.storescu(dicomgen.write(dicomgen.ct_series(spec, slices=2), tmp_path / "good"))
    pacs.wait_indexed(spec.study_uid, instances=2)
    assert_still_serving(pacs, earlier)


def test_cstore_with_too_short_pixel_data_is_refused(pacs, earlier):
    """Orthanc would store it and its decoders trust Rows x Columns (CVE-2026-5437..5445):
    the ingest screen refuses it with "cannot understand"."""
    spec = dicomgen.StudySpec()
    dataset = dicomgen.ct_series(spec, slices=1)[0]
    dataset.PixelData = b"\x01\x02"

    assert c_store(pacs, dataset) == 0xC000
    assert not sop_instance_known(pacs, dataset.SOPInstanceUID)
    assert_still_serving(pacs, earlier)


# --- odd tags and character sets ---------------------------------------------------------

EMPTY = dict(
    patient_name="",
    patient_id="",
    birth_date="",
    sex="",
    accession="",
    study_date="",
    study_time="",
    description="",
    referring_physician="",
    institution="",
)
LONG = dict(
    description="D" * 250,
    patient_name="LONG^" + "N" * 3000,
    accession="Q" * 300,
    institution="I" * 5000,
    study_date="2026-13-45",
)
CHARSETS = {
    "utf8": ("ISO_IR 192", "Ünal^Özlem=Γιώργος^Παπαδόπουλος", "胸部 CT Αξονική"),
    "latin1": ("ISO_IR 100", "Gärtner^Zoë", "Épaule droite"),
    "greek": ("ISO_IR 126", "Διονυσιος", "Θώρακας"),
    "cyrillic": ("ISO_IR 144", "Люксембург^Иван", "Грудная клетка"),
    "japanese": (["", "ISO 2022 IR 87"], "ヤマダ^タロウ=山田^太郎=やまだ^たろう", "胸部 CT"),
    "korean": (["", "ISO 2022 IR 149"], "Hong^Gildong=洪^吉洞=홍^길동", "흉부 CT"),
}


def _send_study(pacs, spec, customise=None):
    with lenient():
        dataset = dicomgen.ct_series(spec, slices=1)[0]
        if customise:
            customise(dataset)
        assert c_store(pacs, dataset) == 0
    return spec


def _utf8_declared_latin1_sent(pacs, tmp_path):
    """A modality that says UTF-8 but writes Latin-1 bytes (invalid UTF-8)."""
    spec = dicomgen.StudySpec(patient_name="MXller^Anna", charset="ISO_IR 192")
    data, _ = dicom_bytes(tmp_path, spec)
    assert pacs.post("/instances", data=data.replace(b"MXller", b"M\xfcller")).status_code == 200
    return spec


@pytest.fixture(scope="module")
def odd_studies(pacs, tmp_path_factory):
    """Every odd study, sent at once so they become stable together: {name: spec}."""
    specs = {
        "empty": _send_study(pacs, dicomgen.StudySpec(**EMPTY)),
        "long": _send_study(pacs, dicomgen.StudySpec(**LONG)),
        "bad-numbers": _send_study(
            pacs,
            dicomgen.StudySpec(study_date="20261345", birth_date="1970"),
            lambda ds: setattr(ds, "SeriesNumber", "9" * 20),
        ),
        "bad-utf8": _utf8_declared_latin1_sent(pacs, tmp_path_factory.mktemp("badutf8")),
    }
    for name, (charset, patient_name, description) in CHARSETS.items():
        specs[name] = _send_study(
            pacs, dicomgen.StudySpec(charset=charset, patient_name=patient_name, description=description)
        )
    return specs


def test_empty_tags_are_indexed_as_empty(pacs, odd_studies):
    row = pacs.wait_indexed(odd_studies["empty"].study_uid, instances=1)
    assert row["patient_name"] == row["patient_dicom_id"] == row["patient_sex"] == ""
    assert row["accession_number"] == row["description"] == row["study_time"] == ""
    assert row["referring_physician"] == row["institution_name"] == ""
    assert row["study_date"] is None and row["patient_birth_date"] is None
    assert (row["modalities"], row["instance_count"]) == ("CT", 1)


def test_very_long_tags_are_indexed(pacs, odd_studies):
    """Orthanc keeps main tags of up to 256 characters and leaves longer ones out."""
    row = pacs.wait_indexed(odd_studies["long"].study_uid, instances=1)
    assert row["description"] == "D" * 250
    assert row["patient_name"] == row["accession_number"] == row["institution_name"] == ""
    assert row["study_date"] is None


def test_malformed_dates_and_numbers_are_indexed_as_null(pacs, odd_studies):
    row = pacs.wait_indexed(odd_studies["bad-numbers"].study_uid, instances=1)
    assert row["study_date"] is None and row["patient_birth_date"] is None
    series = pacs.index_rows("SELECT number FROM series WHERE study_id = ?", (row["id"],))
    assert series == [{"number": None}]


def test_character_sets_reach_the_index_as_utf8(pacs, odd_studies):
    wrong = {}
    for name, (_, patient_name, description) in CHARSETS.items():
        row = pacs.wait_indexed(odd_studies[name].study_uid, instances=1)
        if (row["patient_name"], row["description"]) != (patient_name, description):
            wrong[name] = (row["patient_name"], row["description"])
    assert wrong == {}


def test_bytes_invalid_in_the_declared_character_set_do_not_stop_indexing(pacs, odd_studies):
    row = pacs.wait_indexed(odd_studies["bad-utf8"].study_uid, instances=1)
    assert row["patient_name"].startswith("M") and row["patient_name"].endswith("ller^Anna")


# --- real files ----------------------------------------------------------------------------

REAL_FILES = ["CT_small.dcm", "MR_small.dcm", "US1_UNCR.dcm", "RG1_UNCR.dcm"]
CHARSET_FILES = ["chrH31.dcm", "chrI2.dcm", "chrArab.dcm", "chrHbrw.dcm", "chrGerm.dcm", "chrX1.dcm", "chrX2.dcm"]


def test_real_modality_files_are_indexed(pacs, earlier):
    paths = [get_testdata_file(name) for name in REAL_FILES]
    pacs.storescu(paths, calling_aet="REALFILES")
    for path in paths:
        dataset = dcmread(path, stop_before_pixels=True)
        row = pacs.wait_indexed(dataset.StudyInstanceUID, instances=1)
        assert row["patient_name"] == str(dataset.PatientName)
        assert dataset.Modality in row["modalities"].split("\\")
    assert_still_serving(pacs, earlier)


def _significant(person_name):
    """Trailing empty component groups of a PN mean nothing (PS3.5 6.2.1); pydicom drops them."""
    return person_name.rstrip("=")


def test_real_character_set_files_match_pydicom(pacs):
    """Orthanc's UTF-8 (what the index holds) equals pydicom's decoding of each file."""
    expected = {}
    for name in CHARSET_FILES:
        data = Path(get_charset_files(name)[0]).read_bytes()
        assert pacs.post("/instances", data=data).status_code == 200, name
        dataset = dcmread(io.BytesIO(data), stop_before_pixels=True)
        expected[name] = (dataset.StudyInstanceUID, str(dataset.PatientName))
    wrong = {}
    for name, (study_uid, patient_name) in expected.items():
        row = pacs.wait_indexed(study_uid, instances=1)
        if _significant(row["patient_name"]) != patient_name:
            wrong[name] = (row["patient_name"], patient_name)
    assert wrong == {}
