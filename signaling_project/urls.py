"""Root URLconf: REST API, OpenAPI schema and docs, admin, static files (SPEC section 2).

Socket.IO (``/socket.io/``) is routed in ``asgi.py``, not here. Every unknown path and every
unhandled error answers JSON ``{detail, code}`` (``handler404``/``handler500``).
"""

from __future__ import annotations

from django.contrib import admin
from django.contrib.staticfiles.views import serve as serve_static
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from rooms.errors import page_not_found, server_error
from signaling.metrics_endpoint import metrics_view

handler404 = page_not_found
handler500 = server_error

urlpatterns = [
    path("", include("rooms.urls")),
    path("", include("signaling.demo.urls")),
    path("api/schema", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs", SpectacularSwaggerView.as_view(url_name="schema"), name="docs"),
    path("admin/", admin.site.urls),
    path("metrics", metrics_view, name="metrics"),
    # Admin and Swagger UI assets (the drf-spectacular sidecar) straight from the app
    # finders: daphne serves no static files and DEBUG is off, so no collectstatic needed.
    re_path(r"^static/(?P<path>.*)$", serve_static, {"insecure": True}),
]
