"""This process under its ASGI server: admission, the event-loop lag sampler, the drain on SIGTERM.

SPEC section 7 "Draining": on SIGTERM the process refuses new Engine.IO sessions and
``/readyz`` answers 503 ``draining`` at once (before the service instance ever started, if no
client came yet); every established session's *transport* is closed (WebSocket close frame;
polling: the pending or next GET ends the session) through the same path as a lost transport
(``SignalingApp.on_close`` with ``CloseReason.SERVER_SHUTTING_DOWN``), never with a Socket.IO
DISCONNECT, so that a stock client reconnects by itself, to another instance behind a load
balancer. The process then hands over to its server's own shutdown as soon as it holds no
socket (:meth:`Connection.held`), and at the latest ``DRAIN_TIMEOUT`` ms after the
signal. A second SIGTERM, or a SIGINT at any time, hands over at once.

Both servers install their own SIGINT/SIGTERM handlers; this module takes the two signals
*after* them and keeps theirs for the hand-over:

- daphne (Twisted) installs its handlers when its reactor starts: :func:`hook_daphne` (called
  by ``signaling_project.asgi``) runs :func:`on_server_started` from ``callWhenRunning``; the
  hand-over is ``reactor.stop()``.
- uvicorn installs them before the ASGI lifespan starts: :func:`serve_lifespan` runs
  :func:`on_server_started` on ``lifespan.startup``; the hand-over sets the server's
  ``should_exit`` (and ``force_exit`` for "at once"), as uvicorn's own handler does, without
  uvicorn re-raising a captured SIGTERM at exit (which would end the process with status 143).

Overload (docs/protocol.md "Past capacity"): a timer every :data:`LAG_SAMPLE_INTERVAL_S`
measures how late the loop runs it and feeds :class:`~signaling.admission.LagMonitor`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
import threading
import time
from types import FrameType
from typing import Any

from django.conf import settings

from signaling.admission import Admission, LagMonitor
from signaling.consumers.connection import Connection
from signaling.exit_watchdog import exit_after
from signaling.protocol import CloseReason

logger = logging.getLogger(__name__)

# How often the loop's lateness is measured: ten cheap timer callbacks a second.
LAG_SAMPLE_INTERVAL_S = 0.1
# How often a drain looks whether the last socket is gone.
HELD_CHECK_INTERVAL_S = 0.05
# With recovery on, the inbox keeps running this long after the last socket is gone (within
# DRAIN_TIMEOUT): a relay a peer sent before it heard of a hold still reaches this instance,
# which keeps it for the held member (signaling.service.recovery).
RECOVERY_LINGER_S = 1.0
# After the hand-over, the server's own shutdown gets this long; then the process exits 0
# anyway, logging the tasks and threads it still waited for (signaling.exit_watchdog): a last
# resort, so that a drained instance always ends, as SPEC section 7 asks.
SHUTDOWN_GRACE_S = 5.0

_admission: Admission | None = None
_started = False
_background: set[asyncio.Task[None]] = set()


def admission() -> Admission:
    """The process's :class:`Admission`, built from settings on first use."""
    global _admission
    if _admission is None:
        _admission = Admission(LagMonitor(threshold_s=settings.SIGNALING.overload_lag_ms / 1000))
    return _admission


# -- server hooks ------------------------------------------------------------------------------


def on_server_started() -> None:
    """Take SIGTERM/SIGINT and start the lag sampler; once, in the server's main thread.

    Called after the server installed its own signal handlers (see the module docstring).
    """
    global _started
    if _started:
        return
    _started = True
    loop = asyncio.get_event_loop()
    if settings.SIGNALING.overload_lag_ms > 0:
        LagSampler(loop, admission().lag).start()
    if threading.current_thread() is threading.main_thread():
        Drainer(loop, admission(), timeout_s=settings.SIGNALING.drain_timeout_ms / 1000).install()
    else:  # signals reach only the main thread (e.g. a server run inside a test thread)
        logger.warning("not in the main thread: SIGTERM will not drain this process")


def hook_daphne() -> None:
    """Under daphne, run :func:`on_server_started` once its reactor runs (a no-op elsewhere)."""
    if "daphne.server" not in sys.modules:
        return
    from twisted.internet import reactor

    reactor.callWhenRunning(on_server_started)  # type: ignore[attr-defined]


