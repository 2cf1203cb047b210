"""The deployment files, checked without a Docker engine: the Dockerfile passes hadolint, the
compose file validates against the Compose specification schema, and the image's own entry
command (``docker/start.sh``: migrate, collectstatic, serve) runs as an unprivileged user in a
copy of the build context and serves ``/healthz`` and WhiteNoise's hashed, compressed files."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from signaling.tests.fixtures import HOST, TEST_SECRET, free_port

pytestmark = pytest.mark.e2e

REPO_ROOT = Path(__file__).resolve().parents[3]
VENV_BIN = REPO_ROOT / ".venv" / "bin"
# The image's user (Dockerfile: USER 10001:10001); no passwd entry is needed.
APP_UID = 10001
START_TIMEOUT_S = 90.0
HTTP_TIMEOUT_S = 5.0
# Pinned: installed only into the unprivileged user's virtualenv (see _image_like_venv).
ASYNC_TIMEOUT = "async-timeout==5.0.1"


def _tool(name: str) -> str:
    path = VENV_BIN / name
    assert path.exists(), f"{name} is not installed (./run test installs requirements-dev.txt)"
    return str(path)


def test_dockerfile_passes_hadolint() -> None:
    result = subprocess.run(
        [_tool("hadolint"), "Dockerfile"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60
    )
    assert (result.returncode, result.stdout) == (0, "")


def test_compose_file_validates_against_the_compose_specification() -> None:
    result = subprocess.run(
        [_tool("check-jsonschema"), "--builtin-schema", "vendor.compose-spec", "docker-compose.yml"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_schema_check_refuses_a_broken_file(tmp_path: Path) -> None:
    # given: a dependency condition that the specification does not know
    compose = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())
    compose["services"]["signaling"]["depends_on"]["postgres"]["condition"] = "service_ready"
    broken = tmp_path / "docker-compose.yml"
    broken.write_text(yaml.safe_dump(compose))
    # when
    result = subprocess.run(
        [_tool("check-jsonschema"), "--builtin-schema", "vendor.compose-spec", str(broken)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    # then
    assert result.returncode == 1
    assert "service_ready" in result.stdout


def test_compose_services_wait_for_health_restart_and_keep_backends_private() -> None:
    compose = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert "version" not in compose
    assert services["signaling"]["depends_on"] == {
        "postgres": {"condition": "service_healthy"},
        "redis": {"condition": "service_healthy"},
    }
    assert {name: "healthcheck" in s for name, s in services.items() if name != "coturn"} == {
        "signaling": True,
        "postgres": True,
        "redis": True,
    }
    assert {s["restart"] for s in services.values()} == {"unless-stopped"}
    assert "ports" not in services["redis"] and "ports" not in services["postgres"]
    assert "--requirepass" in services["redis"]["command"]
    environment = services["signaling"]["environment"]
    assert environment["JWT_SECRET"].startswith("${JWT_SECRET:?")
    assert environment["TURN_SECRET"].startswith("${TURN_SECRET:?")
    assert "TURN_URLS" in environment
    assert services["coturn"]["image"].startswith("coturn/coturn")
    assert "--use-auth-secret" in services["coturn"]["command"]
    assert any(arg.startswith("--static-auth-secret=${TURN_SECRET:?") for arg in services["coturn"]["command"])


def _build_context(target: Path) -> None:
    """Copy what the Dockerfile's ``COPY . .`` takes (the tracked files) plus the client bundle."""
    tracked = subprocess.run(
        ["git", "ls-files", "-z"], cwd=REPO_ROOT, capture_output=True, check=True, timeout=30
    ).stdout.split(b"\0")
    for name in filter(None, (entry.decode() for entry in tracked)):
        source = REPO_ROOT / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    bundle = REPO_ROOT / "node_modules" / "socket.io-client" / "dist"
    shutil.copytree(bundle, target / "node_modules" / "socket.io-client" / "dist")
    for writable in ("staticfiles", "data"):
        (target / writable).mkdir()
        os.chown(target / writable, APP_UID, APP_UID)


