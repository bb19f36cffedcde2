"""How the PACS is configured and started, without starting it."""

from pathlib import Path

import pytest

from plugin import launcher
from plugin.config import Settings


def test_config_fills_ports_paths_and_keeps_secure_defaults(tmp_path):
    config = launcher.build_config(tmp_path, 18042, 14242)
    assert (config["HttpPort"], config["DicomPort"]) == (18042, 14242)
    assert config["StorageDirectory"] == str(tmp_path / "orthanc")
    assert Path(config["PythonScript"]).is_file()
    assert config["Pacs"]["DataDir"] == str(tmp_path)
    assert config["ExecuteLuaEnabled"] is False
    assert config["RestApiWriteToFileSystemEnabled"] is False
    assert config["WebDavEnabled"] is False
    assert config["HttpDescribeErrors"] is False
    assert config["Worklists"]["Enable"] is False
    assert config["LimitFindResults"] > 0
    assert 0 < config["StableAge"] <= 5
    assert all(p.endswith(".so") and "/" in p for p in config["Plugins"])
    assert not any("ModalityWorklists" in p for p in config["Plugins"])


def test_overrides_merge_into_sections(tmp_path):
    config = launcher.build_config(tmp_path, 1, 2, {"Pacs": {"LogLevel": "DEBUG"}, "StableAge": 1})
    assert config["Pacs"]["LogLevel"] == "DEBUG"
    assert config["Pacs"]["MinFreeDiskMB"] == 500  # untouched keys stay
    assert config["StableAge"] == 1


def test_environment_sets_tcp_nodelay():
    assert launcher.orthanc_environment({"PATH": "/bin"}) == {"PATH": "/bin", "TCP_NODELAY": "1"}


def test_ports_and_data_dir_from_environment(tmp_path):
    settings = launcher.settings_from_environment(
        {"PACS_HTTP_PORT": "9042", "PACS_DICOM_PORT": "5242", "PACS_DATA_DIR": str(tmp_path)}
    )
    assert settings == {"data_dir": str(tmp_path), "http_port": 9042, "dicom_port": 5242}
    defaults = launcher.settings_from_environment({})
    assert (defaults["http_port"], defaults["dicom_port"]) == (8042, 4242)


@pytest.mark.parametrize("value", ["http", "0", "70000", "-1"])
def test_bad_port_is_a_clear_error(value):
    with pytest.raises(SystemExit, match="PACS_HTTP_PORT must be a TCP port"):
        launcher.settings_from_environment({"PACS_HTTP_PORT": value})


def test_written_config_is_private(tmp_path):
    path = launcher.write_config(launcher.build_config(tmp_path, 1, 2), tmp_path)
    assert path.stat().st_mode & 0o077 == 0


def test_plugin_settings_prefer_environment(tmp_path):
    config = launcher.build_config(tmp_path, 1, 2)
    settings = Settings.from_configuration(config, {})
    assert settings.database_url == f"sqlite:///{tmp_path / 'pacs.sqlite'}"
    url = "postgresql://pacs@127.0.0.1:5432/pacs"
    settings = Settings.from_configuration(config, {"PACS_DATABASE_URL": url, "PACS_ADMIN_PASSWORD": "s3cret"})
    assert settings.database_url == url
    assert settings.admin_password == "s3cret"
