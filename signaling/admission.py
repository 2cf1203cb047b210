"""Admission: whether this process takes new Engine.IO sessions, and what ``/readyz`` says.

Two reasons to refuse a new session (SPEC section 7 "Draining", and the overload rule of
docs/protocol.md "Past capacity"):

- *draining*: the process got SIGTERM; it refuses for good and hands its sockets over.
- *overloaded*: the event loop runs late (a timer meant for time t ran at t + lag). A lag of
  ``OVERLOAD_LAG`` ms or more refuses new sessions until the loop has kept time for
  :data:`OVERLOAD_HOLD_S` seconds; sessions already established are never touched, so the
  calls in progress keep their latency instead of every client sharing an ever longer queue.

Sans-IO (STYLE section 1): time comes in as ``now`` (monotonic seconds) and the lag as
measured by the caller (:mod:`signaling.lifecycle` samples the loop); nothing here imports
asyncio, Django or ``time``. The polling and WebSocket handshakes and the readiness view ask
:meth:`Admission.refusal`; one object per process (``signaling.lifecycle.admission``).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

# Once the loop lagged, refuse for this long after the last late sample: a loop that keeps
# time for a moment between bursts is not yet a loop with room to spare (no flapping).
OVERLOAD_HOLD_S = 5.0


class Refusal(StrEnum):
    """Why a new session is refused: the ``code`` of the 503 bodies and the ``/readyz`` status."""

    DRAINING = "draining"
    OVERLOADED = "overloaded"


REFUSAL_MESSAGES = {
    Refusal.DRAINING: "this instance is shutting down; connect to another one",
    Refusal.OVERLOADED: "this instance is past its capacity; retry later or connect to another one",
}


@dataclass(slots=True)
class LagMonitor:
    """Decides *overloaded* from event-loop lag samples (hysteresis: :data:`OVERLOAD_HOLD_S`).

    Args:
        threshold_s: a sample at or above this lag trips the monitor; 0 turns it off.
        hold_s: how long after the last sample at or above the threshold it stays tripped.
    """

    threshold_s: float
    hold_s: float = OVERLOAD_HOLD_S
    last_lag_s: float = 0.0
    max_lag_s: float = 0.0
    _late_until: float | None = None

    def observe(self, lag_s: float, now: float) -> bool:
        """Record one sample taken at ``now``; True when this sample tripped the monitor."""
        self.last_lag_s = lag_s
        self.max_lag_s = max(self.max_lag_s, lag_s)
        if self.threshold_s <= 0 or lag_s < self.threshold_s:
            return False
        was_overloaded = self.is_overloaded(now)
        self._late_until = now + self.hold_s
        return not was_overloaded

    def is_overloaded(self, now: float) -> bool:
        """True while within ``hold_s`` of the last sample that reached the threshold."""
        return self._late_until is not None and now < self._late_until


class Admission:
    """The process's answer to "may a new Engine.IO session start here?"."""

    def __init__(self, lag: LagMonitor) -> None:
        self.lag = lag
        self._is_draining = False

    @property
    def is_draining(self) -> bool:
        return self._is_draining

    def start_draining(self) -> bool:
        """Refuse every new session from now on; True the first time (False if already draining)."""
        if self._is_draining:
            return False
        self._is_draining = True
        return True

    def refusal(self, now: float) -> Refusal | None:
        """Why a new session would be refused at ``now``, or None when it is welcome."""
        if self._is_draining:
            return Refusal.DRAINING
        if self.lag.is_overloaded(now):
            return Refusal.OVERLOADED
        return None
