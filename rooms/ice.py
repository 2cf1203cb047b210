"""ICE server configuration with ephemeral TURN credentials (SPEC section 8).

Owns the one place ``iceServers`` lists are built, for REST (``GET /api/ice-servers``, the
join-token response) and for the socket layer's ``connected`` event. TURN credentials follow
the TURN REST API scheme that coturn checks with ``use-auth-secret`` + ``static-auth-secret``:
the username is ``"<expiry>:<agentId>"`` and the credential is the base64 of
HMAC-SHA1(secret, username), so coturn verifies them without any shared state.

Never imports ``signaling``; reads only ``settings.SIGNALING``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from typing import Any

from django.conf import settings


def turn_credential(secret: str, username: str) -> str:
    """The TURN REST API password for ``username``: base64(HMAC-SHA1(secret, username))."""
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


def build_ice_servers(
    *,
    stun_urls: tuple[str, ...],
    turn_urls: tuple[str, ...],
    turn_secret: str | None,
    turn_ttl_s: int,
    agent_id: str,
    now_s: float,
) -> list[dict[str, Any]]:
    """An ``RTCConfiguration.iceServers`` list; TURN credentials expire ``turn_ttl_s`` after ``now_s``.

    Args:
        stun_urls: ``stun:`` URIs (one entry without credentials when any).
        turn_urls: ``turn:``/``turns:`` URIs (one entry with credentials when any).
        turn_secret: the TURN server's shared secret; required when ``turn_urls`` is set.
        turn_ttl_s: credential lifetime in seconds.
        agent_id: the agent the credentials are minted for.
        now_s: Unix time of issue.

    Raises:
        ValueError: ``turn_urls`` without ``turn_secret`` (config validation prevents it).
    """
    servers: list[dict[str, Any]] = []
    if stun_urls:
        servers.append({"urls": list(stun_urls)})
    if turn_urls:
        if not turn_secret:
            raise ValueError("TURN URLs need a TURN secret")
        username = f"{int(now_s) + turn_ttl_s}:{agent_id}"
        servers.append(
            {
                "urls": list(turn_urls),
                "username": username,
                "credential": turn_credential(turn_secret, username),
            }
        )
    return servers


def ice_servers_for(agent_id: str) -> list[dict[str, Any]]:
    """The configured ``iceServers`` for ``agent_id``, minted now."""
    config = settings.SIGNALING
    return build_ice_servers(
        stun_urls=config.stun_urls,
        turn_urls=config.turn_urls,
        turn_secret=config.turn_secret,
        turn_ttl_s=config.turn_ttl_s,
        agent_id=agent_id,
        now_s=time.time(),
    )


def ice_ttl_s() -> int:
    """``TURN_TTL``: how long minted credentials stay valid (seconds)."""
    return int(settings.SIGNALING.turn_ttl_s)
