"""A burst of connects waits in the listening socket's queue, not for a SYN retransmit.

``manage.py serve`` listens with a backlog of ``LISTEN_BACKLOG`` on both servers (daphne's
``-b/-p`` would give Twisted's 50). The server is stopped (SIGSTOP) so that it accepts
nothing; the kernel alone completes the TCP handshakes, up to the backlog, and drops the SYNs
past it. With the server stopped, 300 connects are opened at once: every one completes.
Then the server resumes and serves each of them.
"""

from __future__ import annotations

import os
import selectors
import signal
import socket
from typing import Any

import pytest

from signaling.management.commands.serve import LISTEN_BACKLOG
from signaling.tests.fixtures import HOST

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

BURST = 300
# A handshake the kernel completes takes microseconds; a dropped SYN is retried after 1 s.
# This wait only bounds the test: no connect completes late on a queue that is large enough.
HANDSHAKE_WAIT_S = 0.8


def open_burst(port: int, count: int) -> tuple[list[socket.socket], int]:
    """Start ``count`` non-blocking connects; return the sockets and how many completed."""
    sockets, selector = [], selectors.DefaultSelector()
    for _ in range(count):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        sock.connect_ex((HOST, port))
        selector.register(sock, selectors.EVENT_WRITE)
        sockets.append(sock)
    completed = 0
    for key, _ in selector.select(timeout=HANDSHAKE_WAIT_S):
        if key.fileobj.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0:  # type: ignore[union-attr]
            completed += 1
    selector.close()
    return sockets, completed


@pytest.mark.parametrize("server_kind", ["daphne", "uvicorn"])
def test_a_burst_of_connects_to_a_busy_server_is_queued_whole(live_servers: Any, server_kind: str) -> None:
    # given: a server that takes no connection for now
    (server,) = live_servers(server=server_kind)
    assert BURST < LISTEN_BACKLOG
    os.kill(server.process.pid, signal.SIGSTOP)
    try:
        # when
        sockets, completed = open_burst(server.port, BURST)
    finally:
        os.kill(server.process.pid, signal.SIGCONT)
    try:
        # then: the kernel queued every one (a backlog of 50 completes 51)
        assert completed == BURST
        # and the server serves them once it runs: each gets an HTTP answer
        for sock in sockets[:20]:
            sock.setblocking(True)
            sock.settimeout(30)
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            assert sock.recv(64).startswith(b"HTTP/1.1 200")
    finally:
        for sock in sockets:
            sock.close()
