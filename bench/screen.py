"""The ingest screen's cost per file: a 512x512 CT image (the common case), a 300-slice
enhanced-style image with nested functional groups, and a deflated CT. Every C-STORE and
upload pays it once, on Orthanc's thread. PASS when the CT takes under 300 us.

    .venv/bin/python bench/screen.py [--runs 3000]
"""

import argparse
import io
import statistics
import time

from common import dicomgen, verdict
from pydicom.dataset import Dataset
from pydicom.filewriter import dcmwrite
from pydicom.sequence import Sequence
from pydicom.uid import DeflatedExplicitVRLittleEndian

from plugin.ingest_screen import screen

BUDGET_US = 300


def ct_image(frames_groups=0, syntax=None):
    ds = dicomgen.ct_series(dicomgen.StudySpec(), slices=1, rows=512, cols=512, pixels=bytes(512 * 512 * 2))[0]
    if frames_groups:  # per-frame functional groups, as enhanced CT/MR carry them
        groups = []
        for index in range(frames_groups):
            position, content = Dataset(), Dataset()
            position.ImagePositionPatient = [0, 0, index]
            content.InStackPositionNumber = index + 1
            group = Dataset()
            group.PlanePositionSequence = Sequence([position])
            group.FrameContentSequence = Sequence([content])
            groups.append(group)
        ds.PerFrameFunctionalGroupsSequence = Sequence(groups)
    if syntax:
        ds.file_meta.TransferSyntaxUID = syntax
    buffer = io.BytesIO()
    dcmwrite(buffer, ds, enforce_file_format=True)
    return buffer.getvalue()


def microseconds(data, runs):
    assert screen(data) is None
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        screen(data)
        samples.append((time.perf_counter() - start) * 1e6)
    return statistics.median(samples)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3000)
    runs = parser.parse_args().runs
    ct = microseconds(ct_image(), runs)
    print(
        f"512x512 CT image:                          {ct:8.1f} us median  {verdict(ct < BUDGET_US)}"
        f" (budget {BUDGET_US} us)"
    )
    print(
        f"512x512 with 300 per-frame groups:         {microseconds(ct_image(300), max(1, runs // 10)):8.1f} us median"
    )
    print(
        f"512x512 CT, deflated:                      "
        f"{microseconds(ct_image(syntax=DeflatedExplicitVRLittleEndian), max(1, runs // 10)):8.1f} us median"
    )


if __name__ == "__main__":
    main()
