import pytest
pytestmark = pytest.mark.django_db(transaction=True)

async def test_smoke(signaling, open_room):
    room = await open_room()
    alice = await signaling.in_room("agent-alice", room.id)
    bob = await signaling.in_room("agent-bob", room.id)
    print(await alice.event())
    print(alice.open_packet)
    assert await bob.receive_nothing()
