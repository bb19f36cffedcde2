"""The script Orthanc's Python plugin loads (`PythonScript` in orthanc.json).

Orthanc puts this file's folder first on sys.path; we want the repository
root instead (so `plugin` is a package) and our virtual environment's
site-packages before Debian's (Debian ships an older PyJWT on the embedded
interpreter's path).
"""

import os
import sys


def _prepare_path():
    here = os.path.dirname(os.path.abspath(__file__))
    repo = os.path.dirname(here)
    venv = os.environ.get("PACS_VENV") or os.path.join(repo, ".venv")
    site = os.path.join(venv, "lib", f"python{sys.version_info[0]}.{sys.version_info[1]}", "site-packages")
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != here]
    sys.path[:0] = [site, repo]


_prepare_path()

from plugin import host  # noqa: E402  (needs the path above)

host.serve()
