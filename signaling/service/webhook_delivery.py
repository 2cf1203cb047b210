"""Webhook delivery: this instance's worker that POSTs due outbox events (SPEC section 10).

One task per instance, started with it when ``WEBHOOK_URL`` is set. It claims due events
(``rooms.webhooks.claim_due``: exactly one instance holds an event at a time, a room's
events one after the other in ``seq`` order), signs each with the ``standardwebhooks``
library (``webhook-id``, ``webhook-timestamp``, ``webhook-signature``), POSTs it with httpx
and writes the outcome: 2xx is delivered; any other answer, or none within
``TIMEOUT_S``, is retried on the SPEC schedule with the same ``webhook-id``.

Deliveries run as their own tasks, at most ``MAX_IN_FLIGHT`` at once, each bounded by
``TIMEOUT_S``: a slow or dead receiver holds a few tasks and database rows, never a socket,
a REST call or a room's lock. The worker's database calls run on a thread of their own
(``run_delivery_db``). An outcome the database could not take (an outage) is kept and
written before the next claim: the room's later events follow as soon as the database
answers, instead of waiting for the lease to run out. :meth:`WebhookDelivery.stop` (a clean
shutdown) cancels the deliveries in flight and releases their leases, so another instance
takes them over at once; a crash leaves them leased for up to ``rooms.webhooks.LEASE_S``.
Never called on the relay path.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx
from django.conf import settings
from standardwebhooks.webhooks import Webhook

from rooms import webhooks
from signaling.service.cancellation import raise_if_cancelled
from signaling.service.database import run_delivery_db
from signaling.service.occupancy_marks import DATABASE_DOWN

logger = logging.getLogger(__name__)

# SPEC section 10: no answer within 10 s counts as a failed attempt.
TIMEOUT_S = 10.0
MAX_IN_FLIGHT = 16
# Events written elsewhere (another instance, a REST worker thread) are found by polling.
POLL_S = 1.0
USER_AGENT = "webrtc-signaling-webhooks/1"
# Outcomes kept through a database outage (each holds its room's later events until written).
MAX_UNWRITTEN = 10_000
# How long stop() waits for the database to take the released leases.
STOP_TIMEOUT_S = 5.0
# After a database outage, claims hold a room behind a missing seq whatever its age for this
# long, while the instances write the events they kept (rooms.webhooks.GAP_S).
OUTAGE_GRACE_S = 10.0
# How often the worker numbers room.closed events whose numbering was lost.
STALE_CLOSES_EVERY_S = 10.0


@dataclass(frozen=True, slots=True)
class Outcome:
    """One attempt's result, to write with :func:`rooms.webhooks.record_attempt`."""

    event: webhooks.ClaimedEvent
    is_delivered: bool
    error: str


