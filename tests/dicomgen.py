"""Synthetic DICOM for tests and benches: CT and MR series with valid UIDs,
consistent patient/study identifiers, real geometry and real pixels."""

import array
import math
from dataclasses import dataclass, field
from pathlib import Path

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, CTImageStorage, ExplicitVRLittleEndian, MRImageStorage, generate_uid


@dataclass
class StudySpec:
    patient_name: str = "DOE^JANE"
    patient_id: str = field(default_factory=lambda: "PID" + generate_uid()[-8:])
    birth_date: str = "19700101"
    sex: str = "F"
    accession: str = field(default_factory=lambda: "ACC" + generate_uid()[-8:])
    study_uid: str = field(default_factory=generate_uid)
    study_date: str = "20261123"
    study_time: str = "101500"
    description: str = "CT HEAD W/O CONTRAST"
    referring_physician: str = "SMITH^JOHN"
    institution: str = "Test Clinic"
    charset: str = "ISO_IR 100"
    frame_of_reference_uid: str = field(default_factory=generate_uid)


def _phantom(rows, cols, slice_index, offset, bits_signed):
    """A disc whose radius varies with the slice, over a gradient: non-uniform pixels."""
    values = array.array("h" if bits_signed else "H")
    cy, cx = rows / 2, cols / 2
    radius = min(rows, cols) * (0.25 + 0.15 * math.sin(slice_index / 3.0))
    for y in range(rows):
        dy2 = (y - cy) ** 2
        for x in range(cols):
            inside = dy2 + (x - cx) ** 2 < radius * radius
            values.append(offset + (x + y) % 64 + (400 if inside else 0))
    return values.tobytes()


def _base(spec, sop_class, modality, series_uid, series_number, series_description, body_part, index):
    ds = Dataset()
    ds.SpecificCharacterSet = spec.charset
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = generate_uid()
    ds.PatientName = spec.patient_name
    ds.PatientID = spec.patient_id
    ds.PatientBirthDate = spec.birth_date
    ds.PatientSex = spec.sex
    ds.StudyInstanceUID = spec.study_uid
    ds.StudyDate = spec.study_date
    ds.StudyTime = spec.study_time
    ds.AccessionNumber = spec.accession
    ds.StudyDescription = spec.description
    ds.ReferringPhysicianName = spec.referring_physician
    ds.InstitutionName = spec.institution
    ds.StudyID = "1"
    ds.SeriesInstanceUID = series_uid
    ds.SeriesNumber = series_number
    ds.SeriesDescription = series_description
    ds.Modality = modality
    ds.BodyPartExamined = body_part
    ds.InstanceNumber = index + 1
    ds.FrameOfReferenceUID = spec.frame_of_reference_uid
    return ds


def _file_meta(ds):
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    ds.file_meta = meta
    return ds


def _image(ds, rows, cols, spacing, thickness, z, pixels, signed):
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.ImagePositionPatient = [-(cols * spacing) / 2, -(rows * spacing) / 2, z]
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.PixelSpacing = [spacing, spacing]
    ds.SliceThickness = thickness
    ds.SliceLocation = z
    ds.Rows, ds.Columns = rows, cols
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 1 if signed else 0
    ds.PixelData = pixels
    return _file_meta(ds)


def ct_series(
    spec, slices=10, rows=64, cols=64, series_number=1, body_part="HEAD", description="AXIAL 5mm", pixels=None
):
    """A CT series; pass ``pixels`` (bytes) to reuse one image for speed."""
    series_uid = generate_uid()
    out = []
    for i in range(slices):
        ds = _base(spec, CTImageStorage, "CT", series_uid, series_number, description, body_part, i)
        ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = -1024, 1, "HU"
        ds.WindowCenter, ds.WindowWidth = 40, 400
        ds.KVP = 120
        data = pixels if pixels is not None else _phantom(rows, cols, i, 1000, True)
        out.append(_image(ds, rows, cols, 0.5, 5.0, i * 5.0, data, True))
    return out


def mr_series(spec, slices=10, rows=64, cols=64, series_number=1, body_part="KNEE", description="T1 SAG"):
    series_uid = generate_uid()
    out = []
    for i in range(slices):
        ds = _base(spec, MRImageStorage, "MR", series_uid, series_number, description, body_part, i)
        ds.MagneticFieldStrength = 1.5
        ds.RepetitionTime, ds.EchoTime = 500, 15
        ds.ScanningSequence, ds.SequenceVariant = "SE", "NONE"
        out.append(_image(ds, rows, cols, 0.8, 3.0, i * 3.0, _phantom(rows, cols, i, 100, False), False))
    return out


def write(datasets, folder):
    """Write datasets as DICOM files (Part 10); return their paths."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for ds in datasets:
        path = folder / f"{ds.SOPInstanceUID}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths
