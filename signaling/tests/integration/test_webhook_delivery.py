"""The webhook delivery worker's clean stop (``WebhookDelivery.stop``, SPEC section 10).

Integration tier: the real worker and its database calls on the test database, POSTing to
a real aiohttp receiver on 127.0.0.1 that never answers. A clean stop cancels the delivery
in flight and releases its lease, so the event is due at once for any instance (instead of
after ``LEASE_S``); the receiver is the one the worker really called.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiohttp import web
from channels.db import database_sync_to_async
from django.utils import timezone

from rooms import webhooks
from rooms.models import WebhookEvent
from signaling.service.webhook_delivery import WebhookDelivery
from signaling.tests.fixtures import HOST, free_port

pytestmark = pytest.mark.django_db(transaction=True)

WEBHOOK_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
TIMEOUT_S = 10


@pytest.fixture
async def hanging_receiver() -> AsyncIterator[tuple[str, asyncio.Event]]:
    """A receiver that holds every request until the test ends: its URL, and an event set on the first."""
    arrived, released = asyncio.Event(), asyncio.Event()

    async def handle(request: web.Request) -> web.Response:
        arrived.set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(released.wait(), 30)
        return web.Response(status=200)

    app = web.Application()
    app.router.add_post("/hooks", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, HOST, port).start()
    try:
        yield f"http://{HOST}:{port}/hooks", arrived
    finally:
        released.set()
        await runner.cleanup()


def lease_of(room_id: str) -> tuple[str, int, Any]:
    return WebhookEvent.objects.filter(room_id=room_id).values_list("state", "attempts", "lease_until").get()


async def test_a_clean_stop_releases_the_lease_of_a_delivery_in_flight(
    fresh_instance: None,
    signaling_config: Callable[..., None],
    open_room: Callable[..., Any],
    hanging_receiver: tuple[str, asyncio.Event],
) -> None:
    # given the worker delivering room.created to a receiver that does not answer
    url, arrived = hanging_receiver
    signaling_config(webhook_url=url, webhook_secret=WEBHOOK_SECRET)
    room = await open_room()
    delivery = WebhookDelivery()
    worker = asyncio.get_running_loop().create_task(delivery.run())
    await asyncio.wait_for(arrived.wait(), TIMEOUT_S)
    state, attempts, lease_until = await database_sync_to_async(lease_of)(room.id)
    assert (state, attempts) == ("pending", 0) and lease_until is not None  # leased while in flight
    # when the instance stops cleanly
    await asyncio.wait_for(delivery.stop(), TIMEOUT_S)
    worker.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await worker
    # then the lease is released: the event is due now, for any instance
    assert await database_sync_to_async(lease_of)(room.id) == ("pending", 0, None)
    assert len(delivery) == 0
    claimed = await database_sync_to_async(webhooks.claim_due)(10, timezone.now())
    assert [c.webhook_id for c in claimed] == [
        await database_sync_to_async(lambda: WebhookEvent.objects.get(room_id=room.id).webhook_id)()
    ]
