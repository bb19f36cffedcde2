"""The thumbnail renderer on its own, with pydicom-data's real files: every image
renders, with the grey scale a reader expects (the image's window, MONOCHROME1
inverted), and a file that cannot be decoded says so instead of raising."""

import io

import pytest
import sample_images
from PIL import Image, ImageStat
from pydicom.uid import ExplicitVRLittleEndian

from plugin.thumbnails import NotRenderable, Thumbnails, render_png


def png(dataset):
    out = io.BytesIO()
    dataset.save_as(out, enforce_file_format=True)
    return Image.open(io.BytesIO(render_png(out.getvalue())))


@pytest.mark.parametrize("path", sample_images.source_files(), ids=lambda path: path.stem)
def test_every_sample_renders_within_the_size(path):
    image = png(sample_images.read_dataset(path))
    assert max(image.size) == 128 or max(image.size) < 128
    grey = image.convert("L")
    assert len([count for count in grey.histogram() if count]) >= 2, path.stem


def test_monochrome1_is_inverted():
    dataset = sample_images.read_dataset(sample_images.DATA / "RG1_UNCR.dcm")
    normal = ImageStat.Stat(png(dataset).convert("L")).mean[0]
    dataset.PhotometricInterpretation = "MONOCHROME2"
    assert ImageStat.Stat(png(dataset).convert("L")).mean[0] == pytest.approx(255 - normal, abs=2)


def test_the_image_window_is_used():
    dataset = sample_images.read_dataset(sample_images.DATA / "693_UNCR.dcm")
    dataset.WindowCenter, dataset.WindowWidth = -5000, 10  # everything above the window: white
    assert ImageStat.Stat(png(dataset).convert("L")).mean[0] > 250


def test_a_file_that_cannot_be_decoded_is_not_renderable():
    dataset = sample_images.read_dataset(sample_images.DATA / "693_UNCR.dcm")
    dataset.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    out = io.BytesIO()
    dataset.save_as(out, enforce_file_format=True)
    with pytest.raises(NotRenderable):
        render_png(out.getvalue()[:2000])
    with pytest.raises(NotRenderable):
        render_png(b"not dicom")


class FakeHost:
    def __init__(self, files):
        self.files, self.reads = files, 0

    def get_json(self, path):
        return {"Instances": sorted(self.files)} if path == "/series/s1" else None

    def get_bytes(self, path):
        self.reads += 1
        return self.files.get(path.split("/")[2])


def test_a_series_is_rendered_once_and_from_its_middle_image():
    dataset = sample_images.read_dataset(sample_images.DATA / "693_UNCR.dcm")
    out = io.BytesIO()
    dataset.save_as(out, enforce_file_format=True)
    host = FakeHost({"a": b"broken", "b": out.getvalue(), "c": b"broken"})
    thumbnails = Thumbnails(host)
    first = thumbnails.get("s1")
    assert thumbnails.get("s1") == first and host.reads == 1
    with pytest.raises(NotRenderable):
        thumbnails.get("unknown")
