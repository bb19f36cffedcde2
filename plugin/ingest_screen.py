"""The ingest screen: refuse a DICOM file that would crash or overload Orthanc before it is stored.

Orthanc 1.10.1 stores what DCMTK can read, then parses the file again whenever it is
shown: an instance with a sequence nested ~50 deep is stored with success and the first
thumbnail, DICOMweb metadata or WADO-URI request segfaults Orthanc (recursion on a small
thread stack), and its image decoders trust Rows, Columns, Bits Allocated and LUT
descriptors (CVE-2026-5437..5445, fixed in 1.12.11). ``screen`` walks a Part-10 file's
element headers, skipping values by their length, and answers why the file is refused.

It never parses values it does not need, never recurses (sequences are an explicit
stack) and never raises: every input gets None or a reason. A reason names tags,
lengths and UIDs of transfer syntaxes, never a value that could hold patient data.

The same walk tells (``examine``) which lossless changes the viewer needs before the
file is stored (plugin/viewer_ready.py makes them): OHIF cannot show an image whose
encoding or attributes it does not handle, though the pixels are fine.
"""

import struct
import zlib
from dataclasses import dataclass

# Real objects nest little: enhanced MR/CT functional groups and RT plans 3-5 sequences,
# deep SR content trees ~10-12. DCMTK survived 45 and crashed at ~50 on Orthanc's threads;
# 24 leaves twice the depth of real data and half the crash depth (another code path may
# use more stack per level).
MAX_SEQUENCE_DEPTH = 24
MAX_ELEMENTS = 500_000  # ~0.5 s to walk; a 3000-frame enhanced MR holds ~150 000
MAX_FRAGMENTS = 100_000  # a fragment per frame for the longest cine loops, with margin
MAX_FRAMES = 100_000
MAX_FRAME_BYTES = 1 << 29  # 512 MiB decoded per frame (a 10 000 x 10 000 RGB frame is 300 MB)
MAX_IMAGE_BYTES = 1 << 32  # 4 GiB decoded for all frames
MAX_META_BYTES = 1 << 16
MAX_INFLATED_BYTES = 1 << 30
INFLATE_RATIO = 64  # deflate bombs reach ~1000:1; DICOM rarely passes 20:1
MIN_INFLATE_CAP = 16 << 20  # small files inflate this far whatever their ratio

_IMPLICIT_LE = "1.2.840.10008.1.2"
_EXPLICIT_LE = "1.2.840.10008.1.2.1"
_EXPLICIT_BE = "1.2.840.10008.1.2.2"
_DEFLATED_LE = "1.2.840.10008.1.2.1.99"
# UID -> (explicit VR, little endian, encapsulated pixel data)
TRANSFER_SYNTAXES = {
    _IMPLICIT_LE: (False, True, False),
    _EXPLICIT_LE: (True, True, False),
    _EXPLICIT_BE: (True, False, False),
    _DEFLATED_LE: (True, True, False),
    "1.2.840.10008.1.2.4.50": (True, True, True),  # JPEG baseline
    "1.2.840.10008.1.2.4.51": (True, True, True),  # JPEG extended
    "1.2.840.10008.1.2.4.57": (True, True, True),  # JPEG lossless
    "1.2.840.10008.1.2.4.70": (True, True, True),  # JPEG lossless SV1
    "1.2.840.10008.1.2.4.80": (True, True, True),  # JPEG-LS lossless
    "1.2.840.10008.1.2.4.81": (True, True, True),  # JPEG-LS near-lossless
    "1.2.840.10008.1.2.4.90": (True, True, True),  # JPEG 2000 lossless
    "1.2.840.10008.1.2.4.91": (True, True, True),  # JPEG 2000
    "1.2.840.10008.1.2.5": (True, True, True),  # RLE
}

# VRs whose explicit header has 2 reserved bytes and a 4-byte length; all others a 2-byte length.
_LONG_VRS = frozenset(
    vr.encode() for vr in ("OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC", "UN", "UR", "UT", "UV")
)
_SHORT_VRS = frozenset(
    vr.encode()
    for vr in (
        "AE",
        "AS",
        "AT",
        "CS",
        "DA",
        "DS",
        "DT",
        "FD",
        "FL",
        "IS",
        "LO",
        "LT",
        "PN",
        "SH",
        "SL",
        "SS",
        "ST",
        "TM",
        "UI",
        "UL",
        "US",
    )
)
_UNDEFINED = 0xFFFFFFFF
_ITEM, _ITEM_END, _SEQUENCE_END = 0xE000, 0xE00D, 0xE0DD  # elements of group FFFE
_ITEM_TAG_LE = b"\xfe\xff\x00\xe0"
_PIXEL_DATA = 0x7FE00010
_ENCAPSULATED = -1  # the recorded "length" of encapsulated pixel data

