"""URL routes of the browser demo, included at the site root by ``signaling_project.urls``.

``/demo`` redirects to ``/demo/`` (the project runs with ``APPEND_SLASH = False``).
"""

from __future__ import annotations

from django.urls import path
from django.views.generic import RedirectView

from signaling.demo import views

urlpatterns = [
    path("demo", RedirectView.as_view(url="/demo/", query_string=True, permanent=False)),
    path("demo/", views.demo_page, name="demo"),
    path("demo/token", views.mint_token, name="demo-token"),
]
