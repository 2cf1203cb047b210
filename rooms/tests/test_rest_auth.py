"""REST bearer authentication with real tokens: Node-minted, hostile, join tokens (SPEC sections 1, 2)."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.core.management import CommandError, call_command
from rest_framework.test import APIClient

from rooms.models import Room
from rooms.tests.fixtures import (
    ANY_ISO_UTC,
    ANY_ROOM_ID,
    ANY_TEXT,
    HOSTILE_TOKEN_CASES,
    hostile_tokens,
)
from rooms.tokens import Identity, authenticate_token, mint_join_token

pytestmark = pytest.mark.django_db

REPO_ROOT = Path(__file__).resolve().parents[2]
CREATE_BODY = {"name": "My Voice Room", "type": "voice"}


def _post_with_authorization(header: str) -> Any:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=header)
    return client.post("/api/rooms", CREATE_BODY, format="json")


def _assert_401(response: Any, code: str) -> None:
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="api"'
    assert response.json() == {"detail": ANY_TEXT, "code": code}
    assert Room.objects.count() == 0


@pytest.mark.parametrize("_case", HOSTILE_TOKEN_CASES)
def test_hostile_bearer_token_answers_401_invalid_token(jwt_secret: str, _case: str) -> None:
    token = hostile_tokens(jwt_secret)[_case]
    _assert_401(_post_with_authorization(f"Bearer {token}"), "invalid_token")


def test_expired_bearer_token_answers_401_token_expired(
    make_jwt: Callable[..., str],
) -> None:
    now = int(time.time())
    token = make_jwt({"agentId": "agent-fawzi", "iat": now - 7200, "exp": now - 3600})
    _assert_401(_post_with_authorization(f"Bearer {token}"), "token_expired")


def test_join_token_cannot_authenticate_rest_calls() -> None:
    token, _ = mint_join_token("agent-fawzi", "r_some_room")
    response = _post_with_authorization(f"Bearer {token}")
    _assert_401(response, "invalid_token")
    assert response.json()["detail"] == "join tokens cannot authenticate REST calls; use an agent token"


@pytest.mark.parametrize(
    ("_case", "header", "code"),
    [
        ("bearer_without_token", "Bearer", "missing_token"),
        ("bearer_with_two_parts", "Bearer abc def", "invalid_token"),
        ("other_scheme", "Basic YWdlbnQ6cHc=", "missing_token"),
        ("token_without_scheme", "eyJhbGciOiJIUzI1NiJ9.e30.x", "missing_token"),
    ],
)
def test_malformed_authorization_header_answers_401(_case: str, header: str, code: str) -> None:
    _assert_401(_post_with_authorization(header), code)


def test_lowercase_bearer_scheme_is_accepted(agent_token: Callable[..., str]) -> None:
    response = _post_with_authorization(f"bearer {agent_token('agent-fawzi')}")
    assert response.status_code == 201


def test_bad_token_on_public_endpoint_still_answers_401(api_client: APIClient) -> None:
    # A client that sends credentials learns they are bad rather than being served anonymously.
    api_client.credentials(HTTP_AUTHORIZATION="Bearer garbage")
    response = api_client.get("/api/rooms")
    assert (response.status_code, response.json()) == (
        401,
        {"detail": ANY_TEXT, "code": "invalid_token"},
    )


NODE_SIGN = (
    "const jwt = require('jsonwebtoken');"
    "const token = jwt.sign({ agentId: 'agent-fawzi' }, process.env.JWT_SECRET, { expiresIn: '1h' });"
    "process.stdout.write(token);"
)


def test_token_minted_by_node_jsonwebtoken_creates_a_room() -> None:
    # given a token minted exactly as agent-link does (seed README); `./run test` installs
    # node_modules and needs node, so their absence is a broken install, not a reason to skip
    assert shutil.which("node") is not None, "node is not on PATH (./run test needs Node.js 18+)"
    assert (REPO_ROOT / "node_modules" / "jsonwebtoken").is_dir(), "run `npm ci` at the repo root"
    env = {**os.environ, "JWT_SECRET": django_settings.SIGNALING.jwt_secret}
    token = subprocess.run(
        ["node", "-e", NODE_SIGN],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout
    # when
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    response = client.post("/api/rooms", CREATE_BODY, format="json")
    # then
    assert authenticate_token(token) == Identity(agent_id="agent-fawzi")
    assert response.status_code == 201
    assert response.json() == {
        "id": ANY_ROOM_ID,
        "name": "My Voice Room",
        "type": "voice",
        "settings": {
            "muteOnEntry": False,
            "allowRecording": False,
            "maxDuration": None,
            "maxParticipants": 10,
            "duplicateIdentity": "allow",
        },
        "createdBy": "agent-fawzi",
        "createdAt": ANY_ISO_UTC,
        "participantCount": 0,
        "closed": False,
    }


# --- manage.py mint_token ---------------------------------------------------------------


def test_mint_token_command_prints_a_token_that_authenticates() -> None:
    # when
    out = io.StringIO()
    call_command("mint_token", "agent-cli", "--ttl", "120", stdout=out)
    token = out.getvalue().strip()
    # then
    assert authenticate_token(token) == Identity(agent_id="agent-cli")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    assert client.post("/api/rooms", CREATE_BODY, format="json").json()["createdBy"] == "agent-cli"


def test_mint_token_staff_flag_mints_a_staff_token() -> None:
    out = io.StringIO()
    call_command("mint_token", "agent-ops", "--staff", stdout=out)
    assert authenticate_token(out.getvalue().strip()) == Identity(agent_id="agent-ops", is_staff=True)


@pytest.mark.parametrize(
    ("_case", "args"),
    [("agent_id_too_long", ["a" * 129]), ("ttl_zero", ["agent-x", "--ttl", "0"])],
)
def test_mint_token_rejects_bad_arguments(_case: str, args: list[str]) -> None:
    out = io.StringIO()
    with pytest.raises(CommandError):
        call_command("mint_token", *args, stdout=out)
    assert out.getvalue() == ""