_ROWS, _COLUMNS, _FRAMES, _SAMPLES = 0x00280010, 0x00280011, 0x00280008, 0x00280002
_PHOTOMETRIC, _BITS_ALLOCATED, _BITS_STORED, _HIGH_BIT = 0x00280004, 0x00280100, 0x00280101, 0x00280102
_PALETTE_DESCRIPTORS = (0x00281101, 0x00281102, 0x00281103)  # data: descriptor + 0x100
_SEGMENTED_PALETTE = 0x00281221
_PIXEL_SPACING = 0x00280030
_SOP_CLASS = 0x00080016

# What OHIF 3.13 on DICOMweb cannot show, measured with pydicom-data's images
# (tests/test_viewer_codecs.py): DICOMweb answers 500 for frames of big endian and
# deflated files, and Cornerstone draws nothing for palette colour in implicit VR,
# for segmented palettes, or for a Pixel Spacing of zero; OHIF has no display for the
# retired ultrasound SOP classes (1993's US IODs, replaced by today's in 1996).
TRANSCODE = "transcode"  # to Explicit VR Little Endian
PALETTE_TO_RGB = "palette_to_rgb"
DROP_PIXEL_SPACING = "drop_pixel_spacing"
CURRENT_SOP_CLASS = "current_sop_class"
RETIRED_SOP_CLASSES = {
    "1.2.840.10008.5.1.4.1.1.6": "1.2.840.10008.5.1.4.1.1.6.1",  # Ultrasound Image
    "1.2.840.10008.5.1.4.1.1.3": "1.2.840.10008.5.1.4.1.1.3.1",  # Ultrasound Multi-frame Image
}
EXPLICIT_LITTLE_ENDIAN = "1.2.840.10008.1.2.1"

# little endian -> (explicit VR header, implicit VR or item header, 32-bit length)
_HEADERS = {
    True: (struct.Struct("<HH2sH"), struct.Struct("<HHI"), struct.Struct("<I")),
    False: (struct.Struct(">HH2sH"), struct.Struct(">HHI"), struct.Struct(">I")),
}
_U16 = {True: struct.Struct("<H"), False: struct.Struct(">H")}
_META_HEADER, _META_U32 = _HEADERS[True][0], _HEADERS[True][2]
_DATASET, _SEQUENCE, _ITEM_KIND = 0, 1, 2


class Refused(Exception):
    """Internal: the reason a file is refused, raised deep in the walk."""


@dataclass(frozen=True)
class Examination:
    refusal: str | None  # why the file is refused; None if it may be stored
    viewer_fixes: frozenset = frozenset()  # of TRANSCODE, PALETTE_TO_RGB, DROP_PIXEL_SPACING, CURRENT_SOP_CLASS


def screen(data):
    """None when the Part-10 file ``data`` (bytes) may be stored, else a short reason."""
    return examine(data).refusal


def examine(data):
    """The screen's verdict on ``data`` and, for a file it accepts, the viewer's needs."""
    if not isinstance(data, (bytes, bytearray)):
        return Examination("not a byte string")
    try:
        buffer = memoryview(data)
        position, syntax = _meta(buffer)
        if syntax not in TRANSFER_SYNTAXES:
            raise Refused(f"transfer syntax {syntax[:64]!r} is not accepted")
        explicit, little, encapsulated = TRANSFER_SYNTAXES[syntax]
        if syntax == _DEFLATED_LE:
            buffer, position = memoryview(_inflate(buffer[position:])), 0
        attributes = _walk(buffer, position, explicit, little, encapsulated)
    except Refused as refusal:
        return Examination(str(refusal))
    return Examination(None, _viewer_fixes(buffer, attributes, syntax))


