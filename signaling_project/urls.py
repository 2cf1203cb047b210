"""Root URLconf: REST API, OpenAPI schema and docs, admin, the ``/`` index.

Socket.IO (``/socket.io/``) is routed in ``asgi.py``, and ``/static/`` is served by WhiteNoise
(middleware), not here. A path that differs from a route only by its trailing slash is
redirected to it (``signaling_project.views.slash_tolerant``, the last pattern); every other
unknown path and every unhandled error answers JSON ``{detail, code}``.
"""

from __future__ import annotations

from django.contrib import admin
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from rooms.errors import page_not_found, server_error
from signaling.metrics_endpoint import metrics_view
from signaling_project.views import SLASH_TOLERANT_NAME, index, slash_tolerant

handler404 = page_not_found
handler500 = server_error

urlpatterns = [
    path("", index, name="index"),
    path("", include("rooms.urls")),
    path("", include("signaling.demo.urls")),
    path("api/schema", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs", SpectacularSwaggerView.as_view(url_name="schema"), name="docs"),
    path("admin/", admin.site.urls),
    path("metrics", metrics_view, name="metrics"),
    re_path(r"^(?P<path>.+)$", slash_tolerant, name=SLASH_TOLERANT_NAME),
]
