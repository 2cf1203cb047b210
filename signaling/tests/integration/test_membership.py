"""Room views (signaling.service.membership): pending joiners, de-duplication, departures.

The view is driven directly with recording connections: what a local socket is written is
exactly what it would be sent. No server, no channel layer.
"""

from __future__ import annotations

import asyncio
import time

from signaling.presence import Participant
from signaling.service.membership import Membership, Notice, RoomView


class RecordingConnection:
    """Records every packet written to it, as a local socket's transport would send it."""

    def __init__(self) -> None:
        self.sent: list[str] = []
        self.state = None

    async def send_sio_text(self, text: str) -> None:
        self.sent.append(text)


def participant(name: str) -> Participant:
    return Participant(f"c-{name}", f"agent-{name}", "2026-11-26T15:00:00.000Z", False, "instance-a")


async def test_a_pending_joiner_gets_joined_first_then_only_news_its_list_did_not_cover() -> None:
    # given: bob joins while the room hears of carol (listed in bob's joined) and dave (not listed)
    view = RoomView("r_1")
    bob = RecordingConnection()
    view.add_pending("c-bob", bob)  # type: ignore[arg-type]
    await view.deliver("joined:carol", notice=Notice.JOINED, subject="c-carol")
    await view.deliver("joined:dave", notice=Notice.JOINED, subject="c-dave")
    await view.deliver("offer:from-carol")
    await view.deliver("left:erin", notice=Notice.LEFT, subject="c-erin")  # erin: never known to bob
    await view.deliver("left:carol", notice=Notice.LEFT, subject="c-carol")
    assert bob.sent == []
    # when
    await view.settle("c-bob", ["joined-event", "ack"], listed={"c-carol"})
    # then
    assert bob.sent == ["joined-event", "ack", "joined:dave", "offer:from-carol", "left:carol"]
    assert view.local == {"c-bob": bob}


async def test_a_settled_member_gets_deliveries_directly_and_its_own_are_excluded() -> None:
    # given
    view = RoomView("r_1")
    alice, bob = RecordingConnection(), RecordingConnection()
    view.local.update({"c-alice": alice, "c-bob": bob})  # type: ignore[dict-item]
    # when
    await view.deliver("offer", exclude="c-alice")
    delivered = await view.deliver_to("c-alice", "answer")
    missing = await view.deliver_to("c-nobody", "answer")
    # then
    assert (alice.sent, bob.sent) == (["answer"], ["offer"])
    assert (delivered, missing) == (True, False)


def test_a_member_is_learnt_once_and_forgotten_once() -> None:
    # given
    view = RoomView("r_1")
    carol = participant("carol")
    # when / then
    assert view.learn_joined(carol) is True
    assert view.learn_joined(carol) is False
    assert view.learn_left("c-carol") == carol
    assert view.learn_left("c-carol") is None


def test_a_departure_after_a_read_keeps_the_member_out() -> None:
    # given
    view = RoomView("r_1")
    view.learn_joined(participant("carol"))
    read_at = time.monotonic()
    # when: the departure is learnt after a member list was read
    view.learn_left("c-carol")
    # then: that read cannot bring carol back; an older read could not either
    assert view.departed_since("c-carol", read_at) is True
    assert view.departed_since("c-dave", read_at) is False


def test_a_missing_member_is_gone_only_when_missing_twice() -> None:
    # given
    view = RoomView("r_1")
    view.learn_joined(participant("carol"))
    # when / then
    assert view.suspect("c-carol") is False
    view.unsuspect("c-carol")  # present again on the next pass
    assert view.suspect("c-carol") is False
    assert view.suspect("c-carol") is True


async def test_room_changes_run_one_at_a_time_and_an_empty_view_is_dropped() -> None:
    # given
    membership = Membership()
    order: list[str] = []

    async def change(name: str) -> None:
        async with membership.room("r_1") as view:
            order.append(f"{name}-in")
            await asyncio.sleep(0)
            order.append(f"{name}-out")
            view.is_subscribed = True
            if name == "second":
                assert membership.release_if_empty(view) is True

    # when
    await asyncio.gather(change("first"), change("second"))
    # then
    assert order == ["first-in", "first-out", "second-in", "second-out"]
    assert membership.view("r_1") is None


async def test_a_view_in_use_by_a_waiting_change_is_kept() -> None:
    # given: one change holds the room while another waits for it
    membership = Membership()
    entered = asyncio.Event()
    release = asyncio.Event()
    kept: list[bool] = []

    async def holder() -> None:
        async with membership.room("r_1") as view:
            entered.set()
            await release.wait()
            kept.append(not membership.release_if_empty(view))

    async def waiter() -> None:
        await entered.wait()
        async with membership.room("r_1"):
            pass

    # when
    tasks = [asyncio.create_task(holder()), asyncio.create_task(waiter())]
    await entered.wait()
    await asyncio.sleep(0)
    release.set()
    await asyncio.gather(*tasks)
    # then: the holder did not drop the view the waiter was about to use
    assert kept == [True]