async def serve_lifespan(receive: Any, send: Any) -> None:
    """The ASGI lifespan protocol (uvicorn sends it; daphne does not)."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            on_server_started()
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


# -- overload ----------------------------------------------------------------------------------


class LagSampler:
    """A timer that measures how late the event loop runs it (the loop's lag)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, monitor: LagMonitor) -> None:
        self._loop = loop
        self._monitor = monitor
        self._due = 0.0
        self._was_overloaded = False

    def start(self) -> None:
        self._due = self._loop.time() + LAG_SAMPLE_INTERVAL_S
        self._loop.call_at(self._due, self._tick)

    def _tick(self) -> None:
        ran_at = self._loop.time()
        lag_s = max(0.0, ran_at - self._due)
        now = time.monotonic()
        if self._monitor.observe(lag_s, now):
            logger.warning(
                "overloaded: the event loop ran %d ms late (OVERLOAD_LAG %d ms); refusing new sessions",
                round(lag_s * 1000),
                round(self._monitor.threshold_s * 1000),
            )
        is_overloaded = self._monitor.is_overloaded(now)
        if self._was_overloaded and not is_overloaded:
            logger.warning("no longer overloaded: the event loop keeps time again; accepting new sessions")
        self._was_overloaded = is_overloaded
        self._due = ran_at + LAG_SAMPLE_INTERVAL_S
        self._loop.call_at(self._due, self._tick)


# -- draining ----------------------------------------------------------------------------------


class Drainer:
    """SIGTERM: drain, then hand over to the server; a second SIGTERM or a SIGINT: at once."""

    def __init__(self, loop: asyncio.AbstractEventLoop, admission: Admission, *, timeout_s: float) -> None:
        self._loop = loop
        self._admission = admission
        self._timeout_s = timeout_s
        self._server_handlers: dict[int, Any] = {}

    def install(self) -> None:
        for signum in (signal.SIGTERM, signal.SIGINT):
            self._server_handlers[signum] = signal.signal(signum, self._on_signal)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        # A signal handler runs between two bytecodes of whatever the loop was doing: only
        # schedule the work, as asyncio's own signal handling does.
        with contextlib.suppress(RuntimeError):  # the loop is closed: the process is exiting already
            self._loop.call_soon_threadsafe(self._signalled, signum)

    def _signalled(self, signum: int) -> None:
        if signum == signal.SIGTERM and self._admission.start_draining():
            task = self._loop.create_task(self._drain(), name="signaling-drain")
            _background.add(task)
            task.add_done_callback(_background.discard)
            return
        logger.warning("%s: stopping at once", signal.Signals(signum).name)
        self._hand_over(at_once=True)

    async def _drain(self) -> None:
        deadline = time.monotonic() + self._timeout_s
        sessions = list(Connection.registry.values())
        logger.warning(
            "SIGTERM: draining (new sessions refused, /readyz 503 draining); closing %d session(s), "
            "waiting at most DRAIN_TIMEOUT %d ms",
            len(sessions),
            round(self._timeout_s * 1000),
        )
        for conn in sessions:
            task = self._loop.create_task(close_for_drain(conn))
            _background.add(task)
            task.add_done_callback(_background.discard)
        while any(Connection.held()) and time.monotonic() < deadline:
            await asyncio.sleep(HELD_CHECK_INTERVAL_S)
        sessions_left, websockets_left = Connection.held()
        if sessions_left or websockets_left:
            logger.warning(
                "drain: DRAIN_TIMEOUT reached with %d session(s) and %d websocket(s) still open; stopping",
                sessions_left,
                websockets_left,
            )
        else:
            if settings.SIGNALING.recovery_window_ms > 0:
                await asyncio.sleep(max(0.0, min(RECOVERY_LINGER_S, deadline - time.monotonic())))
            logger.warning("drain: no socket left; stopping")
        self._hand_over(at_once=False)

    def _hand_over(self, *, at_once: bool) -> None:
        """Let the server run its own shutdown (see the module docstring), bounded by
        :data:`SHUTDOWN_GRACE_S`."""
        exit_after(SHUTDOWN_GRACE_S, self._loop)
        server = getattr(self._server_handlers.get(signal.SIGTERM), "__self__", None)
        if server is not None and hasattr(server, "should_exit"):  # uvicorn.Server.handle_exit
            server.should_exit = True
            server.force_exit = server.force_exit or at_once
            return
        reactor = sys.modules.get("twisted.internet.reactor")
        if reactor is not None and getattr(reactor, "running", False):
            from twisted.internet.error import ReactorNotRunning

            with contextlib.suppress(ReactorNotRunning):  # already stopping: nothing more to ask
                reactor.stop()
            return
        # Any other server: give it back its handlers and the signal.
        for signum, handler in self._server_handlers.items():
            signal.signal(signum, handler)
        signal.raise_signal(signal.SIGTERM)


async def close_for_drain(conn: Connection) -> None:
    """Close one session's transport the way a lost transport ends (recoverable, no DISCONNECT)."""
    try:
        await conn.close(CloseReason.SERVER_SHUTTING_DOWN)
    except Exception:  # one session's failure stays its own: the drain goes on
        logger.exception("drain: closing session %s failed", conn.eio_sid)
        await conn.abort()
