"""The bundled OHIF viewer under /pacs/viewer/ and the QIDO layer it searches through
(their routes: plugin/viewer/routes.py)."""

from pathlib import Path

from plugin.viewer.app_config import app_config
from plugin.viewer.assets import ViewerAssets

DEFAULT_ROOT = Path(__file__).resolve().parents[2] / "build" / "vendor" / "ohif"


def bundled_assets():
    """OHIF's files as `make install` built them, with our app config."""
    return ViewerAssets(DEFAULT_ROOT, app_config)
