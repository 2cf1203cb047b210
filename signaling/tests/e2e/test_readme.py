"""The README's promises, run as written against a real daphne: the REST curl walk-through and
the two-peer example (`examples/two-peers.mjs`, node socket.io-client), each block alone as in a new shell."""

from __future__ import annotations

import json
import os
import re
import select
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest

from signaling.tests.fixtures import LiveServer, free_port, tcp_answers

pytestmark = pytest.mark.e2e

REPO_ROOT = Path(__file__).resolve().parents[3]
README = REPO_ROOT / "README.md"
TIMEOUT_S = 60


def readme_block(after: str, language: str) -> str:
    """The first fenced ``language`` block that follows the line containing ``after``."""
    text = README.read_text()
    start = text.index(after)
    match = re.compile(rf"```{language}\n(.*?)```", re.S).search(text, start)
    assert match is not None, f"no {language} block after {after!r} in README.md"
    return match.group(1)


def test_readme_curl_walkthrough_works_as_written(live_servers: Callable[..., list[LiveServer]]) -> None:
    # given: the README's REST block, pointed at a live server, its token command kept but
    # fed the server's secret instead of the development secret file
    (server,) = live_servers()
    script = readme_block("With `./run dev` running", "bash")
    script = script.replace("http://localhost:8080", server.url)
    assert "DEV_MODE=1 .venv/bin/python manage.py mint_token agent-fawzi" in script
    script = script.replace("DEV_MODE=1 .venv/bin/python", f"JWT_SECRET={server.secret} .venv/bin/python")
    # when
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script], cwd=REPO_ROOT, capture_output=True, text=True, timeout=TIMEOUT_S
    )
    # then: each curl answered as the README says, ending with the 204 of DELETE
    assert result.returncode == 0, result.stderr
    decoder, rest, values = json.JSONDecoder(), result.stdout, []
    for _ in range(5):  # one body per line (curl -w '\n')
        value, end = decoder.raw_decode(rest)
        values.append(value)
        assert rest[end] == "\n"
        rest = rest[end + 1 :]
    created, page, detail, join, stats = values
    deleted = rest.strip()
    assert created["name"] == "My Voice Room" and created["createdBy"] == "agent-fawzi"
    assert created["settings"] == {
        "muteOnEntry": False,
        "allowRecording": False,
        "maxDuration": 60,
        "maxParticipants": 10,
        "duplicateIdentity": "allow",
    }
    assert page["count"] == 1 and page["results"][0]["id"] == created["id"]
    assert detail["id"] == created["id"] and detail["participants"] == []
    assert set(join) == {"token", "roomId", "expiresIn", "iceServers"} and join["roomId"] == created["id"]
    assert stats["rooms"] == {"total": 1, "active": 0}
    assert deleted == "204"
    status, closed = server.get(f"/api/rooms/{created['id']}")
    assert (status, closed["closed"], closed["closeReason"]) == (200, True, "deleted")


def test_two_peer_example_negotiates_a_call_as_written(live_servers: Callable[..., list[LiveServer]]) -> None:
    # given
    node = shutil.which("node")
    assert node is not None, "node is not installed (./run test needs node 18+)"
    (server,) = live_servers()
    room = server.create_room(name="call", type="video")
    # when: the example runs exactly as the README tells
    result = subprocess.run(
        [node, "examples/two-peers.mjs"],
        cwd=REPO_ROOT,
        env={"PATH": "/usr/bin:/bin", "SERVER": server.url, "JWT_SECRET": server.secret, "ROOM": room["id"]},
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
    )
    # then: offer, answer and candidates crossed, and the script ended by itself
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert set(result.stdout.splitlines()) == {
        "bob joined; already there: [ 'agent-alice' ]",
        "alice sees agent-bob join",
        "bob got an offer from agent-alice",
        "alice got an answer from agent-bob answer",
        "alice has all candidates of agent-bob",
    }


def test_readme_two_peer_block_runs_as_written_in_a_new_shell(live_servers: Callable[..., list[LiveServer]]) -> None:
    # given: the README's two-peer block, alone (its own token and room), pointed at a live server
    (server,) = live_servers()
    script = readme_block("A complete two-peer exchange", "bash")
    assert "npm ci" not in script
    script = script.replace("http://localhost:8080", server.url)
    script = script.replace("DEV_MODE=1 .venv/bin/python", f"JWT_SECRET={server.secret} .venv/bin/python")
    assert "$(cat .dev-jwt-secret)" in script
    script = script.replace("$(cat .dev-jwt-secret)", server.secret)
    # when
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script], cwd=REPO_ROOT, capture_output=True, text=True, timeout=TIMEOUT_S
    )
    # then
    assert result.returncode == 0, result.stderr
    assert "alice has all candidates of agent-bob" in result.stdout.splitlines()


