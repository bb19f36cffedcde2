"""What OHIF's viewport shows, read the way a person sees it: the canvas as a
screenshot (a WebGL canvas may read back blank through toDataURL)."""

import io
import os
from pathlib import Path

from PIL import Image, ImageStat

SCREENSHOTS = Path(
    os.environ.get("PACS_SCREENSHOT_DIR") or Path(__file__).resolve().parent.parent / "build" / "screenshots"
)
CANVAS = "canvas.cornerstone-canvas"
FIRST_IMAGE = "studyToFirstImage"  # OHIF's console.timeEnd label once the first image is drawn


def viewport_image(page):
    """The first viewport's canvas as a grey-level image."""
    return Image.open(io.BytesIO(page.locator(CANVAS).first.screenshot())).convert("L")


def centre(image):
    """The middle of the viewport, clear of OHIF's corner overlays (text, orientation)."""
    width, height = image.size
    return image.crop((width // 5, height // 5, width * 4 // 5, height * 4 // 5))


def grey_stats(image):
    """(standard deviation, distinct grey levels, share of pixels brighter than 24 of 255)."""
    histogram = image.histogram()
    total = sum(histogram) or 1
    return (ImageStat.Stat(image).stddev[0], sum(1 for count in histogram if count), sum(histogram[25:]) / total)