def _viewer_fixes(buffer, attributes, syntax):
    """The lossless changes OHIF needs, from the top-level data set's SOP class and group 0028."""

    def text(tag):
        return _text(buffer, attributes, tag)

    fixes = set()
    palette = text(_PHOTOMETRIC) == "PALETTE COLOR"
    if syntax in (_EXPLICIT_BE, _DEFLATED_LE) or (syntax == _IMPLICIT_LE and palette):
        fixes.add(TRANSCODE)
    if palette and _SEGMENTED_PALETTE in attributes:
        fixes.add(PALETTE_TO_RGB)
    if _PIXEL_SPACING in attributes and not _positive_numbers(text(_PIXEL_SPACING)):
        fixes.add(DROP_PIXEL_SPACING)
    if text(_SOP_CLASS) in RETIRED_SOP_CLASSES:
        fixes.add(CURRENT_SOP_CLASS)
    return frozenset(fixes)


def _positive_numbers(value):
    """Whether a DS value holds only numbers above zero (an empty one counts as fine)."""
    try:
        return all(float(part) > 0 for part in value.split("\\") if part.strip())
    except ValueError:
        return False


def _meta(buffer):
    """(position after the meta group, transfer syntax UID) of a Part-10 file."""
    if len(buffer) < 132 or bytes(buffer[128:132]) != b"DICM":
        raise Refused("not a DICOM Part-10 file (no DICM prefix)")
    position, end, syntax = 132, len(buffer), None
    group_end = None
    while position + 8 <= end:
        group, element, vr, length = _META_HEADER.unpack_from(buffer, position)
        if group != 0x0002:
            break
        header = 8
        if vr in _LONG_VRS:
            if vr == b"SQ" or position + 12 > end:
                raise Refused("malformed file meta information")
            length = _META_U32.unpack_from(buffer, position + 8)[0]
            header = 12
        elif vr not in _SHORT_VRS:
            raise Refused("malformed file meta information (unknown VR)")
        value = position + header
        if length == _UNDEFINED or value + length > end or value + length - 132 > MAX_META_BYTES:
            raise Refused("file meta information runs past its bounds")
        if element == 0x0000:
            if vr != b"UL" or length != 4:
                raise Refused("malformed file meta group length")
            group_end = value + 4 + _META_U32.unpack_from(buffer, value)[0]
        elif element == 0x0010:
            syntax = bytes(buffer[value : value + length]).rstrip(b"\0 ").decode("ascii", "replace")
        position = value + length
    if group_end is not None and group_end != position:
        raise Refused("file meta group length disagrees with the meta elements")
    if syntax is None:
        raise Refused("no transfer syntax in the file meta information")
    return position, syntax


def _inflate(compressed):
    """The inflated data set of a Deflated Explicit VR file, refused past a bomb's ratio."""
    cap = min(MAX_INFLATED_BYTES, max(MIN_INFLATE_CAP, INFLATE_RATIO * len(compressed)))
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    try:
        inflated = inflater.decompress(compressed, cap + 1)
    except zlib.error:
        raise Refused("deflated data set does not inflate") from None
    if len(inflated) > cap:
        raise Refused(f"deflated data set inflates past {cap} bytes (a deflate bomb)")
    return inflated


