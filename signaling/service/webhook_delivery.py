"""Webhook delivery: this instance's worker that POSTs due outbox events (SPEC section 10).

One task per instance, started with it when ``WEBHOOK_URL`` is set. It claims due events
(``rooms.webhooks.claim_due``: exactly one instance holds an event at a time, a room's
events one after the other in ``seq`` order), signs each with the ``standardwebhooks``
library (``webhook-id``, ``webhook-timestamp``, ``webhook-signature``), POSTs it with httpx
and writes the outcome: 2xx is delivered; any other answer, or none within
``TIMEOUT_S``, is retried on the SPEC schedule with the same ``webhook-id``.

Deliveries run as their own tasks, at most ``MAX_IN_FLIGHT`` at once, each bounded by
``TIMEOUT_S``: a slow or dead receiver holds a few tasks and database rows, never a socket,
a REST call or a room's lock. Never called on the relay path.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from datetime import UTC, datetime

import httpx
from django.conf import settings
from standardwebhooks.webhooks import Webhook

from rooms import webhooks
from signaling.service.database import run_db
from signaling.service.occupancy_marks import DATABASE_DOWN

logger = logging.getLogger(__name__)

# SPEC section 10: no answer within 10 s counts as a failed attempt.
TIMEOUT_S = 10.0
MAX_IN_FLIGHT = 16
# Events written elsewhere (another instance, a REST worker thread) are found by polling.
POLL_S = 1.0
USER_AGENT = "webrtc-signaling-webhooks/1"


class WebhookDelivery:
    """The delivery worker of one instance."""

    def __init__(self) -> None:
        self._wake: asyncio.Event | None = None
        self._in_flight: set[asyncio.Task[None]] = set()

    def wake(self) -> None:
        """Look for due events now (an event was just written here, or a delivery ended)."""
        if self._wake is not None:
            self._wake.set()

    async def run(self) -> None:
        """Claim and deliver due events forever (the instance's task)."""
        config = settings.SIGNALING
        url, signer = str(config.webhook_url), Webhook(str(config.webhook_secret))
        self._wake = asyncio.Event()
        limits = httpx.Limits(max_connections=MAX_IN_FLIGHT, max_keepalive_connections=MAX_IN_FLIGHT)
        async with httpx.AsyncClient(timeout=TIMEOUT_S, limits=limits, follow_redirects=False) as client:
            try:
                while True:
                    self._wake.clear()
                    try:
                        await self._claim_and_start(client, url, signer)
                    except Exception:
                        # The worker's top level: one bad pass must not end deliveries for good.
                        logger.exception("webhooks: claiming due events failed; retrying")
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), POLL_S)
            finally:
                for task in list(self._in_flight):
                    task.cancel()

    async def _claim_and_start(self, client: httpx.AsyncClient, url: str, signer: Webhook) -> None:
        free = MAX_IN_FLIGHT - len(self._in_flight)
        if free <= 0:
            return
        try:
            claimed = await run_db(webhooks.claim_due, free)
        except DATABASE_DOWN as exc:
            logger.warning("webhooks: database unreachable, no events claimed (%s); retrying", exc)
            return
        for event in claimed:
            task = asyncio.get_running_loop().create_task(self.deliver(client, url, signer, event))
            self._in_flight.add(task)
            task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._in_flight.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("webhook delivery failed unexpectedly", exc_info=task.exception())
        self.wake()  # the room's next event may be due now

    async def deliver(self, client: httpx.AsyncClient, url: str, signer: Webhook, event: webhooks.ClaimedEvent) -> None:
        """POST one claimed event and write the outcome (a lost database write: the lease
        runs out and the event is delivered again, at least once)."""
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
            state = await run_db(write)
        except DATABASE_DOWN as exc:
            logger.warning("webhook %s: outcome not written (%s); delivered again later", event.webhook_id, exc)
            return
        if not is_delivered:
            log = logger.error if state == "failed" else logger.info
            log("webhook %s to %s: %s (%s)", event.webhook_id, url, error, state or "lease lost")
