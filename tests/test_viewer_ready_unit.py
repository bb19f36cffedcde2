"""The ingest screen's verdict on what the viewer needs, and the lossless changes
themselves, on pydicom-data's real files (the re-encoding that Orthanc's DCMTK
does in production is pydicom's here)."""

import io

import numpy
import pytest
import sample_images
from pydicom import dcmread
from pydicom.pixels import apply_color_lut
from pydicom.uid import ExplicitVRLittleEndian

from plugin.ingest_screen import CURRENT_SOP_CLASS, DROP_PIXEL_SPACING, PALETTE_TO_RGB, TRANSCODE, examine
from plugin.viewer_ready import make_viewer_ready


def part10(name):
    return sample_images.part10(sample_images.source_by_name(name))


def pydicom_transcode(calls):
    def transcode(data, syntax):
        calls.append(syntax)
        dataset = dcmread(io.BytesIO(data))
        pixels = dataset.pixel_array
        dataset.file_meta.TransferSyntaxUID = syntax
        dataset.PixelData = pixels.astype(pixels.dtype.newbyteorder("<")).tobytes()
        out = io.BytesIO()
        dataset.save_as(out, enforce_file_format=True, little_endian=True, implicit_vr=False)
        return out.getvalue()

    return transcode


EXPECTED = {
    "OBXXXX1A_expb": {TRANSCODE},
    "emri_small_big_endian": {TRANSCODE},
    "image_dfl": {TRANSCODE},
    "OT-PAL-8-face": {TRANSCODE},  # palette colour in implicit VR
    "gdcm-US-ALOKA-16": {TRANSCODE, PALETTE_TO_RGB},
    "RG1_UNCR": {DROP_PIXEL_SPACING},
    "RG1_J2KR": {DROP_PIXEL_SPACING},
    "color-pl": {CURRENT_SOP_CLASS},
}


@pytest.mark.parametrize("path", sample_images.source_files(), ids=lambda path: path.stem)
def test_the_screen_names_what_each_sample_needs(path):
    examination = examine(part10(path.stem))
    assert examination.refusal is None
    syntax = str(sample_images.read_dataset(path, stop_before_pixels=True).file_meta.TransferSyntaxUID)
    if path.stem in EXPECTED:
        assert examination.viewer_fixes == EXPECTED[path.stem]
    elif syntax == "1.2.840.10008.1.2.2":  # big endian
        assert TRANSCODE in examination.viewer_fixes, path.stem
    else:
        assert TRANSCODE not in examination.viewer_fixes, path.stem


def test_a_file_that_needs_nothing_is_untouched():
    data = part10("693_UNCR")
    assert examine(data).viewer_fixes == frozenset()
    assert make_viewer_ready(data, frozenset(), pydicom_transcode([])) is data


def test_a_zero_pixel_spacing_is_removed_and_nothing_else_changes():
    data = part10("RG1_UNCR")
    ready = dcmread(io.BytesIO(make_viewer_ready(data, examine(data).viewer_fixes, pydicom_transcode([]))))
    original = dcmread(io.BytesIO(data))
    assert "PixelSpacing" not in ready
    assert ready.PixelData == original.PixelData
    assert ready.SOPInstanceUID == original.SOPInstanceUID
    del original.PixelSpacing
    assert ready == original


def test_a_segmented_palette_becomes_the_exact_colours_it_maps_to():
    data = part10("gdcm-US-ALOKA-16")
    calls = []
    ready = dcmread(io.BytesIO(make_viewer_ready(data, examine(data).viewer_fixes, pydicom_transcode(calls))))
    assert calls == [ExplicitVRLittleEndian]
    original = dcmread(io.BytesIO(data))
    expected = apply_color_lut(original.pixel_array, original)
    assert ready.PhotometricInterpretation == "RGB" and ready.SamplesPerPixel == 3
    assert ready.BitsAllocated == 8  # this palette's 16-bit entries are 8-bit colours times 257
    assert numpy.array_equal(ready.pixel_array.astype(numpy.uint32) * 257, expected)
    assert "SegmentedRedPaletteColorLookupTableData" not in ready
    assert (
        examine(make_viewer_ready(data, examine(data).viewer_fixes, pydicom_transcode([]))).viewer_fixes == frozenset()
    )


def test_a_retired_ultrasound_sop_class_becomes_the_one_that_replaced_it():
    data = part10("color-pl")
    ready = dcmread(io.BytesIO(make_viewer_ready(data, examine(data).viewer_fixes, pydicom_transcode([]))))
    assert ready.SOPClassUID == ready.file_meta.MediaStorageSOPClassUID == "1.2.840.10008.5.1.4.1.1.6.1"
    assert ready.PixelData == dcmread(io.BytesIO(data)).PixelData
