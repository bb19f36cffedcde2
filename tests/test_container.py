"""The image a clinic runs, built and run with podman or docker where one works.

Built from the Dockerfile on both Debian releases (trixie, the default, and
bookworm), then run as a clinic would: every port published, healthy, not
root, the first admin's password from a file, TZ honoured, a stop right after
the start and a stop once running both exit 0, and the data volume outlives the
container. Where no engine can run a container it skips, saying why.

The engine keeps its layer cache between runs: measured here with podman 4.3
(runc, overlay) on 2 cores, a cold build took 87 s (bookworm) and 99 s (trixie),
a build after a source change about 6 s; this whole file took about 4 minutes
cold and 45 s warm (making a missing base image adds up to a minute each).
Where the engine cannot pull debian:<release>-slim (no route to a registry),
.ci/base-image makes it from Debian's archive (root and debootstrap needed).
Where the machine reaches the package registries only with its own certificate
authorities and pip/npm settings, the build gets them as build secrets (never
in the Dockerfile, never in a layer).
"""

import json
import os
import re
import resource
import shutil
import subprocess
import time
import uuid
from pathlib import Path

import pytest
import requests
from pynetdicom import AE
from pynetdicom.sop_class import Verification

REPO = Path(__file__).resolve().parent.parent
RELEASES = ("trixie", "bookworm")
PASSWORD = "Harbour-lantern-47-quietly"
BUILD_TIMEOUT = 1200
CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
SECRET_CA = "/run/secrets/ca-certificates"
# The variables .ci/other-release passes into its root for the same reason.
REGISTRY_VARIABLES = re.compile(
    r"^((PIP|NPM_CONFIG)_[A-Z0-9_]+|npm_config_[a-z0-9_]+|(https?|no)_proxy|(HTTPS?|NO)_PROXY)$"
)
TIMINGS = REPO / "build" / "container-test.txt"

pytestmark = [pytest.mark.container, pytest.mark.timeout(BUILD_TIMEOUT * 2)]


def note(line):
    """Figures for the reader of the run (and for the README): printed and kept in build/."""
    print(line)
    TIMINGS.parent.mkdir(exist_ok=True)
    with TIMINGS.open("a", encoding="utf-8") as handle:
        handle.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {line}\n")


class Engine:
    """podman or docker on the command line."""

    def __init__(self, command):
        self.command = command
        self.run_flags = []

    @property
    def podman(self):
        return self.command == "podman"

    def __call__(self, *args, check=True, timeout=120):
        result = subprocess.run([self.command, *args], capture_output=True, text=True, timeout=timeout)
        if check and result.returncode != 0:
            raise AssertionError(
                f"{self.command} {' '.join(args[:3])} ... failed ({result.returncode}):\n{result.stderr[-3000:]}"
            )
        return result

    def inspect(self, name, template):
        return self("inspect", "--format", template, name).stdout.strip()


def find_engine():
    """A working engine, or pytest.skip saying why there is none."""
    reasons = []
    for command in ("podman", "docker"):
        if shutil.which(command) is None:
            reasons.append(f"no {command}")
            continue
        answer = subprocess.run([command, "info"], capture_output=True, text=True, timeout=60)
        if answer.returncode == 0:
            return Engine(command)
        reasons.append(f"{command} info: {(answer.stderr.strip().splitlines() or ['failed'])[-1][:200]}")
    pytest.skip("no container engine can run here: " + "; ".join(reasons))


def ensure_base(engine, release):
    image = f"docker.io/library/debian:{release}-slim"
    if engine("image", "inspect", image, check=False).returncode == 0:
        return
    if engine("pull", image, check=False, timeout=600).returncode == 0:
        return
    if os.geteuid() != 0 or shutil.which("debootstrap") is None:
        pytest.skip(f"{image} cannot be pulled and cannot be made here (.ci/base-image needs root and debootstrap)")
    made = subprocess.run(
        [str(REPO / ".ci" / "base-image"), release, engine.command], capture_output=True, text=True, timeout=900
    )
    if made.returncode != 0:
        pytest.skip(f"{image} cannot be pulled, and .ci/base-image failed: {made.stderr[-500:]}")