def _image_like_venv(target: Path) -> Path:
    """A virtualenv like the image's ``/opt/venv`` that the unprivileged user can run.

    The suite's ``.venv`` may sit on an interpreter under a private home (pyenv in /root):
    this one is made from the system's python3.11 and reads the suite's installed packages
    (same CPython minor version) through a ``.pth`` file; ``daphne`` gets its own launcher.
    """
    system_python = shutil.which("python3.11", path="/usr/bin:/bin")
    if system_python is None:
        pytest.skip("needs the system python3.11 (Debian python3) for the unprivileged user")
    subprocess.run([system_python, "-m", "venv", "--without-pip", str(target)], check=True, timeout=60)
    site_packages = next((REPO_ROOT / ".venv" / "lib").glob("python3.*/site-packages"))
    (next((target / "lib").glob("python3.*")) / "site-packages" / "suite-packages.pth").write_text(f"{site_packages}\n")
    # redis-py needs async-timeout below Python 3.11.3 (Debian 12 has 3.11.2).
    subprocess.run(
        [
            str(VENV_BIN / "pip"),
            "install",
            "-q",
            "--disable-pip-version-check",
            "--no-deps",
            "--target",
            str(next((target / "lib").glob("python3.*")) / "site-packages"),
            ASYNC_TIMEOUT,
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    launcher = target / "bin" / "daphne"
    launcher.write_text(
        f"#!{target / 'bin' / 'python'}\nimport sys\nfrom daphne.cli import CommandLineInterface\n"
        "sys.exit(CommandLineInterface.entrypoint())\n"
    )
    launcher.chmod(0o755)
    return target / "bin"


def _get(url: str, **headers: str) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, headers=headers)
    with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT_S) as response:
        return response.status, dict(response.headers), response.read()


@pytest.fixture
def container_app() -> Iterator[tuple[Path, int, subprocess.Popen[str]]]:
    """``docker/start.sh`` running as uid 10001 in a root-owned copy of the build context."""
    if os.geteuid() != 0:
        pytest.skip("switching to the image's unprivileged user needs root (setpriv)")
    app = Path(tempfile.mkdtemp(prefix="container-app-"))
    app.chmod(0o755)
    _build_context(app)
    venv_bin = _image_like_venv(app / "opt-venv")
    port = free_port()
    env = {
        "PATH": f"{venv_bin}:/usr/bin:/bin",
        "HOME": str(app / "data"),
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONUNBUFFERED": "1",
        "HOST": HOST,
        "PORT": str(port),
        "JWT_SECRET": TEST_SECRET,
        "DATABASE_URL": f"sqlite:///{app / 'data' / 'db.sqlite3'}",
        "LOG_LEVEL": "warning",
    }
    argv = ["setpriv", f"--reuid={APP_UID}", f"--regid={APP_UID}", "--clear-groups", "docker/start.sh"]
    process = subprocess.Popen(argv, cwd=app, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        yield app, port, process
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        shutil.rmtree(app, ignore_errors=True)


def _wait_healthy(port: int, process: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        assert process.poll() is None, f"start.sh exited {process.returncode}: {process.stdout.read()}"  # type: ignore[union-attr]
        try:
            if _get(f"http://{HOST}:{port}/healthz")[0] == 200:
                return
        except OSError:
            time.sleep(0.2)
    pytest.fail(f"no /healthz answer on port {port} within {START_TIMEOUT_S} s")


def test_container_entry_command_migrates_collects_and_serves_as_unprivileged_user(
    container_app: tuple[Path, int, subprocess.Popen[str]],
) -> None:
    # given: the entry command started as the image's user
    app, port, process = container_app
    # when
    _wait_healthy(port, process)
    # then: the server process is that user, the database was migrated, static files collected
    status = Path(f"/proc/{process.pid}/status").read_text()
    uid_line = next(line for line in status.splitlines() if line.startswith("Uid:"))
    assert uid_line.split()[1:] == [str(APP_UID)] * 4
    assert (app / "data" / "db.sqlite3").stat().st_uid == APP_UID
    manifest = json.loads((app / "staticfiles" / "staticfiles.json").read_text())["paths"]
    # the image's HEALTHCHECK command agrees
    check = subprocess.run(
        [str(VENV_BIN / "python"), "docker/healthcheck.py"],
        cwd=app,
        env={"PORT": str(port)},
        capture_output=True,
        timeout=30,
    )
    assert check.returncode == 0
    # WhiteNoise serves the hashed name, compressed, cached for good
    hashed = manifest["admin/css/base.css"]
    assert hashed != "admin/css/base.css"
    code, headers, body = _get(f"http://{HOST}:{port}/static/{hashed}", **{"Accept-Encoding": "gzip"})
    assert code == 200
    assert headers["Content-Encoding"] == "gzip"
    assert "immutable" in headers["Cache-Control"]
    assert body[:2] == b"\x1f\x8b"
    # and pages name the hashed files
    _, _, login = _get(f"http://{HOST}:{port}/admin/login/")
    assert f"/static/{hashed}".encode() in login


def test_healthcheck_script_fails_when_nothing_serves() -> None:
    result = subprocess.run(
        [str(VENV_BIN / "python"), "docker/healthcheck.py"],
        cwd=REPO_ROOT,
        env={"PORT": str(free_port())},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 1
    assert result.stderr.startswith("unhealthy: http://127.0.0.1:")
