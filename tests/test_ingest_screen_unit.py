"""The ingest screen on its own: every real file Orthanc stores passes, every pathological
class is refused, and any input at all gets an answer (never an exception); what passes,
DCMTK (Orthanc's parser) reads without an error."""

import glob
import io
import os
import struct
import subprocess
import tempfile
import zlib

import data_store
import dicomgen
import pydicom.data
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.filewriter import dcmwrite
from pydicom.sequence import Sequence
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)

from plugin import ingest_screen
from plugin.ingest_screen import MAX_SEQUENCE_DEPTH, screen

NATIVE_SYNTAXES = [ImplicitVRLittleEndian, ExplicitVRLittleEndian, ExplicitVRBigEndian, DeflatedExplicitVRLittleEndian]


def _corpus():
    """Every Part-10 file of pydicom's test files and of pydicom-data."""
    roots = [os.path.dirname(pydicom.data.__file__), os.path.dirname(data_store.__file__)]
    paths = sorted(
        path
        for root in roots
        for path in glob.glob(root + "/**/*", recursive=True)
        if os.path.isfile(path) and not path.endswith((".py", ".pyc"))
    )
    out = []
    for path in paths:
        with open(path, "rb") as handle:
            if handle.read(132)[128:] == b"DICM":
                out.append(path)
    return out


CORPUS = _corpus()
# Files refused on purpose, with why. Measured: Orthanc 1.10.1 itself refuses all but the
# first two (POST /instances answered 400 "Bad file format" or "Inexistent tag").
REFUSED_ON_PURPOSE = {
    # Orthanc stores these two today:
    "MR_small_padded.dcm": "more than the 8192",  # 128 bytes past the declared pixel data
    "badVR.dcm": "Number of Frames",  # Number of Frames '1A'
    # Orthanc refuses these too:
    "MR_truncated.dcm": "runs past the end",
    "rtplan_truncated.dcm": "runs past the end",
    "emri_small_jpeg_2k_lossless_too_short.dcm": "no sequence delimiter",
    "SC_rgb_jpeg.dcm": "unknown VR",  # implicit VR data set under an explicit VR syntax
    "DICOMDIR-nooffset": "runs past the end of its sequence",
    "meta_missing_tsyntax.dcm": "no transfer syntax",
    "nested_priv_SQ.dcm": "pixel data without Rows",
}


def test_the_corpus_is_there():
    assert len(CORPUS) > 200
    syntaxes = {
        dcmread(path, stop_before_pixels=True).file_meta.get("TransferSyntaxUID")
        for path in CORPUS
        if os.path.basename(path) != "meta_missing_tsyntax.dcm"
    }
    # every accepted syntax but JPEG lossless process 14 (crafted below) has real files
    assert set(ingest_screen.TRANSFER_SYNTAXES) - syntaxes == {"1.2.840.10008.1.2.4.57"}


@pytest.mark.parametrize("path", CORPUS, ids=lambda p: p.rsplit("/", 2)[-2] + "/" + os.path.basename(p))
def test_real_files_pass_unless_refused_on_purpose(path):
    with open(path, "rb") as handle:
        data = handle.read()
    reason = screen(data)
    expected = REFUSED_ON_PURPOSE.get(os.path.basename(path))
    if expected is None:
        assert reason is None
    else:
        assert reason is not None and expected in reason


# --- building files -----------------------------------------------------------------------


def part10(syntax, body):
    """A Part-10 file of any transfer syntax UID around data set bytes (pydicom writes only
    the syntaxes it knows, and pixel data only as they require)."""

    def element(number, vr, value):
        return struct.pack("<HH", 2, number) + vr + struct.pack("<H", len(value)) + value

    uid = syntax.encode() + b"\0" * (len(syntax) % 2)
    elements = element(0x0010, b"UI", uid)
    return bytes(128) + b"DICM" + element(0x0000, b"UL", struct.pack("<I", len(elements))) + elements + body


def body(data):
    """The data set bytes of a Part-10 file (after its meta group)."""
    return data[144 + struct.unpack("<I", data[140:144])[0] :]


