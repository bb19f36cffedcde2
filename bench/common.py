"""Helpers the bench scripts share: paths, data folder, production settings,
synthetic CT studies, process CPU time, percentiles and load-average text.

Importing this module puts the repository root and tests/ on sys.path, so a
bench run as `.venv/bin/python bench/<name>.py` (bench/ is then sys.path[0])
imports it first and can then import plugin.*, dicomgen and pacs_server.
"""

import contextlib
import os
import shutil
import statistics
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
for _path in (REPO, REPO / "tests"):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

import dicomgen  # noqa: E402

from plugin import launcher  # noqa: E402
from plugin.config import Settings  # noqa: E402

RAM_DISK = Path("/dev/shm")
FRAME_ACCEPT = "multipart/related; type=application/octet-stream; transfer-syntax=*"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


# --- servers -----------------------------------------------------------------------


def production_overrides():
    """Overrides for PacsServer that undo the test harness's (tests/pacs_server.TEST_OVERRIDES):
    production StableAge, disk guard, log level and bcrypt cost. MppsPort 0: no MPPS
    listener, which would otherwise take the fixed port 4243 and collide with any other
    PACS on the machine (no bench measures MPPS)."""
    base = launcher.load_base_config()
    return {
        "StableAge": base["StableAge"],
        "Pacs": {
            "MinFreeDiskMB": base["Pacs"]["MinFreeDiskMB"],
            "LogLevel": base["Pacs"]["LogLevel"],
            # orthanc.json leaves BcryptCost to the plugin's default: ask the plugin.
            "BcryptCost": Settings.from_configuration(base, environ={}).bcrypt_cost,
            "MppsPort": 0,
        },
    }


def without_tcp_nodelay(environ):
    """``environ`` without TCP_NODELAY: a process started with it behaves as a stock
    dcmtk tool or Debian's Orthanc (Nagle on)."""
    return {name: value for name, value in environ.items() if name != "TCP_NODELAY"}


def process_cpu_seconds(pid):
    """User + system CPU seconds a process has used so far (from /proc)."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


# --- data folder -------------------------------------------------------------------


def choose_root(requested, needed_bytes, name):
    """A fresh folder pacs-bench-<name>-* under --data-dir, else under /dev/shm if it has
    twice ``needed_bytes`` free (so that a disk does not decide the figures), else under
    the temp dir; returns (folder, why it is there)."""
    if requested:
        base, why = Path(requested), "--data-dir"
    elif RAM_DISK.is_dir() and shutil.disk_usage(RAM_DISK).free > 2 * needed_bytes:
        base, why = RAM_DISK, "tmpfs with room"
    else:
        base, why = Path(tempfile.gettempdir()), "no tmpfs with room"
    base.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f"pacs-bench-{name}-", dir=base)), why


@contextlib.contextmanager
def kept_on_failure(root):
    """Remove ``root`` when the block succeeds; when it fails (Ctrl-C included) keep it,
    with the Orthanc logs in it, and say where."""
    try:
        yield root
    except BaseException:
        print(f"failed: data and Orthanc logs kept in {root}", file=sys.stderr)
        raise
    shutil.rmtree(root)


# --- synthetic CT studies ------------------------------------------------------------


@dataclass
class Study:
    study_uid: str
    series_uid: str
    sop_uids: list
    paths: list
    frame_bytes: int  # pixel bytes of one frame (16-bit)

    def frame_path(self, sop_uid):
        return f"/dicom-web/studies/{self.study_uid}/series/{self.series_uid}/instances/{sop_uid}/frames/1"


def pixel_buffer(size):
    """One size x size phantom slice's pixels, for every image to reuse: drawing a
    phantom per slice is what makes a big series slow to generate."""
    return dicomgen.ct_series(dicomgen.StudySpec(), slices=1, rows=size, cols=size)[0].PixelData


def write_ct_study(folder, slices, size, description, pixels=None):
    """A new CT study (new UIDs), one series of ``slices`` size x size 16-bit images that
    all share one pixel buffer, written as files into ``folder``."""
    if pixels is None:
        pixels = pixel_buffer(size)
    spec = dicomgen.StudySpec(description=description)
    datasets = dicomgen.ct_series(spec, slices=slices, rows=size, cols=size, pixels=pixels)
    paths = dicomgen.write(datasets, folder)
    return Study(
        spec.study_uid, datasets[0].SeriesInstanceUID, [ds.SOPInstanceUID for ds in datasets], paths, size * size * 2
    )


# --- statistics and report lines ------------------------------------------------------
# Three percentile definitions are in use; each bench keeps the one its published
# figures were taken with.


def percentile(values, fraction):
    """The sorted value at index int(fraction * n) (guard, viewer); NaN for no values."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def percentile_nearest(values, fraction):
    """The sorted value nearest to rank fraction * (n - 1) (reports)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


def percentile_interpolated(values, pct):
    """Linear interpolation between ranks, ``pct`` a whole percent (worklist):
    statistics.quantiles(method="inclusive")."""
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    return statistics.quantiles(ordered, n=100, method="inclusive")[pct - 1]


def verdict(ok):
    return "PASS" if ok else "FAIL"


def load_averages():
    """The 1, 5 and 15 minute load averages, e.g. "0.52 0.61 0.70"."""
    return " ".join(f"{value:.2f}" for value in os.getloadavg())
