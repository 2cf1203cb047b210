"""The /demo/ page holds real WebRTC calls through a real daphne, in Debian's headless Chromium.

Issue 5. A node driver (``browser/demo_call.mjs``, playwright-core driving ``/usr/bin/chromium``
with fake camera and microphone) opens pages with ``?room=&token=&autojoin=1`` and prints what
the page's automation hooks show (remote tiles' ``data-*``, ``window.demoStats()``,
``window.demoState()``, ``window.demoLastError``) as JSON lines, one per step; these tests
assert on them. Media flows between the pages over host candidates of this machine, or, with
``?relay=1`` (``iceTransportPolicy: 'relay'``), only through a real coturn on 127.0.0.1 that
shares the server's ``TURN_SECRET`` (issue 14; ``coturn_fixtures``).

Chromium is required, never skipped: CI installs Debian's ``chromium`` package and ``npm ci``
installs ``playwright-core`` (no browser download: the system browser is used).
"""

from __future__ import annotations

import json
import re
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

pytest.register_assert_rewrite("signaling.tests.e2e.coturn_fixtures")

from signaling.tests.e2e.coturn_fixtures import Coturn  # noqa: E402
from signaling.tests.fixtures import REPO_ROOT, LiveServer, mint_token, run_node  # noqa: E402

pytestmark = pytest.mark.e2e
pytest_plugins = ["signaling.tests.e2e.coturn_fixtures"]

CHROMIUM = Path("/usr/bin/chromium")
PLAYWRIGHT_CORE = REPO_ROOT / "node_modules" / "playwright-core"
DRIVER = Path(__file__).parent / "browser" / "demo_call.mjs"
# Headless Chromium with fake media devices, a quiet profile, and real host IPs in ICE
# candidates (headless may hide them behind mDNS .local names that nothing here resolves).
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
    "--disable-features=WebRtcHideLocalIpsWithMdns",
]
# A browser under load must not miss the socket.io heartbeat (the e2e default is 300 ms).
BROWSER_SERVER_ENV = {"HEARTBEAT_INTERVAL": "5000", "HEARTBEAT_TIMEOUT": "5000"}
STEP_TIMEOUT_MS = 30000
DRIVER_TIMEOUT_S = 200.0
BROWSER_TEST_TIMEOUT_S = 240
SOCKET_IO_CLIENT = REPO_ROOT / "node_modules" / "socket.io-client" / "dist" / "socket.io.min.js"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
WRONG_SECRET = "not-the-server-secret-" + "fedcba9876543210" * 3
TURN_SECRET = "browser-e2e-turn-secret-0123456789"
OTHER_TURN_SECRET = "a-different-turn-secret-9876543210"


@pytest.fixture(scope="module")
def server(live_servers_module: Any) -> LiveServer:
    (live,) = live_servers_module(env=BROWSER_SERVER_ENV)
    return live


def require_browser() -> None:
    """Fail (never skip) with the install step when the browser or its driver is missing."""
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} is missing: the demo's browser test needs Debian's chromium "
            "(apt-get install -y chromium); CI must install it"
        )
    if not PLAYWRIGHT_CORE.is_dir():
        pytest.fail(f"{PLAYWRIGHT_CORE} is missing: run `npm ci` (package.json lists playwright-core)")


def demo_url(server: LiveServer, room_id: str | None, token: str | None, *, relay_only: bool = False) -> str:
    """The demo page that joins ``room_id`` with ``token`` as soon as it loads (relay-only ICE if asked)."""
    query = {"room": room_id, "token": token, "autojoin": "1", "relay": "1" if relay_only else None}
    return f"{server.url}/demo/?" + urlencode({k: v for k, v in query.items() if v is not None})


def run_driver(scenario: str, urls: dict[str, str], **extra: Any) -> dict[str, dict[str, Any]]:
    """Run the browser driver on a fresh profile; returns its JSON lines by step name."""
    require_browser()
    with tempfile.TemporaryDirectory(prefix="demo-chromium-profile-") as profile:
        spec = {
            "scenario": scenario,
            "executablePath": str(CHROMIUM),
            "args": CHROMIUM_ARGS,
            "userDataDir": profile,
            "stepTimeoutMs": STEP_TIMEOUT_MS,
            "urls": urls,
            **extra,
        }
        code, lines = run_node(DRIVER, json.dumps(spec), timeout=DRIVER_TIMEOUT_S)
    steps = {line["step"]: line for line in lines}
    assert "driver_error" not in steps, steps["driver_error"]["error"]
    assert code == 0, lines
    assert steps["page_errors"]["errors"] == {name: [] for name in steps["page_errors"]["errors"]}
    return steps