def _walk(buffer, position, explicit, little, encapsulated_syntax):
    """Walk every element header of the data set from ``position``; raise Refused.
    Returns the top-level data set's group 0028 and SOP Class UID (tag -> (value position, length)).

    The state of the container being read (the data set, a sequence or an item) lives
    in locals; entering a sequence or item pushes the enclosing one on ``stack``.
    ``end`` is where the container must end: its defined end, or for an undefined
    length the enclosing one's (reaching it without a delimiter is a truncation)."""
    size = len(buffer)
    stack = []
    kind, end, undefined, attributes = _DATASET, size, False, {}
    header, implicit_header, u32 = _HEADERS[little]
    depth = elements = 0
    short_vrs = _SHORT_VRS
    while True:
        if position >= end:
            if position > end:
                raise Refused("an element runs past the end of its item or sequence")
            if undefined:
                raise Refused("a sequence or item has no delimiter (truncated file)")
            if kind != _SEQUENCE:
                _check_image(buffer, attributes, little, encapsulated_syntax)
            if kind == _DATASET:
                return attributes
            if kind == _SEQUENCE:
                depth -= 1
            kind, end, undefined, attributes, explicit, little = stack.pop()
            header, implicit_header, u32 = _HEADERS[little]
            continue
        if position + 8 > end:
            raise Refused("truncated element header")
        elements += 1
        if elements > MAX_ELEMENTS:
            raise Refused(f"more than {MAX_ELEMENTS} elements")
        if kind == _SEQUENCE:
            group, element, length = implicit_header.unpack_from(buffer, position)
            position += 8
            if group != 0xFFFE:
                raise Refused(f"({group:04X},{element:04X}) where a sequence item belongs")
            if element == _SEQUENCE_END and undefined:
                if length:
                    raise Refused("sequence delimiter with a length")
                depth -= 1
                kind, end, undefined, attributes, explicit, little = stack.pop()
                header, implicit_header, u32 = _HEADERS[little]
                continue
            if element != _ITEM:
                raise Refused(f"(FFFE,{element:04X}) out of place in a sequence")
            stack.append((kind, end, undefined, attributes, explicit, little))
            if length == _UNDEFINED:
                kind, undefined = _ITEM_KIND, True
            elif position + length > end:
                raise Refused("a sequence item runs past the end of its sequence")
            else:
                kind, end, undefined = _ITEM_KIND, position + length, False
            attributes = {}
            continue
        if explicit:
            group, element, vr, length = header.unpack_from(buffer, position)
            if vr in short_vrs and group != 0xFFFE:  # the common case, kept short
                position += 8
                if group == 0x0028 or group == 0x0008 and element == 0x0016:
                    attributes[group << 16 | element] = (position, length)
                position += length
                if position > end:
                    raise Refused(f"({group:04X},{element:04X}) runs past the end of the data")
                continue
            if group == 0xFFFE:
                length = u32.unpack_from(buffer, position + 4)[0]
                vr = None
                position += 8
            elif vr in _LONG_VRS:
                if position + 12 > end:
                    raise Refused("truncated element header")
                length = u32.unpack_from(buffer, position + 8)[0]
                position += 12
            else:
                raise Refused(f"({group:04X},{element:04X}) has an unknown VR")
        else:
            group, element, length = implicit_header.unpack_from(buffer, position)
            vr = None
            position += 8
        if group == 0xFFFE:
            if element == _ITEM_END and kind == _ITEM_KIND and undefined:
                if length:
                    raise Refused("item delimiter with a length")
                _check_image(buffer, attributes, little, encapsulated_syntax)
                kind, end, undefined, attributes, explicit, little = stack.pop()
                header, implicit_header, u32 = _HEADERS[little]
                continue
            raise Refused(f"(FFFE,{element:04X}) out of place")
        tag = group << 16 | element
        if length == _UNDEFINED:
            if tag == _PIXEL_DATA and (vr is None or vr in (b"OB", b"OW")):
                if not encapsulated_syntax:
                    raise Refused("encapsulated pixel data in a native transfer syntax")
                position, fragments = _fragments(buffer, position, end, implicit_header)
                elements += fragments
                attributes[_PIXEL_DATA] = (position, _ENCAPSULATED)
                continue
            if vr is not None and vr not in (b"SQ", b"UN"):
                raise Refused(f"({group:04X},{element:04X}) has an undefined length on VR {vr.decode()}")
            sequence_end = end
        else:
            if position + length > end:
                raise Refused(f"({group:04X},{element:04X}) runs past the end of the data")
            if vr != b"SQ" and not (
                vr in (None, b"UN")
                and tag != _PIXEL_DATA
                and length >= 8
                and buffer[position : position + 4] == _ITEM_TAG_LE
            ):
                if group == 0x0028 or group == 0x7FE0 or tag == _SOP_CLASS:
                    attributes[tag] = (position, length)
                position += length
                continue
            sequence_end = position + length
        # A sequence: SQ, or UN or implicit VR holding items (read as implicit VR LE then).
        depth += 1
        if depth > MAX_SEQUENCE_DEPTH:
            raise Refused(f"sequences nested deeper than {MAX_SEQUENCE_DEPTH}")
        stack.append((kind, end, undefined, attributes, explicit, little))
        kind, end, undefined = _SEQUENCE, sequence_end, length == _UNDEFINED
        if vr != b"SQ":
            explicit, little = False, True
            header, implicit_header, u32 = _HEADERS[little]


def _fragments(buffer, position, end, item_header):
    """(position after the sequence delimiter, fragment count) of encapsulated pixel data."""
    count = 0
    while True:
        if position + 8 > end:
            raise Refused("encapsulated pixel data has no sequence delimiter (truncated file)")
        group, element, length = item_header.unpack_from(buffer, position)
        position += 8
        if group == 0xFFFE and element == _SEQUENCE_END:
            if count < 2:
                raise Refused("encapsulated pixel data holds no frame fragment")
            return position, count
        if group != 0xFFFE or element != _ITEM or length == _UNDEFINED:
            raise Refused("encapsulated pixel data holds something other than fragments")
        position += length
        if position > end:
            raise Refused("a pixel data fragment runs past the end of the data")
        count += 1
        if count > MAX_FRAGMENTS:
            raise Refused(f"encapsulated pixel data holds more than {MAX_FRAGMENTS} fragments")