def encode(ds, syntax=ExplicitVRLittleEndian):
    ds.file_meta.TransferSyntaxUID = syntax
    buffer = io.BytesIO()
    dcmwrite(buffer, ds, enforce_file_format=True)
    return buffer.getvalue()


def ct(rows=8, cols=8):
    return dicomgen.ct_series(dicomgen.StudySpec(), slices=1, rows=rows, cols=cols, pixels=bytes(rows * cols * 2))[0]


def nest(ds, depth, undefined=False, keyword="ContentSequence"):
    """Hang a chain of ``depth`` sequences, one item each, on ``ds``; sequences and items
    of undefined length (with delimiters) when ``undefined``."""
    inner = ds
    for _ in range(depth):
        item = Dataset()
        item.ValueType = "CONTAINER"
        item.is_undefined_length_sequence_item = undefined
        setattr(inner, keyword, Sequence([item]))
        inner[keyword].is_undefined_length = undefined
        inner = item
    return ds


def test_a_small_ct_passes_in_every_native_syntax():
    for syntax in NATIVE_SYNTAXES:
        assert screen(encode(ct(), syntax)) is None, syntax


def test_jpeg_lossless_process_14_passes():
    data = open(pydicom.data.get_testdata_file("JPEG-LL.dcm"), "rb").read()
    assert b"1.2.840.10008.1.2.4.70" in data[:400]
    assert screen(data.replace(b"1.2.840.10008.1.2.4.70", b"1.2.840.10008.1.2.4.57", 1)) is None


# --- nesting ------------------------------------------------------------------------------


@pytest.mark.parametrize("undefined", [False, True])
@pytest.mark.parametrize("syntax", NATIVE_SYNTAXES)
def test_nesting_is_bounded_in_every_syntax(syntax, undefined):
    assert screen(encode(nest(ct(), MAX_SEQUENCE_DEPTH, undefined), syntax)) is None
    for depth in (MAX_SEQUENCE_DEPTH + 1, 50, 60):
        assert "nested deeper" in screen(encode(nest(ct(), depth, undefined), syntax))


def _defined_sequence(depth, tag=0x0040A730, vr=b"SQ"):
    """Explicit VR LE bytes of ``depth`` nested sequences with defined lengths throughout;
    the inner ones implicit VR (as inside UN) when ``vr`` is UN."""

    def element(tag, vr, value, implicit):
        head = struct.pack("<HH", tag >> 16, tag & 0xFFFF)
        if implicit:
            return head + struct.pack("<I", len(value)) + value
        return head + vr + b"\0\0" + struct.pack("<I", len(value)) + value

    value = b""
    for level in range(depth):
        item = struct.pack("<HHI", 0xFFFE, 0xE000, len(value)) + value
        implicit = level < depth - 1 and vr == b"UN"
        value = element(tag, vr, item, implicit) if level < depth - 1 else item
    return element(tag, vr, value, False)


def _with_elements(extra, syntax=ExplicitVRLittleEndian):
    """A small CT with raw element bytes inserted just before its pixel data."""
    data = encode(ct(), syntax)
    pixel = data.index(b"\xe0\x7f\x10\x00")
    return data[:pixel] + extra + data[pixel:]


@pytest.mark.parametrize("vr", [b"SQ", b"UN"])
def test_defined_length_nesting_is_counted_too(vr):
    tag = 0x0040A730 if vr == b"SQ" else 0x00091010  # UN: a private tag
    assert screen(_with_elements(_defined_sequence(MAX_SEQUENCE_DEPTH, tag, vr))) is None
    assert "nested deeper" in screen(_with_elements(_defined_sequence(MAX_SEQUENCE_DEPTH + 1, tag, vr)))
    assert "nested deeper" in screen(_with_elements(_defined_sequence(60, tag, vr)))


# --- structure ----------------------------------------------------------------------------


def test_an_element_running_past_the_end_is_refused():
    data = encode(ct())
    at = data.index(b"\x10\x00\x10\x00PN") + 6  # PatientName's 2-byte length
    assert "runs past" in screen(data[:at] + b"\xff\xff" + data[at + 2 :])
    content = b"\x08\x00\x18\x00UI\x04\x001.2\0"
    item = struct.pack("<HHI", 0xFFFE, 0xE000, len(content)) + content
    sequence = struct.pack("<HH", 0x0040, 0xA730) + b"SQ\0\0" + struct.pack("<I", len(item) - 4) + item
    assert "runs past the end of its sequence" in screen(_with_elements(sequence))