def tiles_of(page: dict[str, Any]) -> list[dict[str, str]]:
    return sorted(page["tiles"], key=lambda tile: tile["agentId"])


def assert_live_media_from(page: dict[str, Any], others: list[dict[str, Any]]) -> None:
    """``page`` shows one connected tile per other page and receives its video and audio, on
    the socket it joined with (a lost connection shows its socket.io reason here)."""
    assert page["disconnects"] == [], page["disconnects"]
    assert page["phase"] == "joined"
    assert tiles_of(page) == sorted(
        ({"clientId": o["clientId"], "agentId": o["agentId"], "state": "connected"} for o in others),
        key=lambda tile: tile["agentId"],
    )
    assert sorted(page["stats"]) == sorted(o["clientId"] for o in others)
    for other in others:
        stats = page["stats"][other["clientId"]]
        assert stats["agentId"] == other["agentId"]
        assert stats["state"] == "connected"
        assert stats["framesDecoded"] > 0, stats
        assert stats["audioPacketsReceived"] > 0, stats


@pytest.mark.timeout(BROWSER_TEST_TIMEOUT_S)
# Known intermittent failure (2026-12-02, 1 of 3 clean-clone CI runs): a page's socket was
# replaced by a reconnect mid-call, cause not yet found; rerun once while it is investigated.
@pytest.mark.flaky(reruns=1)
def test_demo_pages_hold_a_live_mesh_call_and_see_leaves_full_room_and_closing(
    server: LiveServer, tmp_path: Path
) -> None:
    # given
    creator = server.mint("agent-host")
    room = server.create_room(creator, name="demo call", type="video", settings={"maxParticipants": 3})
    urls = {
        name: demo_url(server, room["id"], server.mint(f"agent-{name}")) for name in ("alice", "bob", "carol", "dave")
    }
    screenshot = tmp_path / "demo-call.png"
    # when
    steps = run_driver(
        "mesh",
        urls,
        screenshotPath=str(screenshot),
        closeRoom={"url": f"{server.url}/api/rooms/{room['id']}", "token": creator},
    )
    # then: two pages see and hear each other
    alice, bob = steps["pair"]["pages"]["alice"], steps["pair"]["pages"]["bob"]
    assert (alice["agentId"], bob["agentId"]) == ("agent-alice", "agent-bob")
    assert_live_media_from(alice, [bob])
    assert_live_media_from(bob, [alice])
    # then: a third page joins and the mesh of three connects
    mesh = steps["mesh"]["pages"]
    for name, page in mesh.items():
        assert_live_media_from(page, [other for other_name, other in mesh.items() if other_name != name])
    assert screenshot.read_bytes().startswith(PNG_SIGNATURE)
    # then: a fourth page is told, in words, that the room (cap 3) is full
    dave = steps["full"]["pages"]["dave"]
    assert (dave["phase"], dave["errorCode"], dave["errorShown"]) == ("error", "room_full", "This room is full.")
    assert dave["tiles"] == []
    # then: carol leaves; the others drop her tile and keep their call
    left = steps["leave"]["pages"]
    assert steps["leave"]["leaverClientId"] == mesh["carol"]["clientId"]
    assert (left["carol"]["phase"], left["carol"]["tiles"]) == ("left", [])
    assert_live_media_from(left["alice"], [mesh["bob"]])
    assert_live_media_from(left["bob"], [mesh["alice"]])
    # then: deleting the room ends the call on every page, in words
    assert steps["closed"]["deleteStatus"] == 204
    for page in steps["closed"]["pages"].values():
        assert (page["phase"], page["tiles"], page["errorCode"]) == ("closed", [], "room_closed")
        assert page["errorShown"] == "The room was closed by its owner. The call has ended."


