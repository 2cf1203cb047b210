"""Site-level views: the ``/`` index and trailing-slash tolerance.

``/`` leads somewhere: the demo page in development mode, otherwise a small HTML index of
what the server offers. :func:`slash_tolerant` is the last URL pattern: a path that only
differs from a route by its trailing slash (``/admin``, ``/api/rooms/``) is redirected to
that route (301 for GET/HEAD, 308 otherwise so the method and body are kept); anything
else is the JSON 404 of ``handler404``.
"""

from __future__ import annotations

from django.conf import settings
from django.http import (
    HttpRequest,
    HttpResponse,
    HttpResponsePermanentRedirect,
    HttpResponseRedirect,
)
from django.urls import Resolver404, resolve

from rooms.errors import page_not_found

SLASH_TOLERANT_NAME = "slash-tolerant"
INDEX_LINKS = (
    ("/demo/", "Browser demo: an audio/video call through this server"),
    ("/api/docs", "REST API documentation (Swagger UI)"),
    ("/api/schema", "OpenAPI 3 schema"),
    ("/api/rooms", "Open rooms (JSON)"),
    ("/api/stats", "Server statistics (JSON)"),
    ("/admin/", "Django admin"),
    ("/healthz", "Health check"),
)
INDEX_HTML = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>WebRTC signaling server</title></head>
<body><h1>WebRTC signaling server</h1>
<p>Socket.IO clients connect to this origin (path <code>/socket.io/</code>).</p>
<ul>
{items}
</ul></body></html>
"""


def index(request: HttpRequest) -> HttpResponse:
    """``GET /``: the demo page in development mode, else a small index of links."""
    if settings.SIGNALING.dev_mode:
        return HttpResponseRedirect("/demo/")
    items = "\n".join(f'<li><a href="{href}">{href}</a>: {text}</li>' for href, text in INDEX_LINKS)
    return HttpResponse(INDEX_HTML.format(items=items), content_type="text/html; charset=utf-8")


def _routes_to_a_view(path: str) -> bool:
    """True when ``path`` resolves to a real route (not to this fallback)."""
    try:
        match = resolve(path)
    except Resolver404:
        return False
    return match.url_name != SLASH_TOLERANT_NAME


def slash_tolerant(request: HttpRequest, path: str) -> HttpResponse:
    """Redirect ``path`` to the route it names up to a trailing slash, else answer 404."""
    current = "/" + path
    candidate = current.rstrip("/") if current.endswith("/") and current != "/" else current + "/"
    if not _routes_to_a_view(candidate):
        return page_not_found(request, None)
    query = request.META.get("QUERY_STRING", "")
    location = candidate + ("?" + query if query else "")
    return HttpResponsePermanentRedirect(location, preserve_request=request.method not in ("GET", "HEAD"))