def test_every_cut_inside_the_pixel_data_is_refused():
    data = encode(ct())
    pixel = data.index(b"\xe0\x7f\x10\x00")
    for cut in range(pixel + 1, len(data), 7):
        assert screen(data[:cut]) is not None, cut


def test_misplaced_items_and_delimiters_are_refused():
    item = struct.pack("<HHI", 0xFFFE, 0xE000, 0)
    item_end = struct.pack("<HHI", 0xFFFE, 0xE00D, 0)
    sequence_end = struct.pack("<HHI", 0xFFFE, 0xE0DD, 0)
    for stray in (item, item_end, sequence_end):
        assert "out of place" in screen(_with_elements(stray))
    not_an_item = struct.pack("<HH", 0x0040, 0xA730) + b"SQ\0\0" + struct.pack("<I", 8) + b"\x08\x00\x18\x00UI\0\0"
    assert "where a sequence item belongs" in screen(_with_elements(not_an_item))
    # an item delimiter inside an item of defined length
    wrapped = struct.pack("<HHI", 0xFFFE, 0xE000, 8) + item_end
    assert "out of place" in screen(
        _with_elements(struct.pack("<HH", 0x0040, 0xA730) + b"SQ\0\0" + struct.pack("<I", len(wrapped)) + wrapped)
    )


@pytest.mark.parametrize("vr", [b"OB", b"OW", b"UT", b"UC", b"OF"])
def test_undefined_length_is_refused_where_the_vr_cannot_have_it(vr):
    element = struct.pack("<HH", 0x0009, 0x1010) + vr + b"\0\0" + b"\xff\xff\xff\xff"
    assert "undefined length" in screen(_with_elements(element + struct.pack("<HHI", 0xFFFE, 0xE0DD, 0)))


def test_unknown_vr_is_refused():
    assert "unknown VR" in screen(_with_elements(struct.pack("<HH", 0x0009, 0x1010) + b"ZZ\0\0"))


def test_more_than_the_bounded_number_of_elements_is_refused():
    empty = struct.pack("<HH", 0x0009, 0x1010) + b"LO\0\0"
    assert "more than" in screen(_with_elements(empty * ingest_screen.MAX_ELEMENTS))


def test_unclosed_sequences_are_refused():
    data = encode(nest(ct(), 3, undefined=True))
    pixel = data.index(b"\xe0\x7f\x10\x00")
    delimiters = data.rindex(b"\xfe\xff\xdd\xe0", 0, pixel)
    assert "no delimiter" in screen(data[:delimiters])


# --- pixel data ---------------------------------------------------------------------------


@pytest.mark.parametrize("syntax", NATIVE_SYNTAXES)
def test_pixel_data_must_fit_its_attributes(syntax):
    for size, ok in ((128, True), (126, False), (130, False), (256, False), (0, False)):
        ds = ct()
        ds.PixelData = bytes(size)
        assert (screen(encode(ds, syntax)) is None) == ok, (size, syntax)


def test_frames_samples_and_packed_bits_count():
    ds = ct(rows=4, cols=4)
    ds.NumberOfFrames, ds.SamplesPerPixel, ds.PhotometricInterpretation = 3, 3, "RGB"
    ds.PlanarConfiguration = 0
    ds.PixelData = bytes(4 * 4 * 3 * 3 * 2)
    assert screen(encode(ds)) is None
    ds.PixelData = bytes(4 * 4 * 3 * 3 * 2 - 2)
    assert "fewer than" in screen(encode(ds))
    bits = ct(rows=3, cols=5)  # 15 one-bit pixels: 2 bytes
    bits.BitsAllocated = bits.BitsStored = 1
    bits.HighBit = 0
    bits.PixelData = bytes(2)
    assert screen(encode(bits)) is None
    bits.Rows = 6  # 30 pixels: 4 bytes
    assert "fewer than" in screen(encode(bits))


