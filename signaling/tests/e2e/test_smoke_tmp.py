import pytest
pytestmark = pytest.mark.e2e

async def test_smoke(live_servers, sio_client):
    (server,) = live_servers()
    room = server.create_room()
    c = sio_client()
    connected = await c.connect_as(server, "agent-a")
    print(connected, c.client_id, c.transport)
    print(await c.join(room["id"]))
    bad = sio_client()
    print(await bad.refused(server))
    print(server.get("/api/stats"))