def settle_run_flags(engine, release):
    """Limits the engine can set here. Podman asks for more open files and processes than
    this machine's hard limits when it has no CAP_SYS_RESOURCE (a VM's root may lack it):
    then the container gets limits within the machine's own."""
    image = f"docker.io/library/debian:{release}-slim"
    if engine("run", "--rm", image, "true", check=False).returncode == 0:
        return
    files = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    limit = min(files if files != resource.RLIM_INFINITY else 65536, 65536)
    engine.run_flags = ["--ulimit", f"nofile={limit}:{limit}", "--ulimit", "nproc=16384:16384"]
    tried = engine("run", "--rm", *engine.run_flags, image, "true", check=False)
    if tried.returncode != 0:
        pytest.skip(f"{engine.command} cannot run a container here: {tried.stderr.strip()[-300:]}")


def build_secrets(folder):
    """--secret arguments giving the build this machine's certificate authorities and
    pip/npm/proxy settings, as .ci/other-release gives them to its root."""
    exports = {name: value for name, value in os.environ.items() if REGISTRY_VARIABLES.match(name)}
    exports = {
        name: value for name, value in exports.items() if not value.startswith("/") or value == str(CA_BUNDLE)
    }  # host folders mean nothing inside
    arguments = []
    if CA_BUNDLE.is_file():
        exports = {name: SECRET_CA if value == str(CA_BUNDLE) else value for name, value in exports.items()}
        exports.update(
            PIP_CERT=SECRET_CA,
            SSL_CERT_FILE=SECRET_CA,
            REQUESTS_CA_BUNDLE=SECRET_CA,
            NODE_EXTRA_CA_CERTS=SECRET_CA,
            npm_config_cafile=SECRET_CA,
        )
        arguments += ["--secret", f"id=ca-certificates,src={CA_BUNDLE}"]
    environment = folder / "build-env"
    environment.write_text(
        "".join(f"export {name}='{value}'\n" for name, value in sorted(exports.items()) if "'" not in value)
    )
    environment.chmod(0o600)
    return arguments + ["--secret", f"id=build-env,src={environment}"]


@pytest.fixture(scope="module")
def engine():
    return find_engine()


@pytest.fixture(scope="module")
def images(engine, tmp_path_factory):
    """{release: image tag}, each built once for this module (from the engine's cache when it can)."""
    secrets = build_secrets(tmp_path_factory.mktemp("build-secrets"))
    tags = {}
    for release in RELEASES:
        ensure_base(engine, release)
        tag = f"localhost/pacs-test:{release}"
        started = time.monotonic()
        engine(
            "build",
            *(["--format", "docker"] if engine.podman else []),
            "--build-arg",
            f"DEBIAN_RELEASE={release}",
            *secrets,
            "-t",
            tag,
            str(REPO),
            timeout=BUILD_TIMEOUT,
        )
        size = int(engine("image", "inspect", "--format", "{{.Size}}", tag).stdout.strip())
        note(
            f"container-test: {engine.command} build {release} took {time.monotonic() - started:.0f} s, "
            f"image {size / 1e6:.0f} MB"
        )
        tags[release] = tag
    settle_run_flags(engine, RELEASES[0])
    return tags