@pytest.mark.timeout(BROWSER_TEST_TIMEOUT_S)
def test_demo_page_explains_refused_tokens_and_unknown_rooms_in_words(server: LiveServer) -> None:
    # given
    room = server.create_room(type="video")
    urls = {
        "bad_token": demo_url(server, room["id"], mint_token(WRONG_SECRET, "agent-mallory")),
        "expired_token": demo_url(server, room["id"], server.mint("agent-late", ttl_s=-60)),
        "no_token": demo_url(server, room["id"], None),
        "unknown_room": demo_url(server, "r_no_such_room", server.mint("agent-lost")),
    }
    # when
    steps = run_driver("errors", urls)
    # then
    shown = {
        name: (page["errorCode"], page["errorShown"], page["tiles"]) for name, page in steps["errors"]["pages"].items()
    }
    assert shown == {
        "bad_token": ("invalid_token", "The server refused this token: it is not a valid token for this server.", []),
        "expired_token": ("token_expired", "This token has expired. Get a fresh token and try again.", []),
        "no_token": (
            "missing_token",
            "No token was given. Paste an agent token (or mint one in development mode) and try again.",
            [],
        ),
        "unknown_room": ("room_not_found", "There is no room with this ID.", []),
    }
    assert {page["phase"] for page in steps["errors"]["pages"].values()} == {"error"}


@pytest.mark.timeout(BROWSER_TEST_TIMEOUT_S)
def test_dev_mode_page_mints_a_token_creates_a_room_and_joins_it(live_servers: Any) -> None:
    # given
    (dev_server,) = live_servers(env={**BROWSER_SERVER_ENV, "DEV_MODE": "1"})
    # when
    steps = run_driver("devmode", {"dev": f"{dev_server.url}/demo/"}, agentId="agent-dev-demo")
    # then
    page = steps["dev_join"]["pages"]["dev"]
    assert (page["phase"], page["agentId"], page["devPanelShown"], page["tiles"]) == (
        "joined",
        "agent-dev-demo",
        True,
        [],
    )
    # then (issue 17): in the call, a lone participant sees the share link and is told to share it
    room_id = steps["dev_join"]["roomId"]
    assert page["shareLink"] == f"{dev_server.url}/demo/?room={room_id}"
    assert (page["aloneShown"], page["aloneText"]) == (
        True,
        "You are the only one here. Share the link above to invite others.",
    )
    room = steps["dev_room"]["room"]
    assert (steps["dev_room"]["status"], room["id"]) == (200, steps["dev_join"]["roomId"])
    assert (room["createdBy"], room["type"], room["participants"][0]["agentId"]) == (
        "agent-dev-demo",
        "video",
        "agent-dev-demo",
    )
    # then (issue 17): the invitee opens that link with no token, presses Join (no Mint first)
    # and is in the call; the host is no longer told that it is alone
    invited = steps["dev_invitee"]
    assert (invited["roomFieldBeforeJoin"], invited["tokenFieldBeforeJoin"]) == (room_id, "")
    host, invitee = invited["pages"]["dev"], invited["pages"]["invitee"]
    assert re.fullmatch(r"agent-[0-9a-f]{1,4}", invitee["agentId"]), invitee["agentId"]
    assert_live_media_from(host, [invitee])
    assert_live_media_from(invitee, [host])
    assert (host["aloneShown"], invitee["aloneShown"]) == (False, False)


def test_demo_token_endpoint_mints_agent_tokens_in_dev_mode_only(server: LiveServer, live_servers: Any) -> None:
    # given
    (dev_server,) = live_servers(env={"DEV_MODE": "1"})
    # when
    refused = server.request("POST", "/demo/token", {"agentId": "agent-x"})
    minted = dev_server.request("POST", "/demo/token", {"agentId": "agent-x"})
    invalid = dev_server.request("POST", "/demo/token", {"agentId": ""})
    # then
    assert refused == (
        403,
        {"detail": "Minting demo tokens is only available in development mode (DEV_MODE=1).", "code": "forbidden"},
    )
    status, body = minted
    assert (status, sorted(body), body["agentId"], body["expiresIn"]) == (
        200,
        ["agentId", "expiresIn", "token"],
        "agent-x",
        3600,
    )
    room = dev_server.create_room(body["token"], name="minted")
    assert room["createdBy"] == "agent-x"
    assert invalid == (
        400,
        {
            "detail": "The request is invalid.",
            "code": "invalid",
            "errors": {"agentId": ["agentId must be a string of 1-128 characters."]},
        },
    )


