"""Series thumbnails: a small PNG of a series' middle image.

Rendered here, with pydicom's decoders (numpy; Pillow for JPEG baseline and
JPEG 2000; pylibjpeg's libjpeg for JPEG lossless and JPEG-LS; its own RLE),
not by Orthanc's /rendered: Orthanc 1.10.1 cannot render 16 and 32-bit RGB,
YBR_FULL, multi-frame palette images or colour JPEG 2000, and drew NM and some
CT images black for want of a window. One renderer gives every modality the
same grey scale: the image's first VOI window when it has one, else its 1st
to 99th percentile, inverted for MONOCHROME1.
"""

import collections
import io
import logging
import threading

import numpy
from PIL import Image
from pydicom import dcmread
from pydicom.multival import MultiValue
from pydicom.pixels import apply_color_lut, apply_rescale, pixel_array

LOGGER = logging.getLogger(__name__)

CACHE_SIZE = 512
SIZE = 128


class NotRenderable(Exception):
    """The series has no image, or its image cannot be decoded."""


def render_png(dicom, size=SIZE):
    """PNG bytes of the first frame of a Part-10 file, fitted in ``size`` x ``size``."""
    try:
        dataset = dcmread(io.BytesIO(dicom))
        frame = pixel_array(dataset, index=0)
    except Exception as error:
        raise NotRenderable(f"this image cannot be decoded ({type(error).__name__})") from None
    image = Image.fromarray(_to_eight_bits(frame, dataset))
    image.thumbnail((size, size), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    image.save(out, "PNG", optimize=False)
    return out.getvalue()


def _to_eight_bits(frame, dataset):
    photometric = str(dataset.get("PhotometricInterpretation", "MONOCHROME2")).strip()
    if photometric == "PALETTE COLOR":
        frame = apply_color_lut(frame, dataset)
    if frame.ndim == 3:  # colour: YBR already converted to RGB by pixel_array
        top = float(frame.max()) if frame.dtype != numpy.uint8 else 255.0
        return (frame.astype(numpy.float64) * (255.0 / (top or 1.0))).clip(0, 255).astype(numpy.uint8)
    values = apply_rescale(frame, dataset).astype(numpy.float64)
    low, high = _window(values, dataset)
    grey = ((values - low) * (255.0 / (high - low))).clip(0, 255)
    if photometric == "MONOCHROME1":
        grey = 255.0 - grey
    return grey.astype(numpy.uint8)


def _window(values, dataset):
    """(low, high) of the first VOI window, or of the 1st-99th percentiles."""
    try:
        centre = float(_first(dataset.WindowCenter))
        width = float(_first(dataset.WindowWidth))
        if width > 1:
            return centre - width / 2, centre + width / 2
    except (AttributeError, TypeError, ValueError):
        pass
    low, high = numpy.percentile(values, (1, 99))
    if high <= low:
        low, high = float(values.min()), float(values.max())
    return (low, high) if high > low else (low - 1, low + 1)


def _first(value):
    return value[0] if isinstance(value, MultiValue) else value


class Thumbnails:
    """Thumbnails by series, rendered once and kept in memory (least recently used
    first out): each render reads the file from Orthanc and decodes it."""

    def __init__(self, host, size=CACHE_SIZE):
        self._host = host
        self._size = size
        self._cache = collections.OrderedDict()
        self._lock = threading.Lock()

    def get(self, series_orthanc_id):
        with self._lock:
            if series_orthanc_id in self._cache:
                self._cache.move_to_end(series_orthanc_id)
                return self._cache[series_orthanc_id]
        series = self._host.get_json(f"/series/{series_orthanc_id}")
        if not series or not series.get("Instances"):
            raise NotRenderable("this series has no images")
        instances = sorted(series["Instances"])
        dicom = self._host.get_bytes(f"/instances/{instances[len(instances) // 2]}/file")
        if dicom is None:
            raise NotRenderable("this series has no images")
        png = render_png(dicom)
        with self._lock:
            self._cache[series_orthanc_id] = png
            while len(self._cache) > self._size:
                self._cache.popitem(last=False)
        return png