def _check_image(buffer, attributes, little, encapsulated_syntax):
    """Refuse pixel data and palettes of one data set or item whose sizes disagree."""
    if not attributes:
        return
    u16 = _U16[little]

    def number(tag, default=None):
        position, length = attributes.get(tag, (0, 0))
        return u16.unpack_from(buffer, position)[0] if length == 2 else default

    def text(tag):
        return _text(buffer, attributes, tag)

    _check_palette(buffer, attributes, little, text(_PHOTOMETRIC) == "PALETTE COLOR")
    if _PIXEL_DATA not in attributes:
        return
    rows, columns, bits = number(_ROWS), number(_COLUMNS), number(_BITS_ALLOCATED)
    samples = number(_SAMPLES, 1)
    frames_text = text(_FRAMES) if _FRAMES in attributes else "1"
    if not rows or not columns or bits is None:
        raise Refused("pixel data without Rows, Columns or Bits Allocated")
    if bits not in (1, 8, 16, 32, 64):
        raise Refused(f"Bits Allocated {bits} is not accepted")
    stored, high_bit = number(_BITS_STORED, bits), number(_HIGH_BIT, 0)
    if not 1 <= stored <= bits or high_bit >= bits:
        raise Refused("Bits Stored or High Bit out of range for Bits Allocated")
    if not 1 <= samples <= 4:
        raise Refused(f"Samples per Pixel {samples} is not accepted")
    if not frames_text.isdigit() or not 1 <= int(frames_text) <= MAX_FRAMES:
        raise Refused("Number of Frames is not a whole number in range")
    frames = int(frames_text)
    if text(_PHOTOMETRIC) == "YBR_FULL_422" and samples == 3 and not encapsulated_syntax:
        samples = 2  # two luminance samples share one Cb and one Cr
    frame_bits = rows * columns * samples * bits
    if frame_bits > 8 * MAX_FRAME_BYTES or frames * frame_bits > 8 * MAX_IMAGE_BYTES:
        raise Refused("image larger than this server decodes")
    length = attributes[_PIXEL_DATA][1]
    if length == _ENCAPSULATED:
        return
    expected = (frames * frame_bits + 7) // 8
    if length < expected:
        raise Refused(f"pixel data holds {length} bytes, fewer than the {expected} its attributes declare")
    if length > expected + 1:
        raise Refused(f"pixel data holds {length} bytes, more than the {expected} its attributes declare")


def _text(buffer, attributes, tag):
    """A short text value of a recorded attribute ('' if absent), never more than 64 bytes."""
    position, length = attributes.get(tag, (0, 0))
    return bytes(buffer[position : position + min(length, 64)]).strip(b"\0 ").decode("ascii", "replace")


def _check_palette(buffer, attributes, little, palette_image):
    """Each palette LUT descriptor (entries, first mapped, bits) must fit its LUT data."""
    u16 = _U16[little]
    for descriptor_tag in _PALETTE_DESCRIPTORS:
        data_tag = descriptor_tag + 0x100
        descriptor, data = attributes.get(descriptor_tag), attributes.get(data_tag)
        if descriptor is None and data is None:
            if palette_image and _SEGMENTED_PALETTE not in attributes:
                raise Refused("palette colour image without its palette")
            continue
        if descriptor is None or descriptor[1] != 6:
            raise Refused("palette LUT data without a valid descriptor")
        if data is None:
            if palette_image and _SEGMENTED_PALETTE not in attributes:
                raise Refused("palette LUT descriptor without LUT data")
            continue
        entries = u16.unpack_from(buffer, descriptor[0])[0] or 65536
        bits = u16.unpack_from(buffer, descriptor[0] + 4)[0]
        if bits not in (8, 16):
            raise Refused(f"palette LUT of {bits} bits is not accepted")
        length = data[1]
        if length != 2 * entries and not (bits == 8 and length in (entries, entries + 1)):
            raise Refused(f"palette LUT data holds {length} bytes for {entries} entries")
