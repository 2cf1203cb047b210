"""ASGI entry point: daphne or uvicorn serve ``signaling_project.asgi:application``.

Routes ``/socket.io/`` to the Engine.IO transports (websocket and long-polling consumers)
and everything else to Django (REST API, admin, docs, static files). A configuration error
prints one line to stderr and exits non-zero, without a traceback.
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "signaling_project.settings")

from signaling_project.config import ConfigError

try:
    from django.core.asgi import get_asgi_application

    django_application = get_asgi_application()
except ConfigError as exc:
    sys.stderr.write(f"configuration error: {exc}\n")
    sys.exit(2)

from signaling import header_limits, lifecycle
from signaling.consumers import daphne_close_codes
from signaling.routing import build_application, dev_mode_warning

daphne_close_codes.install()
header_limits.install()
dev_mode_warning()

application = build_application(django_application)
lifecycle.hook_daphne()  # SIGTERM drains (uvicorn: through the ASGI lifespan instead)

from signaling.gc_tuning import tune_collector  # noqa: E402  (last: freezes what is loaded)

tune_collector()