@pytest.mark.parametrize(
    "change",
    [
        dict(Rows=0),
        dict(Columns=0),
        dict(BitsAllocated=12),
        dict(BitsAllocated=0),
        dict(BitsStored=17),
        dict(HighBit=16),
        dict(SamplesPerPixel=0),
        dict(SamplesPerPixel=9),
        dict(NumberOfFrames=0),
        dict(NumberOfFrames="-1"),
        dict(NumberOfFrames=10**7),
        dict(Rows=65535, Columns=65535, NumberOfFrames=3),
    ],
)
def test_absurd_image_attributes_are_refused(change):
    ds = ct()
    for keyword, value in change.items():
        setattr(ds, keyword, value)
    assert screen(encode(ds)) is not None


def test_number_of_frames_must_be_a_number():
    ds = ct()
    ds.NumberOfFrames = 1
    data = encode(ds)
    assert screen(data) is None
    frames = b"\x28\x00\x08\x00IS\x02\x001 "
    assert data.count(frames) == 1
    assert "Number of Frames" in screen(data.replace(frames, frames[:-1] + b"A"))


def test_image_attributes_are_required_with_pixel_data_only():
    ds = ct()
    del ds.Rows
    assert "without Rows" in screen(encode(ds))
    del ds.PixelData
    assert screen(encode(ds)) is None


SEQUENCE_DELIMITER = struct.pack("<HHI", 0xFFFE, 0xE0DD, 0)


def _encapsulated(fragments, tail=SEQUENCE_DELIMITER):
    ds = ct()
    del ds.PixelData
    data = part10("1.2.840.10008.1.2.4.70", body(encode(ds)))
    header = struct.pack("<HH", 0x7FE0, 0x0010) + b"OB\0\0\xff\xff\xff\xff"
    items = b"".join(struct.pack("<HHI", 0xFFFE, 0xE000, len(f)) + f for f in fragments)
    return data + header + items + tail


def test_encapsulated_fragments_are_bounded():
    assert screen(_encapsulated([b"", b"\xff\xd8\xff\xd9"])) is None
    assert "no frame" in screen(_encapsulated([b""]))
    assert "no sequence delimiter" in screen(_encapsulated([b"", b"\xff\xd8"], tail=b""))
    overrun = _encapsulated([b"", b"\xff\xd8"], tail=b"")
    assert "runs past" in screen(overrun[:-6] + struct.pack("<I", 1000) + overrun[-2:])
    assert "fragments" in screen(_encapsulated([b""] * (ingest_screen.MAX_FRAGMENTS + 2)))
    as_native = _encapsulated([b"", b"\xff\xd8\xff\xd9"]).replace(
        b"1.2.840.10008.1.2.4.70", b"1.2.840.10008.1.2.1\0\0\0", 1
    )
    assert "native transfer syntax" in screen(as_native)


# --- palettes -----------------------------------------------------------------------------


def _palette(entries=256, first=0, bits=16, data_bytes=None):
    ds = ct()
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "PALETTE COLOR"
    ds.BitsAllocated = ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelData = bytes(64)
    for colour in ("Red", "Green", "Blue"):
        setattr(ds, f"{colour}PaletteColorLookupTableDescriptor", [entries, first, bits])
        setattr(
            ds,
            f"{colour}PaletteColorLookupTableData",
            bytes(2 * (entries or 65536) if data_bytes is None else data_bytes),
        )
    return ds


def test_palette_descriptors_must_fit_their_data():
    assert screen(encode(_palette())) is None
    assert screen(encode(_palette(entries=0))) is None  # 0 means 65536 entries
    assert screen(encode(_palette(bits=8, data_bytes=256))) is None  # 8-bit entries packed
    assert "palette LUT data holds" in screen(encode(_palette(data_bytes=510)))
    assert "palette LUT data holds" in screen(encode(_palette(entries=4096, data_bytes=512)))
    assert "bits" in screen(encode(_palette(bits=12)))
    no_data = _palette()
    del no_data.GreenPaletteColorLookupTableData
    assert "without LUT data" in screen(encode(no_data))
    no_descriptor = _palette()
    del no_descriptor.BluePaletteColorLookupTableDescriptor
    assert "without a valid descriptor" in screen(encode(no_descriptor))


