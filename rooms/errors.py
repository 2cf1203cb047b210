"""REST error shapes: coded exceptions and the one handler that renders them (SPEC section 2).

Owns: every 4xx/5xx body of the REST API, ``{"detail": <human text>, "code": <machine
code>}`` plus ``"errors": {field: [messages]}`` for a 400 validation failure, and the JSON
404/500 handlers Django uses outside DRF (wired as ``handler404``/``handler500`` in
``signaling_project.urls``). Views *raise* these exceptions; they never build error bodies.

Never imports ``signaling``.
"""

from __future__ import annotations

import logging
from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import Http404, HttpRequest, JsonResponse
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import set_rollback

logger = logging.getLogger(__name__)

# The REST code of a 400 whose body failed validation (field messages under "errors").
VALIDATION_CODE = "invalid"
VALIDATION_DETAIL = "The request is invalid."
NOT_FOUND_CODE = "not_found"
SERVER_ERROR_CODE = "server_error"


class RoomNotFound(exceptions.NotFound):
    """404: no room has that id."""

    default_detail = "Room not found."
    default_code = "room_not_found"


class RoomClosed(exceptions.APIException):
    """410: the room has closed."""

    status_code = status.HTTP_410_GONE
    default_detail = "Room is closed."
    default_code = "room_closed"


class RoomFull(exceptions.APIException):
    """409: the room holds its maximum number of participants."""

    status_code = status.HTTP_409_CONFLICT
    default_detail = "Room is full."
    default_code = "room_full"


class Forbidden(exceptions.PermissionDenied):
    """403: authenticated, but not allowed to do this."""

    default_detail = "You do not have permission to perform this action."
    default_code = "forbidden"


class NotReady(exceptions.APIException):
    """503: a dependency (database, channel layer) does not answer."""

    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_detail = "Service is not ready."
    default_code = "not_ready"


def _flatten(errors: Any, prefix: str = "") -> dict[str, list[str]]:
    """Turn DRF's nested error detail into ``{"field" | "parent.field": [messages]}``."""
    if isinstance(errors, dict):
        flat: dict[str, list[str]] = {}
        for key, value in errors.items():
            flat.update(_flatten(value, f"{prefix}.{key}" if prefix else str(key)))
        return flat
    if isinstance(errors, list) and any(isinstance(item, dict | list) for item in errors):
        flat = {}
        for index, item in enumerate(errors):
            flat.update(_flatten(item, f"{prefix}.{index}" if prefix else str(index)))
        return flat
    messages = errors if isinstance(errors, list) else [errors]
    return {prefix or "non_field_errors": [str(message) for message in messages]}


def error_body(exc: exceptions.APIException) -> dict[str, Any]:
    """Return the JSON body for ``exc``: ``{detail, code}`` (+ ``errors`` for field failures)."""
    if isinstance(exc, exceptions.NotAuthenticated):
        # SPEC section 1 codes: a protected call without any credentials.
        return {"detail": str(exc.detail), "code": "missing_token"}
    if isinstance(exc.detail, dict | list):
        return {
            "detail": VALIDATION_DETAIL,
            "code": VALIDATION_CODE,
            "errors": _flatten(exc.detail),
        }
    code = getattr(exc.detail, "code", None) or exc.default_code
    if isinstance(exc, exceptions.PermissionDenied):
        code = Forbidden.default_code
    return {"detail": str(exc.detail), "code": str(code)}


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF ``EXCEPTION_HANDLER``: render every API exception as ``{detail, code}``.

    Returns None for non-API exceptions, which Django then turns into a JSON 500
    through :func:`server_error`.
    """
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = Forbidden()
    if not isinstance(exc, exceptions.APIException):
        return None
    headers: dict[str, str] = {}
    auth_header = getattr(exc, "auth_header", None)
    if auth_header:
        headers["WWW-Authenticate"] = auth_header
    wait = getattr(exc, "wait", None)
    if wait:
        headers["Retry-After"] = f"{int(wait)}"
    set_rollback()
    return Response(error_body(exc), status=exc.status_code, headers=headers)


def page_not_found(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    """Django ``handler404``: unknown paths answer JSON ``{detail, code: "not_found"}``."""
    return JsonResponse(
        {"detail": "Not found.", "code": NOT_FOUND_CODE},
        status=status.HTTP_404_NOT_FOUND,
    )


def server_error(request: HttpRequest) -> JsonResponse:
    """Django ``handler500``: an unhandled exception answers JSON ``{detail, code}``."""
    return JsonResponse(
        {"detail": "Internal server error.", "code": SERVER_ERROR_CODE},
        status=status.HTTP_500_INTERNAL_SERVER_ERROR,
    )
