"""A real coturn (Debian's ``turnserver``) for the e2e tests: loopback only, TURN REST auth.

``coturn(secret)`` starts ``turnserver`` in the foreground on a free 127.0.0.1 port with
``--use-auth-secret --static-auth-secret=<secret>``: no daemon, no configuration file, its
own user database in a temporary directory, listening and relaying on 127.0.0.1 only, no
TLS/DTLS, no CLI. ``--allow-loopback-peers`` is needed because the peers (the browsers'
relay candidates, our test client) are on 127.0.0.1 too. The server is ready when it answers
a STUN Binding request. Every server started is stopped at the end of the test.

The coturn package is required, never skipped: CI installs it (``.ci/run``).
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from signaling.tests.e2e.turn_client import TurnClient
from signaling.tests.fixtures import free_port

TURNSERVER = Path("/usr/bin/turnserver")
REALM = "signaling.test"
READY_TIMEOUT_S = 15.0
READY_POLL_S = 0.1
STOP_TIMEOUT_S = 5.0


@dataclass
class Coturn:
    """A running ``turnserver``."""

    port: int
    secret: str
    process: subprocess.Popen[bytes]
    workdir: Path

    @property
    def turn_url(self) -> str:
        """The ``TURN_URLS`` value that points at this server over UDP."""
        return f"turn:127.0.0.1:{self.port}?transport=udp"

    def log_text(self) -> str:
        """What the server logged (for assertion messages)."""
        path = self.workdir / "turnserver.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        """Terminate the process and remove its files."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.workdir, ignore_errors=True)


def free_udp_and_tcp_port() -> int:
    """A 127.0.0.1 port free for TCP and UDP (turnserver listens on both)."""
    while True:
        port = free_port()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            try:
                udp.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port


def turnserver_command(port: int, secret: str, workdir: Path) -> list[str]:
    """The ``turnserver`` command line the tests (and the README's compose service) rely on."""
    return [
        str(TURNSERVER),
        "-n",  # no configuration file
        "--listening-ip=127.0.0.1",
        "--relay-ip=127.0.0.1",
        f"--listening-port={port}",
        "--use-auth-secret",
        f"--static-auth-secret={secret}",
        f"--realm={REALM}",
        "--allow-loopback-peers",
        "--no-cli",
        "--no-tls",
        "--no-dtls",
        "--fingerprint",
        f"--userdb={workdir / 'turndb'}",
        f"--pidfile={workdir / 'turnserver.pid'}",
        f"--log-file={workdir / 'turnserver.log'}",
        "--simple-log",
        "--no-stdout-log",
    ]


def start_coturn(secret: str) -> Coturn:
    """Start ``turnserver`` and wait until it answers STUN; fails with its log otherwise."""
    if not TURNSERVER.exists():
        pytest.fail(f"{TURNSERVER} is missing: apt-get install -y coturn (CI's .ci/run installs it)")
    workdir = Path(tempfile.mkdtemp(prefix="e2e-coturn-"))
    port = free_udp_and_tcp_port()
    process = subprocess.Popen(
        turnserver_command(port, secret, workdir),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    server = Coturn(port, secret, process, workdir)
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            break
        client = TurnClient("127.0.0.1", port, timeout_s=READY_POLL_S)
        try:
            client.binding()
            return server
        except OSError:
            time.sleep(READY_POLL_S)
        finally:
            client.close()
    log = server.log_text()
    server.stop()
    pytest.fail(f"turnserver did not answer STUN on 127.0.0.1:{port}:\n{log[-3000:]}")


@pytest.fixture
def coturn() -> Iterator[Callable[[str], Coturn]]:
    """``coturn(secret)``: a started ``turnserver``; all are stopped after the test."""
    started: list[Coturn] = []

    def start(secret: str) -> Coturn:
        server = start_coturn(secret)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()