def test_demo_page_outside_dev_mode_hides_dev_tools_and_loads_only_its_own_files(server: LiveServer) -> None:
    # when
    status, html = server.get("/demo/")
    client_status, client_js = server.get("/static/socket.io-client/socket.io.min.js")
    # then
    assert status == 200
    assert 'id="dev-panel"' not in html
    assert '"devMode": false' in html
    references = re.findall(r'(?:src|href)="([^"]*)"', html)
    assert references == [
        "data:,",
        "/static/demo/demo.css",
        "/static/socket.io-client/socket.io.min.js",
        "/static/demo/demo.js",
    ]
    # the official client, served by staticfiles straight from node_modules
    assert client_status == 200
    assert client_js == SOCKET_IO_CLIENT.read_text()


def relay_call_server(live_servers: Any, turn: Coturn, turn_secret: str) -> LiveServer:
    """A daphne handing out ``iceServers`` for ``turn`` (its credentials signed with ``turn_secret``)."""
    (live,) = live_servers(env={**BROWSER_SERVER_ENV, "TURN_URLS": turn.turn_url, "TURN_SECRET": turn_secret})
    return live


@pytest.mark.timeout(BROWSER_TEST_TIMEOUT_S)
def test_relay_only_pages_hold_a_call_through_coturn_and_show_a_relay_pair(
    live_servers: Any, coturn: Callable[[str], Coturn]
) -> None:
    # given: coturn and the signaling server share the TURN secret
    turn = coturn(TURN_SECRET)
    relay_server = relay_call_server(live_servers, turn, TURN_SECRET)
    room = relay_server.create_room(type="video")
    urls = {
        name: demo_url(relay_server, room["id"], relay_server.mint(f"agent-{name}"), relay_only=True)
        for name in ("alice", "bob")
    }
    # when
    steps = run_driver("relay", urls)
    # then: media flows, and the selected candidate pair is relay on both ends
    alice, bob = steps["relay"]["pages"]["alice"], steps["relay"]["pages"]["bob"]
    assert_live_media_from(alice, [bob])
    assert_live_media_from(bob, [alice])
    for page, other in ((alice, bob), (bob, alice)):
        assert page["relayOnly"] is True
        assert [server["urls"] for server in page["iceServers"]] == [[turn.turn_url]]
        assert page["iceServers"][0]["username"].endswith(":" + page["agentId"])
        assert page["routes"] == {other["clientId"]: "relay/relay"}
        stats = page["stats"][other["clientId"]]
        assert (stats["localCandidateType"], stats["remoteCandidateType"]) == ("relay", "relay")


@pytest.mark.timeout(BROWSER_TEST_TIMEOUT_S)
def test_relay_only_pages_get_no_call_when_coturn_has_another_secret(
    live_servers: Any, coturn: Callable[[str], Coturn]
) -> None:
    # given: the signaling server signs TURN credentials with a secret coturn does not know
    turn = coturn(TURN_SECRET)
    relay_server = relay_call_server(live_servers, turn, OTHER_TURN_SECRET)
    room = relay_server.create_room(type="video")
    urls = {
        name: demo_url(relay_server, room["id"], relay_server.mint(f"agent-{name}"), relay_only=True)
        for name in ("alice", "bob")
    }
    # when
    steps = run_driver("relay_refused", urls)
    # then: both pages say the TURN server refused them; no pair was selected, no media arrived
    assert steps["relay_refused"]["satisfied"] is True
    for page in steps["relay_refused"]["pages"].values():
        assert (page["phase"], page["errorCode"], page["errorShown"]) == (
            "joined",
            "turn_refused",
            "The TURN server refused the credentials this server issued (is TURN_SECRET the same on both?).",
        )
        assert {error["errorCode"] for error in page["iceErrors"]} == {401}
        assert {error["url"] for error in page["iceErrors"]} <= {turn.turn_url, turn.turn_url.split("?")[0]}
        (tile,) = page["tiles"]
        assert tile["state"] != "connected"
        assert list(page["routes"].values()) == [""]
        assert all(
            stats["framesDecoded"] == 0 and stats["audioPacketsReceived"] == 0 for stats in page["stats"].values()
        )
