"""Start Orthanc with the PACS configuration.

`make run` and the test harness both go through here, so what the tests start
is what a clinic runs. The committed ``orthanc.json`` holds every static
setting; this module only fills in what depends on the environment (ports,
data folder, absolute paths), writes the result into the data folder and
starts Debian's Orthanc with ``TCP_NODELAY=1`` (without it DCMTK leaves Nagle
on and a stock modality stores about 17 images/s). A site's own settings can
live in a JSON file named by ``PACS_CONFIG_FILE`` (a container mounts it),
merged over the result: only what the site changes, so an upgrade brings the
new defaults of everything else.

Standard library only: it runs before the virtual environment exists.
"""

import copy
import json
import os
import sys
import urllib.error
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BASE_CONFIG = REPO / "orthanc.json"
ENTRY_SCRIPT = REPO / "plugin" / "entry.py"
DICOM_AUDIT_SCRIPT = REPO / "plugin" / "dicom_audit.lua"  # C-FIND by nodes -> the audit trail
ORTHANC_BINARY = "/usr/sbin/Orthanc"


def load_base_config(path=BASE_CONFIG):
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def merge(base, overrides):
    """Return ``base`` updated by ``overrides``, recursing into objects."""
    merged = copy.deepcopy(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def build_config(data_dir, http_port, dicom_port, overrides=None, base=None):
    """The full Orthanc configuration for one PACS instance."""
    data_dir = Path(data_dir).resolve()
    config = load_base_config() if base is None else copy.deepcopy(base)
    storage = data_dir / config["StorageDirectory"]
    config.update(
        HttpPort=int(http_port),
        DicomPort=int(dicom_port),
        StorageDirectory=str(storage),
        IndexDirectory=str(data_dir / config["IndexDirectory"]),
        PythonScript=str(ENTRY_SCRIPT),
        LuaScripts=[str(DICOM_AUDIT_SCRIPT)],
    )
    config["Pacs"] = dict(config.get("Pacs", {}), DataDir=str(data_dir))
    return merge(config, overrides or {})


def write_config(config, data_dir):
    run_dir = Path(data_dir).resolve() / "run"
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / "orthanc.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(config, indent=2), encoding="utf-8")
    os.chmod(tmp, 0o600)
    tmp.replace(path)
    return path


def orthanc_environment(environ=None):
    env = dict(os.environ if environ is None else environ)
    env["TCP_NODELAY"] = "1"
    return env


def orthanc_command(config_path, verbose=False):
    command = [ORTHANC_BINARY, str(config_path)]
    if verbose:
        command.insert(1, "--verbose")
    return command


def settings_from_environment(environ):
    """Ports and data folder from the PACS_* variables of SPEC.md."""
    return {
        "data_dir": environ.get("PACS_DATA_DIR") or str(REPO / "data"),
        "http_port": _port(environ, "PACS_HTTP_PORT", 8042),
        "dicom_port": _port(environ, "PACS_DICOM_PORT", 4242),
    }


def site_config(environ):
    """The site's settings from the JSON file named by PACS_CONFIG_FILE ({} when unset)."""
    name = environ.get("PACS_CONFIG_FILE", "")
    if not name:
        return {}
    try:
        with open(name, encoding="utf-8") as handle:
            config = json.load(handle)
    except OSError as error:
        raise SystemExit(f"PACS_CONFIG_FILE: cannot read {name}: {error.strerror}") from None
    except ValueError as error:
        raise SystemExit(f"PACS_CONFIG_FILE: {name} is not valid JSON: {error}") from None
    if not isinstance(config, dict):
        raise SystemExit(f"PACS_CONFIG_FILE: {name} must hold a JSON object")
    return config


def health(environ, timeout=4):
    """The container's health check: 0 when /pacs/health answers 200 on this machine."""
    url = f"http://127.0.0.1:{_port(environ, 'PACS_HTTP_PORT', 8042)}/pacs/health"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as answer:
            print(answer.read(500).decode("utf-8", "replace"))
            return 0
    except urllib.error.HTTPError as error:  # 503 names the failing part
        print(f"{error.code} {error.read(500).decode('utf-8', 'replace')}")
    except OSError as error:
        print(f"no answer from {url}: {error}")
    return 1


def _port(environ, name, default):
    raw = environ.get(name, "")
    if not raw:
        return default
    if not raw.isdigit() or not 0 < int(raw) < 65536:
        raise SystemExit(f"{name} must be a TCP port number (1-65535), not {raw!r}")
    return int(raw)


def main(argv):
    if argv[1:2] == ["health"]:
        return health(os.environ)
    settings = settings_from_environment(os.environ)
    Path(settings["data_dir"]).mkdir(parents=True, exist_ok=True)
    config = build_config(**settings, overrides=site_config(os.environ))
    path = write_config(config, settings["data_dir"])
    if argv[1:2] == ["config"]:
        print(path)
        return 0
    print(
        f"PACS: HTTP on port {settings['http_port']}, DICOM on port "
        f"{settings['dicom_port']} (AE {config['DicomAet']}), data in "
        f"{Path(settings['data_dir']).resolve()}",
        flush=True,
    )
    command = orthanc_command(path, verbose="--verbose" in argv)
    os.execve(command[0], command, orthanc_environment())
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