class WebhookDelivery:
    """The delivery worker of one instance."""

    def __init__(self) -> None:
        self._wake: asyncio.Event | None = None
        self._in_flight: dict[asyncio.Task[None], webhooks.ClaimedEvent] = {}
        self._unwritten: deque[Outcome] = deque(maxlen=MAX_UNWRITTEN)
        self._is_stopping = False
        self._database_back_at = 0.0  # monotonic time the database answered again after an outage
        self._stale_checked_at = 0.0

    def __len__(self) -> int:
        """Deliveries in flight."""
        return len(self._in_flight)

    def wake(self) -> None:
        """Look for due events now (an event was just written here, or a delivery ended)."""
        if self._wake is not None:
            self._wake.set()

    async def run(self) -> None:
        """Claim and deliver due events forever (the instance's task)."""
        config = settings.SIGNALING
        url, signer = str(config.webhook_url), Webhook(str(config.webhook_secret))
        self._wake, self._is_stopping = asyncio.Event(), False
        limits = httpx.Limits(max_connections=MAX_IN_FLIGHT, max_keepalive_connections=MAX_IN_FLIGHT)
        async with httpx.AsyncClient(timeout=TIMEOUT_S, limits=limits, follow_redirects=False) as client:
            try:
                while True:
                    raise_if_cancelled()
                    self._wake.clear()
                    try:
                        await self._claim_and_start(client, url, signer)
                    except Exception:
                        # The worker's top level: one bad pass must not end deliveries for good.
                        logger.exception("webhooks: claiming due events failed; retrying")
                    # asyncio.timeout, not wait_for: on Python 3.11 wait_for can lose a cancel
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(POLL_S):
                            await self._wake.wait()
            finally:
                for task in list(self._in_flight):
                    task.cancel()

    async def stop(self) -> None:
        """A clean shutdown: cancel the deliveries in flight, release their leases and write
        the kept outcomes, so that another instance (or the next start) delivers those
        events at once rather than after the lease (``LEASE_S``). Best effort, bounded by
        ``STOP_TIMEOUT_S``: an event whose lease cannot be released is delivered again
        once the lease runs out (at least once). Call it before cancelling :meth:`run`."""
        self._is_stopping = True  # no more claims
        held = list(self._in_flight.values())
        tasks = list(self._in_flight)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        try:
            async with asyncio.timeout(STOP_TIMEOUT_S):
                await self.write_unwritten()
                if held:
                    released = await run_delivery_db(webhooks.release_leases, held)
                    logger.info("webhooks: %d of %d leases released at shutdown", released, len(held))
        except (TimeoutError, *DATABASE_DOWN) as exc:
            logger.warning(
                "webhooks: leases not released at shutdown (%r); they run out in %d s", exc, webhooks.LEASE_S
            )

    async def write_unwritten(self) -> None:
        """Write the kept outcomes, oldest first (raises ``DATABASE_DOWN`` while it is down)."""
        while self._unwritten:
            outcome = self._unwritten[0]
            write = functools.partial(
                webhooks.record_attempt, outcome.event, is_delivered=outcome.is_delivered, error=outcome.error
            )
            await run_delivery_db(write)
            self._unwritten.popleft()

    async def _claim_and_start(self, client: httpx.AsyncClient, url: str, signer: Webhook) -> None:
        free = MAX_IN_FLIGHT - len(self._in_flight)
        if free <= 0 or self._is_stopping:
            return
        now = time.monotonic()
        try:
            if self._unwritten:
                await self.write_unwritten()
                logger.info("webhooks: outcomes kept through a database outage written")
            if now - self._stale_checked_at >= STALE_CLOSES_EVERY_S:
                await run_delivery_db(webhooks.number_stale_closes)
                self._stale_checked_at = now
            may_skip_gaps = now - self._database_back_at >= OUTAGE_GRACE_S
            claim = functools.partial(webhooks.claim_due, free, may_skip_gaps=may_skip_gaps)
            claimed = await run_delivery_db(claim)
        except DATABASE_DOWN as exc:
            logger.warning("webhooks: database unreachable, no events claimed (%s); retrying", exc)
            self._database_back_at = time.monotonic() + POLL_S  # no gap skipped for a while once it answers
            return
        for event in claimed:
            task = asyncio.get_running_loop().create_task(self.deliver(client, url, signer, event))
            self._in_flight[task] = event
            task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._in_flight.pop(task, None)
        if not task.cancelled() and task.exception() is not None:
            logger.error("webhook delivery failed unexpectedly", exc_info=task.exception())
        self.wake()  # the room's next event may be due now

    async def deliver(self, client: httpx.AsyncClient, url: str, signer: Webhook, event: webhooks.ClaimedEvent) -> None:
        """POST one claimed event and write the outcome (kept for :meth:`write_unwritten`
        when the database is unreachable)."""
        now = datetime.now(UTC)
        headers = {
            "content-type": "application/json",
            "user-agent": USER_AGENT,
            "webhook-id": event.webhook_id,
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": signer.sign(event.webhook_id, now, event.body),
        }
        error = ""
        try:
            async with asyncio.timeout(TIMEOUT_S):
                response = await client.post(url, content=event.body.encode(), headers=headers)
            is_delivered = 200 <= response.status_code < 300
            if not is_delivered:
                error = f"HTTP {response.status_code}"
        except TimeoutError:
            is_delivered, error = False, f"no answer within {TIMEOUT_S:g} s"
        except httpx.HTTPError as exc:
            is_delivered, error = False, f"{type(exc).__name__}: {exc}"
        try:
            write = functools.partial(webhooks.record_attempt, event, is_delivered=is_delivered, error=error)
            state = await run_delivery_db(write)
        except DATABASE_DOWN as exc:
            logger.warning("webhook %s: outcome kept until the database answers (%s)", event.webhook_id, exc)
            if len(self._unwritten) == MAX_UNWRITTEN:
                logger.error("webhooks: an unwritten outcome dropped (%d kept); delivered again later", MAX_UNWRITTEN)
            self._unwritten.append(Outcome(event, is_delivered, error))
            return
        if not is_delivered:
            log = logger.error if state == "failed" else logger.info
            log("webhook %s to %s: %s (%s)", event.webhook_id, url, error, state or "lease lost")
