"""Lossless changes at ingest that let the viewer show every image.

OHIF 3.13 over Orthanc's DICOMweb shows nothing for some images that are fine
(measured with pydicom-data, tests/test_viewer_codecs.py). The ingest screen
(`plugin.ingest_screen.examine`) says which of these an incoming file needs;
`make_viewer_ready` makes them before Orthanc stores it:

- big endian and deflated files (DICOMweb answers 500 for their frames), and
  palette colour in implicit VR (Cornerstone draws nothing): re-encoded as
  Explicit VR Little Endian by Orthanc's own DCMTK. Every value is unchanged.
- a segmented palette (Cornerstone has no decoder for it): the colours it maps
  to, as RGB samples of the palette's own bit depth, so every displayed colour
  is exactly the one the palette gives.
- a Pixel Spacing of zero or less (Cornerstone lays the image out with no
  size): removed; it carried no measurement.
- the retired ultrasound SOP classes of 1993 (OHIF has no display for them):
  the SOP class that replaced each (PS3.3 A.6, A.7), same attributes.

SOP Instance UIDs stay: the archive holds one instance, in a form the viewer
shows. `Pacs.ViewerConversion: false` stores every file byte for byte as sent.
"""

import io
import logging

import numpy
import pydicom
from pydicom.pixels import apply_color_lut

from plugin.ingest_screen import (
    CURRENT_SOP_CLASS,
    DROP_PIXEL_SPACING,
    EXPLICIT_LITTLE_ENDIAN,
    PALETTE_TO_RGB,
    RETIRED_SOP_CLASSES,
    TRANSCODE,
)

LOGGER = logging.getLogger(__name__)

_PALETTE_ELEMENTS = (
    "RedPaletteColorLookupTableDescriptor",
    "GreenPaletteColorLookupTableDescriptor",
    "BluePaletteColorLookupTableDescriptor",
    "RedPaletteColorLookupTableData",
    "GreenPaletteColorLookupTableData",
    "BluePaletteColorLookupTableData",
    "SegmentedRedPaletteColorLookupTableData",
    "SegmentedGreenPaletteColorLookupTableData",
    "SegmentedBluePaletteColorLookupTableData",
    "PaletteColorLookupTableUID",
)


def make_viewer_ready(data, fixes, transcode):
    """``data`` (Part-10 bytes) with ``fixes`` made; ``transcode(data, syntax_uid)``
    re-encodes a file (Orthanc's DCMTK, through the host adapter)."""
    if TRANSCODE in fixes:
        data = transcode(data, EXPLICIT_LITTLE_ENDIAN)
    if fixes & {PALETTE_TO_RGB, DROP_PIXEL_SPACING, CURRENT_SOP_CLASS}:
        data = _edit(data, fixes)
    return data


def _edit(data, fixes):
    dataset = pydicom.dcmread(io.BytesIO(data))
    if DROP_PIXEL_SPACING in fixes and "PixelSpacing" in dataset:
        del dataset.PixelSpacing
    if PALETTE_TO_RGB in fixes:
        _palette_to_rgb(dataset)
    if CURRENT_SOP_CLASS in fixes:
        current = RETIRED_SOP_CLASSES.get(str(dataset.SOPClassUID), dataset.SOPClassUID)
        dataset.SOPClassUID = dataset.file_meta.MediaStorageSOPClassUID = current
    out = io.BytesIO()
    dataset.save_as(out, enforce_file_format=True)
    return out.getvalue()


def _palette_to_rgb(dataset):
    rgb = _exact_eight_bits(apply_color_lut(dataset.pixel_array, dataset))
    bits = 8 if rgb.dtype == numpy.uint8 else 16
    rgb = rgb.astype(numpy.uint8 if bits == 8 else numpy.dtype("<u2"))
    for keyword in _PALETTE_ELEMENTS:
        if keyword in dataset:
            delattr(dataset, keyword)
    dataset.PhotometricInterpretation = "RGB"
    dataset.SamplesPerPixel = 3
    dataset.PlanarConfiguration = 0
    dataset.BitsAllocated = dataset.BitsStored = bits
    dataset.HighBit = bits - 1
    dataset.PixelRepresentation = 0
    dataset.PixelData = numpy.ascontiguousarray(rgb).tobytes()
    dataset["PixelData"].VR = "OB" if bits == 8 else "OW"


def _exact_eight_bits(rgb):
    """8-bit colours where a 16-bit palette only holds 8-bit ones (``v * 257`` or
    ``v << 8``, as most do): viewers window 16-bit RGB as if it were 8-bit and
    show it white. Any other 16-bit palette stays 16-bit."""
    if rgb.dtype == numpy.uint8:
        return rgb
    if not (rgb % 257).any():
        return (rgb // 257).astype(numpy.uint8)
    if not (rgb & 0xFF).any():
        return (rgb >> 8).astype(numpy.uint8)
    return rgb
