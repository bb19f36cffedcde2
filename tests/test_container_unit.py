"""What the container needs from the plugin, without a container engine: the first
admin's password from a file (a Docker secret), a site's orthanc.json merged over
ours (PACS_CONFIG_FILE), the health check command, and the Dockerfile's and
compose file's promises (ports, user, signals, health check)."""

import http.server
import json
import threading
from pathlib import Path

import pytest

from plugin import launcher
from plugin.config import Settings, admin_password

REPO = Path(__file__).resolve().parent.parent
PASSWORD = "Harbour-lantern-47-quietly"


# --- PACS_ADMIN_PASSWORD_FILE ------------------------------------------------------------------


@pytest.mark.parametrize("content", [PASSWORD, PASSWORD + "\n", PASSWORD + "\r\n"])
def test_the_first_admin_password_may_come_from_a_file(tmp_path, content):
    secret = tmp_path / "admin_password"
    secret.write_bytes(content.encode())
    environ = {"PACS_ADMIN_PASSWORD_FILE": str(secret)}
    assert admin_password(environ) == PASSWORD  # the line break an editor or `echo` adds is not part of it
    assert Settings.from_configuration({}, environ).admin_password == PASSWORD


def test_the_password_variable_still_works_and_neither_means_a_random_one():
    assert admin_password({"PACS_ADMIN_PASSWORD": PASSWORD}) == PASSWORD
    assert admin_password({}) == ""


def test_both_or_an_unreadable_file_are_clear_errors(tmp_path):
    secret = tmp_path / "admin_password"
    secret.write_text(PASSWORD)
    with pytest.raises(ValueError, match="not both"):
        admin_password({"PACS_ADMIN_PASSWORD": PASSWORD, "PACS_ADMIN_PASSWORD_FILE": str(secret)})
    with pytest.raises(ValueError, match="PACS_ADMIN_PASSWORD_FILE: cannot read .*missing"):
        admin_password({"PACS_ADMIN_PASSWORD_FILE": str(tmp_path / "missing")})
    secret.write_bytes(b"\xff\xfe")
    with pytest.raises(ValueError, match="cannot read"):
        admin_password({"PACS_ADMIN_PASSWORD_FILE": str(secret)})


# --- PACS_CONFIG_FILE ----------------------------------------------------------------------------


def test_a_sites_config_file_is_merged_over_ours(tmp_path):
    site = tmp_path / "orthanc.json"
    site.write_text(
        json.dumps({"DicomAet": "CLINIC", "Pacs": {"InstitutionName": "Clinique du Lac", "TimeZone": "Europe/Paris"}})
    )
    overrides = launcher.site_config({"PACS_CONFIG_FILE": str(site)})
    config = launcher.build_config(tmp_path / "data", 8042, 4242, overrides)
    assert config["DicomAet"] == "CLINIC"
    assert config["Pacs"]["InstitutionName"] == "Clinique du Lac" and config["Pacs"]["TimeZone"] == "Europe/Paris"
    assert config["Pacs"]["MinFreeDiskMB"] == 500  # ours, where the site says nothing
    assert config["ExecuteLuaEnabled"] is False
    assert launcher.site_config({}) == {}


@pytest.mark.parametrize(
    "content, message", [(None, "cannot read"), ("{", "not valid JSON"), ("[1]", "must hold a JSON object")]
)
def test_a_bad_config_file_stops_the_start_with_a_message(tmp_path, content, message):
    site = tmp_path / "orthanc.json"
    if content is not None:
        site.write_text(content)
    with pytest.raises(SystemExit, match=f"PACS_CONFIG_FILE: .*{message}"):
        launcher.site_config({"PACS_CONFIG_FILE": str(site)})


# --- the health check command -------------------------------------------------------------------


class Health(http.server.BaseHTTPRequestHandler):
    status = 200

    def do_GET(self):  # noqa: N802 (http.server's name)
        body = json.dumps({"status": "ok" if self.status == 200 else "failing"}).encode()
        self.send_response(self.status if self.path == "/pacs/health" else 404)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def health_server():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Health)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_the_health_command_is_0_only_for_a_200(health_server, capsys):
    environ = {"PACS_HTTP_PORT": str(health_server.server_address[1])}
    Health.status = 200
    assert launcher.health(environ) == 0 and '"ok"' in capsys.readouterr().out
    Health.status = 503
    try:
        assert launcher.health(environ) == 1 and "503" in capsys.readouterr().out
    finally:
        Health.status = 200
    health_server.shutdown()
    health_server.server_close()
    assert launcher.health(environ, timeout=1) == 1 and "no answer" in capsys.readouterr().out


# --- what the Dockerfile and compose file promise ---------------------------------------------------


def dockerfile():
    return (REPO / "Dockerfile").read_text()


def test_the_image_exposes_every_port_runs_unprivileged_under_tini_with_a_health_check():
    text = dockerfile()
    assert "EXPOSE 4242 4243 8042" in text
    assert "\nUSER orthanc\n" in text
    assert 'ENTRYPOINT ["/usr/bin/tini", "-e", "143", "--"]' in text
    assert "STOPSIGNAL SIGTERM" in text
    assert '"-m", "plugin.launcher", "health"]' in text
    assert "ARG DEBIAN_RELEASE=trixie" in text and "FROM debian:${DEBIAN_RELEASE}-slim AS build" in text
    runtime = text.split("AS build", 1)[1]
    assert "nodejs" not in runtime.split("FROM", 1)[1] and "*.map" in text


def test_the_compose_file_publishes_http_on_the_loopback_only_and_reads_the_password_from_a_secret():
    text = (REPO / "compose.yaml").read_text()
    for port in ('"127.0.0.1:8042:8042"', '"4242:4242"', '"4243:4243"'):
        assert port in text
    assert "restart: unless-stopped" in text and "PACS_ADMIN_PASSWORD_FILE: /run/secrets/admin_password" in text
    assert "PACS_ADMIN_PASSWORD:" not in text and "TZ:" in text and "healthcheck:" in text
    assert "pacs-data:/var/lib/pacs" in text
