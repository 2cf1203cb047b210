"""Views of the browser demo: the page, and the development-mode token endpoint.

Owns ``GET /demo/`` (the call page) and ``POST /demo/token`` (mint an agent token, only when
``settings.SIGNALING.dev_mode`` is on; otherwise 403 ``{detail, code: "forbidden"}``). Room
creation is not duplicated here: the page calls the real ``POST /api/rooms`` with the token.

Never touches the socket layer or the ORM; tokens come from ``rooms.tokens`` (the only token code).
"""

from __future__ import annotations

import json
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.csrf import csrf_exempt

from rooms.tokens import AGENT_ID_MAX_CHARS, mint_agent_token

# A demo token lives as long as agent-link's (`expiresIn: '1h'`, SPEC section 1).
DEMO_TOKEN_TTL_S = 3600
JSON_CONTENT_TYPE = "application/json"
# The page loads nothing from elsewhere: scripts, styles and sockets come from this origin.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "media-src 'self' blob:; connect-src 'self'; object-src 'none'; base-uri 'none'; "
    "frame-ancestors 'none'; form-action 'self'"
)


def _error(status: int, code: str, detail: str, **extra: Any) -> JsonResponse:
    """A JSON error body shaped like the REST API's (``{detail, code}``, SPEC section 2)."""
    return JsonResponse({"detail": detail, "code": code, **extra}, status=status)


def demo_page(request: HttpRequest) -> HttpResponse:
    """Render the call page; the development conveniences are shown only in development mode."""
    config = settings.SIGNALING
    page_config = {
        "devMode": config.dev_mode,
        "tokenUrl": "/demo/token",
        "roomsUrl": "/api/rooms",
        "socketPath": "/socket.io/",
        "maxParticipants": config.max_participants,
    }
    response = render(request, "demo/index.html", {"page_config": page_config, "dev_mode": config.dev_mode})
    response["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    response["Referrer-Policy"] = "no-referrer"  # the URL may carry a token
    response["Cache-Control"] = "no-store"
    return response


# No CSRF cookie dance: the endpoint only accepts application/json, which a cross-site form
# cannot send without a CORS preflight (and /demo/ is outside CORS_URLS_REGEX).
@csrf_exempt
def mint_token(request: HttpRequest) -> JsonResponse:
    """``POST /demo/token`` ``{agentId}`` → ``{token, agentId, expiresIn}`` (development mode only)."""
    if not settings.SIGNALING.dev_mode:
        return _error(403, "forbidden", "Minting demo tokens is only available in development mode (DEV_MODE=1).")
    if request.method != "POST":
        response = _error(405, "method_not_allowed", f'Method "{request.method}" not allowed.')
        response["Allow"] = "POST"
        return response
    if request.content_type != JSON_CONTENT_TYPE:
        return _error(415, "unsupported_media_type", "Send the body as application/json.")
    try:
        body = json.loads(request.body or b"null")
    except (ValueError, UnicodeDecodeError):
        return _error(400, "invalid", "The request body is not valid JSON.")
    agent_id = body.get("agentId") if isinstance(body, dict) else None
    if isinstance(agent_id, str):
        agent_id = agent_id.strip()
    if not isinstance(agent_id, str) or not 1 <= len(agent_id) <= AGENT_ID_MAX_CHARS:
        message = f"agentId must be a string of 1-{AGENT_ID_MAX_CHARS} characters."
        return _error(400, "invalid", "The request is invalid.", errors={"agentId": [message]})
    token = mint_agent_token(agent_id, ttl_s=DEMO_TOKEN_TTL_S)
    return JsonResponse({"token": token, "agentId": agent_id, "expiresIn": DEMO_TOKEN_TTL_S})
