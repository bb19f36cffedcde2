"""The bundled OHIF viewer under /pacs/viewer/ and the QIDO layer it searches through."""

from pathlib import Path

from plugin.viewer import qido
from plugin.viewer.app_config import app_config
from plugin.viewer.assets import ViewerAssets

DEFAULT_ROOT = Path(__file__).resolve().parents[2] / "build" / "vendor" / "ohif"


def register(router, host, audit, scope):
    assets = ViewerAssets(DEFAULT_ROOT, app_config)
    # Orthanc hands /pacs/viewer/ over as /pacs/viewer: both are the app's root.
    router.add("GET", "/pacs/viewer", lambda request: assets.respond(request, ""))
    router.add("GET", "/pacs/viewer/(?P<path>.*)", lambda request, path: assets.respond(request, path))
    qido.register(router, host, audit, scope)  # searches are audited; a referrer's are answered from scope
    return assets
