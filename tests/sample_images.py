"""The real images of pydicom-data (and pydicom's one deflated file), each made
its own study so that a test can open it alone: CT, MR, CR, US, NM, secondary
capture, in every transfer syntax they come in (native little and big endian,
deflated, JPEG baseline and lossless, JPEG-LS, JPEG 2000, RLE).

Several of them share a SOPInstanceUID (RG1_J2KR, RG1_UNCI and RG1_UNCR are one
image in three syntaxes), and Orthanc keeps the first it gets: new UIDs make
each file an image of its own. Pixel data and transfer syntax stay as they are.
"""

import io
import warnings
from dataclasses import dataclass
from pathlib import Path

import data_store
import pydicom
import pydicom.data
from pydicom.uid import ImplicitVRLittleEndian, generate_uid

DATA = Path(data_store.__file__).parent / "data"
DEFLATED = Path(pydicom.data.__file__).parent / "test_files" / "image_dfl.dcm"
# Not an image of its own: OHIF draws a segmentation over the series it refers
# to, which pydicom-data does not carry. Its thumbnail is still checked.
SEGMENTATION = "1.2.840.10008.5.1.4.1.1.66.4"
# A truncated file: the ingest screen refuses it (tests/test_ingest_fuzz.py).
REFUSED = {"emri_small_jpeg_2k_lossless_too_short.dcm"}


@dataclass(frozen=True)
class Sample:
    name: str
    path: Path
    study_uid: str
    series_uid: str
    transfer_syntax: str
    modality: str

    @property
    def is_image(self):
        """Whether OHIF shows it as an image by itself (a segmentation it does not)."""
        return self.modality != "SEG"


def source_files():
    """Every Part-10 file with pixel data that Orthanc stores, sorted by name."""
    files = []
    for path in sorted(DATA.glob("*.dcm")) + [DEFLATED]:
        if path.name in REFUSED:
            continue
        if "Rows" in read_dataset(path, stop_before_pixels=True):
            files.append(path)
    return files


def read_dataset(path, **options):
    """A data set as a sender would send it: OT-PAL-8-face.dcm has no Part-10
    header (no preamble, no meta group), so it gets the header a C-STORE
    receiver writes, in the syntax it is encoded in (implicit VR little endian)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dataset = pydicom.dcmread(path, force=True, **options)
    if "TransferSyntaxUID" not in dataset.file_meta:
        dataset.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
        dataset.file_meta.MediaStorageSOPClassUID = dataset.SOPClassUID
    return dataset


def as_own_study(path, folder):
    """Copy `path` into `folder` with new Study, Series and SOP Instance UIDs."""
    dataset = read_dataset(path)
    syntax = str(dataset.file_meta.TransferSyntaxUID)
    study_uid, series_uid, sop_uid = generate_uid(), generate_uid(), generate_uid()
    dataset.StudyInstanceUID, dataset.SeriesInstanceUID, dataset.SOPInstanceUID = study_uid, series_uid, sop_uid
    dataset.file_meta.MediaStorageSOPInstanceUID = sop_uid
    dataset.PatientName = f"Sample^{path.stem}"
    dataset.PatientID = f"SAMPLE-{path.stem}"[:64]
    dataset.StudyDescription = path.stem
    dataset.Modality = dataset.get("Modality") or "OT"
    out = Path(folder) / path.name
    dataset.save_as(out, enforce_file_format=True)
    written = str(pydicom.dcmread(out, stop_before_pixels=True).file_meta.TransferSyntaxUID)
    assert written == syntax, f"{path.name}: written as {written}, not {syntax}"
    return Sample(path.stem, out, study_uid, series_uid, syntax, dataset.Modality)


def part10(path):
    """The Part-10 bytes a sender would send of ``path``."""
    out = io.BytesIO()
    read_dataset(path).save_as(out, enforce_file_format=True)
    return out.getvalue()


def source_by_name(stem):
    return next(path for path in source_files() if path.stem == stem)


def samples(folder):
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    return [as_own_study(path, folder) for path in source_files()]
