"""The signed report as a DICOM Encapsulated PDF instance in its own series
of the study (modality DOC), so Query/Retrieve, DICOMweb and any viewer or
PACS that later receives the study carry the report with the images."""

import io

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, ExplicitVRLittleEndian

ENCAPSULATED_PDF = "1.2.840.10008.5.1.4.1.1.104.1"
SERIES_NUMBER_BASE = 9000  # report series sort after the images


def encapsulated_pdf(pdf, study, sop_uid, series_uid, series_number, title, signed_at):
    """Part-10 bytes of an Encapsulated PDF for ``study`` (Orthanc's study JSON tags),
    signed at ``signed_at``: an aware time in the clinic's zone, written as DICOM's
    local date and time with its offset."""
    tags, patient = study.get("MainDicomTags", {}), study.get("PatientMainDicomTags", {})
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.SOPClassUID = ENCAPSULATED_PDF
    ds.SOPInstanceUID = sop_uid
    for keyword in ("PatientName", "PatientID", "PatientBirthDate", "PatientSex"):
        setattr(ds, keyword, patient.get(keyword, ""))
    for keyword in (
        "StudyInstanceUID",
        "StudyDate",
        "StudyTime",
        "AccessionNumber",
        "ReferringPhysicianName",
        "StudyID",
        "StudyDescription",
    ):
        setattr(ds, keyword, tags.get(keyword, ""))
    ds.Modality = "DOC"
    ds.SeriesInstanceUID = series_uid
    ds.SeriesNumber = SERIES_NUMBER_BASE + series_number
    ds.SeriesDescription = title
    ds.Manufacturer = "PACS"
    ds.ConversionType = "WSD"
    ds.InstanceNumber = 1
    ds.ContentDate = signed_at.strftime("%Y%m%d")
    ds.ContentTime = signed_at.strftime("%H%M%S")
    ds.AcquisitionDateTime = signed_at.strftime("%Y%m%d%H%M%S")
    ds.TimezoneOffsetFromUTC = signed_at.strftime("%z")
    ds.BurnedInAnnotation = "YES"
    ds.DocumentTitle = title
    ds.ConceptNameCodeSequence = Sequence([_code("18748-4", "LN", "Diagnostic imaging report")])
    ds.VerificationFlag = "VERIFIED"
    ds.MIMETypeOfEncapsulatedDocument = "application/pdf"
    ds.EncapsulatedDocument = pdf + (b"\x00" if len(pdf) % 2 else b"")
    ds.EncapsulatedDocumentLength = len(pdf)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ENCAPSULATED_PDF
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    ds.file_meta = meta
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def _code(value, scheme, meaning):
    code = Dataset()
    code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = value, scheme, meaning
    return code