def test_a_real_palette_image_with_a_wrong_descriptor_is_refused():
    ds = dcmread(pydicom.data.get_testdata_file("examples_palette.dcm"))
    assert screen(encode(ds, ds.file_meta.TransferSyntaxUID)) is None
    ds.RedPaletteColorLookupTableDescriptor = [4096, 0, 16]
    assert "palette" in screen(encode(ds, ds.file_meta.TransferSyntaxUID))


# --- transfer syntaxes and the meta group -------------------------------------------------


@pytest.mark.parametrize(
    "uid",
    [
        "1.2.840.10008.1.2.4.100",
        "1.2.840.10008.1.2.4.201",
        "1.2.840.10008.1.2.4.110",
        "1.2.840.10008.1.2.4.52",
        "1.2.3.4",
        "1.2.840.10008.1.2.1.98",
    ],
)
def test_other_transfer_syntaxes_are_refused_by_uid(uid):
    assert uid in screen(part10(uid, body(encode(ct()))))
    assert screen(part10(ExplicitVRLittleEndian, body(encode(ct())))) is None


def test_meta_group_must_be_sane():
    data = encode(ct())
    assert data[140:144] != b"\0\0\0\0"
    wrong = data[:140] + struct.pack("<I", struct.unpack("<I", data[140:144])[0] + 2) + data[144:]
    assert "group length" in screen(wrong)
    assert "not a DICOM Part-10" in screen(data[128:])
    for cut in range(133, 144 + struct.unpack("<I", data[140:144])[0]):
        assert "meta" in screen(data[:cut]), cut


def test_deflate_bombs_and_broken_deflate_are_refused():
    data = encode(ct(), DeflatedExplicitVRLittleEndian)
    meta_end = 144 + struct.unpack("<I", data[140:144])[0]
    compressor = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    bomb = compressor.compress(bytes(200 << 20)) + compressor.flush()
    assert len(bomb) < 1 << 20
    assert "deflate bomb" in screen(data[:meta_end] + bomb)
    assert "does not inflate" in screen(data[:meta_end] + b"\xff" * 64)


@pytest.mark.parametrize("data", [b"", b"DICM", bytes(132), bytes(128) + b"DICM", b"\0" * 4096, "text"])
def test_garbage_is_refused(data):
    assert screen(data) is not None


# --- any input ----------------------------------------------------------------------------

SAMPLES = [
    encode(ct()),
    encode(nest(ct(), 3, undefined=True), ImplicitVRLittleEndian),
    encode(nest(ct(), 2), ExplicitVRBigEndian),
    encode(nest(ct(), 2), DeflatedExplicitVRLittleEndian),
    _encapsulated([b"", b"\xff\xd8\xff\xd9"]),
    encode(_palette()),
]


@st.composite
def mutated(draw):
    data = bytearray(draw(st.sampled_from(SAMPLES)))
    for _ in range(draw(st.integers(1, 6))):
        at = draw(st.integers(0, len(data) - 1))
        action = draw(st.sampled_from(["flip", "cut", "insert", "length"]))
        if action == "flip":
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif action == "cut":
            del data[at : at + draw(st.integers(1, 64))]
        elif action == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=16))
        else:
            data[at : at + 4] = struct.pack("<I", draw(st.sampled_from([0, 1, 0xFFFF, 0xFFFFFFFF, 2**31])))
        if not data:
            break
    return bytes(data)


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.binary(max_size=600), st.binary(max_size=400).map(lambda b: bytes(128) + b"DICM" + b), mutated()))
def test_any_input_gets_an_answer_and_what_passes_dcmtk_parses(data):
    reason = screen(data)
    assert reason is None or (isinstance(reason, str) and 0 < len(reason) < 200)
    event("accepted" if reason is None else "refused")
    if reason is None:  # DCMTK, the parser Orthanc uses, reads the whole file without an error
        with tempfile.NamedTemporaryFile(suffix=".dcm") as handle:
            handle.write(data)
            handle.flush()
            result = subprocess.run(["dcmdump", "-q", handle.name], capture_output=True, timeout=30)
        assert result.returncode == 0, result.stderr[-500:]