class Container:
    """One run of the image, published on the loopback on free ports; always removed."""

    def __init__(self, engine, image, volume, environment=(), mounts=()):
        self.engine, self.image, self.volume = engine, image, volume
        self.name = f"pacs-test-{uuid.uuid4().hex[:8]}"
        self.environment, self.mounts = list(environment), list(mounts)
        self.ports = {}

    def start(self):
        published = [argument for port in (8042, 4242, 4243) for argument in ("-p", f"127.0.0.1::{port}")]
        environment = [argument for pair in self.environment for argument in ("-e", pair)]
        mounts = [argument for mount in [f"{self.volume}:/var/lib/pacs", *self.mounts] for argument in ("-v", mount)]
        self.engine(
            "run", "-d", "--name", self.name, *self.engine.run_flags, *published, *environment, *mounts, self.image
        )
        for line in self.engine("port", self.name).stdout.splitlines():
            inside, outside = line.split(" -> ")
            self.ports[int(inside.split("/")[0])] = int(outside.rsplit(":", 1)[1])
        return self

    def url(self, path):
        return f"http://127.0.0.1:{self.ports[8042]}{path}"

    def health(self):
        if self.engine.podman:  # no systemd timers here to run the check: run it as they would
            self.engine("healthcheck", "run", self.name, check=False)
        return self.engine.inspect(self.name, "{{.State.Health.Status}}")

    def wait_healthy(self, timeout=120):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.health() == "healthy":
                return time.monotonic()
            if self.engine.inspect(self.name, "{{.State.Running}}") != "true":
                break
            time.sleep(1)
        raise AssertionError(f"{self.name} not healthy ({self.health()}):\n{self.logs()[-4000:]}")

    def stop(self):
        """(exit code, seconds `stop` took)."""
        started = time.monotonic()
        self.engine("stop", "-t", "30", self.name, timeout=60)
        took = time.monotonic() - started
        return int(self.engine.inspect(self.name, "{{.State.ExitCode}}")), took

    def logs(self):
        answer = self.engine("logs", self.name, check=False)
        return answer.stdout + answer.stderr

    def remove(self):
        self.engine("rm", "-f", "-v", self.name, check=False)


@pytest.fixture
def volume(engine):
    name = f"pacs-test-{uuid.uuid4().hex[:8]}"
    engine("volume", "create", name)
    try:
        yield name
    finally:
        engine("volume", "rm", "-f", name, check=False)


@pytest.fixture
def password_file(tmp_path):
    secret = tmp_path / "admin_password"
    secret.write_text(PASSWORD + "\n")
    if os.geteuid() == 0:
        os.chown(secret, 999, 999)  # the image's user: see the Dockerfile
        secret.chmod(0o400)
    else:
        secret.chmod(0o644)
    return secret


@pytest.fixture
def containers():
    started = []
    yield started
    for container in started:
        container.remove()


def echo(port, called_aet):
    ae = AE(ae_title="ECHOSCU")
    ae.add_requested_context(Verification)
    association = ae.associate("127.0.0.1", port, ae_title=called_aet)
    try:
        return association.is_established and association.send_c_echo().Status == 0
    finally:
        if association.is_established:
            association.release()


def login(container):
    return requests.post(
        container.url("/pacs/api/auth/login"), timeout=30, json={"username": "admin", "password": PASSWORD}
    )