def _answer_prompts(process: subprocess.Popen[bytes], dialogue: list[tuple[bytes, bytes]]) -> bytes:
    """Answer each prompt of ``dialogue`` once it appears on the terminal; return the output."""
    assert process.stdout is not None and process.stdin is not None
    seen = b""
    for prompt, answer in dialogue:
        deadline = time.monotonic() + TIMEOUT_S
        while prompt not in seen:
            assert time.monotonic() < deadline, f"no {prompt!r} prompt in {seen!r}"
            ready, _, _ = select.select([process.stdout], [], [], 1.0)
            if ready:
                chunk = os.read(process.stdout.fileno(), 4096)
                assert chunk, f"the command ended before {prompt!r}: {seen!r}"
                seen += chunk
        seen = seen[seen.index(prompt) + len(prompt) :]
        process.stdin.write(answer + b"\n")
        process.stdin.flush()
    rest, _ = process.communicate(timeout=TIMEOUT_S)
    return seen + rest


def test_readme_createsuperuser_works_as_written_in_a_new_shell(tmp_path: Path) -> None:
    # given: the README's command, in a terminal (``script``), against a migrated database
    command = readme_block("An admin user for `/admin/`", "bash").strip()
    assert command == "DEV_MODE=1 .venv/bin/python manage.py createsuperuser"
    env = {"PATH": os.environ["PATH"], "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}"}
    migrate = subprocess.run(
        [".venv/bin/python", "manage.py", "migrate", "-v", "0"],
        cwd=REPO_ROOT,
        env={**env, "DEV_MODE": "1"},
        capture_output=True,
        timeout=TIMEOUT_S,
    )
    assert migrate.returncode == 0, migrate.stderr
    # when
    process = subprocess.Popen(
        ["script", "-qec", command, "/dev/null"],
        cwd=REPO_ROOT,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    output = _answer_prompts(
        process,
        [
            (b"Username", b"admin"),
            (b"Email address:", b"admin@example.com"),
            (b"Password:", b"a-long-admin-password-1"),
            (b"Password (again):", b"a-long-admin-password-1"),
        ],
    )
    # then
    assert process.returncode == 0, output
    assert b"Superuser created successfully." in output
    assert b"configuration error" not in output and b"Traceback" not in output


def test_readme_mint_token_command_prints_a_token_as_written() -> None:
    command = readme_block("A token for local use", "bash").strip()
    result = subprocess.run(
        ["bash", "-c", command],
        cwd=REPO_ROOT,
        env={"PATH": os.environ["PATH"]},
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
    )
    assert result.returncode == 0, result.stderr
    assert re.fullmatch(r"[\w-]+\.[\w-]+\.[\w-]+\n", result.stdout)


def test_readme_run_dev_prints_what_to_open_and_slash_leads_to_the_demo() -> None:
    # given: the quick start's first command, on a free port
    assert readme_block("Serve (creates `.venv`", "bash").strip() == "./run dev"
    port = free_port()
    env = {"PATH": os.environ["PATH"], "PORT": str(port), "HOST": "127.0.0.1", "LOG_LEVEL": "warning"}
    process = subprocess.Popen(
        ["bash", "-c", "./run dev"], cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
    )
    try:
        # when: the banner has been printed
        assert process.stdout is not None
        lines = [process.stdout.readline().decode() for _ in range(6)]
        # then
        assert lines[0] == f"serving on http://127.0.0.1:{port} with daphne\n"
        assert any(f"http://127.0.0.1:{port}/demo/" in line for line in lines)
        assert any("DEV_MODE=1 .venv/bin/python manage.py createsuperuser" in line for line in lines)
        deadline = time.monotonic() + TIMEOUT_S
        while not tcp_answers("127.0.0.1", port):
            assert time.monotonic() < deadline and process.poll() is None, "./run dev did not start serving"
            time.sleep(0.2)
        opener = urllib.request.build_opener(NoRedirect())
        with pytest.raises(urllib.error.HTTPError) as redirect:
            opener.open(f"http://127.0.0.1:{port}/", timeout=5)
        assert (redirect.value.code, redirect.value.headers["Location"]) == (302, "/demo/")
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/static/demo/demo.css", timeout=5) as css:
            assert css.status == 200 and css.headers["Content-Type"].startswith("text/css")
    finally:
        process.terminate()
        process.wait(timeout=10)


class NoRedirect(urllib.request.HTTPRedirectHandler):
    """Leave 3xx answers to the caller (urllib raises them as HTTPError)."""

    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


@pytest.mark.parametrize(("_case", "argv", "code"), [("help", ["./run", "help"], 0), ("unknown", ["./run", "nope"], 2)])
def test_run_prints_its_usage_not_shell(_case: str, argv: list[str], code: int) -> None:
    result = subprocess.run(argv, cwd=REPO_ROOT, capture_output=True, text=True, timeout=TIMEOUT_S)
    assert result.returncode == code
    usage = (result.stdout + result.stderr).splitlines()
    assert usage[0] == "usage: ./run COMMAND [ARGS]"
    assert [line.split()[0] for line in usage[1:]] == ["dev", "serve", "test"]
