"""``GET /metrics``: this instance's Prometheus metrics (SPEC section 10).

Open, unless ``METRICS_TOKEN`` is set: then ``Authorization: Bearer <METRICS_TOKEN>`` is
required (401 JSON otherwise). The text format of the official prometheus_client.
"""

from __future__ import annotations

import hmac

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from signaling.service import metrics


@require_GET
def metrics_view(request: HttpRequest) -> HttpResponse:
    """The Prometheus text exposition of this process's registry."""
    token = settings.SIGNALING.metrics_token
    if token is not None:
        header = request.headers.get("Authorization", "")
        given = header[7:].strip() if header[:7].lower() == "bearer " else ""
        if not hmac.compare_digest(given.encode(), token.encode()):
            response = JsonResponse(
                {"detail": "A valid METRICS_TOKEN bearer token is required.", "code": "unauthorized"}, status=401
            )
            response["WWW-Authenticate"] = 'Bearer realm="metrics"'
            return response
    metrics.register_instance_collector()
    return HttpResponse(generate_latest(REGISTRY), content_type=CONTENT_TYPE_LATEST)