def test_the_image_as_a_clinic_runs_it(engine, images, volume, password_file, containers):
    image = images["trixie"]
    exposed = json.loads(engine.inspect(image, "{{json .Config.ExposedPorts}}"))
    assert set(exposed) == {"4242/tcp", "4243/tcp", "8042/tcp"}
    assert engine.inspect(image, "{{.Config.User}}") == "orthanc"

    first = Container(
        engine,
        image,
        volume,
        ["TZ=Europe/Paris", "PACS_ADMIN_PASSWORD_FILE=/run/secrets/admin_password"],
        [f"{password_file}:/run/secrets/admin_password:ro"],
    ).start()
    containers.append(first)
    started = time.monotonic()
    healthy_at = first.wait_healthy()
    note(f"container-test: {engine.command} trixie container healthy {healthy_at - started:.1f} s after run")
    assert set(first.ports) == {8042, 4242, 4243}
    assert echo(first.ports[4242], "PACS") and echo(first.ports[4243], "PACS_MPPS")
    token = login(first)
    assert token.status_code == 200, token.text
    assert "time_zone=Europe/Paris" in first.logs()
    uids = first.engine("exec", first.name, "sh", "-c", "cat /proc/[0-9]*/status | grep ^Uid:").stdout.split()
    assert {value for value in uids if value.isdigit()} == {"999"}  # every process, PID 1 included
    order = requests.post(
        first.url("/pacs/api/orders"),
        timeout=30,
        headers={"Authorization": f"Bearer {token.json()['access_token']}"},
        json={
            "patient_id": "VOL-1",
            "patient_name": "Keep^Me",
            "modality": "CT",
            "scheduled_at": "2026-11-23T09:00+01:00",
            "procedure": "CT HEAD",
        },
    )
    assert order.status_code == 201 and order.json()["scheduled_at"] == "2026-11-23T08:00:00Z"

    code, took = first.stop()
    note(f"container-test: {engine.command} stop of a running trixie container: exit {code} in {took:.1f} s")
    assert code == 0, first.logs()[-3000:]
    log = first.logs()
    assert (
        log.index("event=plugin_stopped") < log.index("Python plugin is finalizing") < log.index("Orthanc has stopped")
    )

    second = Container(engine, image, volume).start()  # the same volume, no password given
    containers.append(second)
    second.wait_healthy()
    token = login(second)
    assert token.status_code == 200, token.text
    orders = requests.get(
        second.url("/pacs/api/orders"), timeout=30, headers={"Authorization": f"Bearer {token.json()['access_token']}"}
    ).json()
    assert [item["patient_id"] for item in orders["items"]] == ["VOL-1"]
    code, _took = second.stop()
    assert code == 0


@pytest.mark.parametrize("release", RELEASES)
def test_a_stop_right_after_the_start_is_clean_and_quick(engine, images, volume, containers, release):
    container = Container(engine, images[release], volume).start()
    containers.append(container)
    code, took = container.stop()
    note(f"container-test: {engine.command} stop right after run ({release}): exit {code} in {took:.2f} s")
    assert code == 0 and took < 2, container.logs()[-3000:]


@pytest.mark.parametrize("release", RELEASES)
def test_a_stop_once_running_exits_0_on_each_release(engine, images, volume, containers, release):
    container = Container(engine, images[release], volume).start()
    containers.append(container)
    container.wait_healthy()
    code, took = container.stop()
    note(f"container-test: {engine.command} stop once healthy ({release}): exit {code} in {took:.1f} s")
    assert code == 0, container.logs()[-3000:]
    assert "Segmentation fault" not in container.logs()


def test_the_image_holds_no_build_tools_caches_or_source_maps(engine, images):
    listing = engine(
        "run",
        "--rm",
        *engine.run_flags,
        "--entrypoint",
        "sh",
        images["trixie"],
        "-c",
        "command -v node nodejs npm gcc; ls -d /root/.npm /root/.cache 2>/dev/null; "
        "find /opt/pacs/build/vendor -name '*.map' | head -3; "
        "/opt/pacs/.venv/bin/python -c 'import zoneinfo; print(zoneinfo.ZoneInfo(\"Europe/Paris\"))'",
    )
    assert listing.stdout.split() == ["Europe/Paris"], listing.stdout


def test_a_build_secret_never_reaches_the_image(engine, images):
    history = engine("history", "--no-trunc", images["trixie"]).stdout
    assert "BEGIN CERTIFICATE" not in history and "PIP_CERT" not in history
    files = engine(
        "run",
        "--rm",
        *engine.run_flags,
        "--entrypoint",
        "sh",
        images["trixie"],
        "-c",
        "ls /run/secrets 2>/dev/null; env | grep -c -E '^(PIP|npm_config)_' || true",
    ).stdout.split()
    assert files == ["0"]
