"""Root pytest configuration: test environment and the shared fixture modules.

pytest-django loads Django settings while pytest reads its initial conftests, and
``settings.py`` refuses to load without ``JWT_SECRET`` (SPEC section 6). So the settings
module is named here, not in pytest.ini, after a test secret is put in the environment,
and Django is set up here (pytest-django then finds it ready). A ``JWT_SECRET`` or
``DATABASE_URL`` already in the environment wins (e.g. the PostgreSQL run).
"""

from __future__ import annotations

import os

import django

# 64+ bytes: PyJWT warns about HMAC keys shorter than the hash (tests sign HS512 too).
os.environ.setdefault("JWT_SECRET", "test-secret-for-the-suite-" + "0123456789abcdef" * 4)
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "signaling_project.settings")

# Fixture modules import models at import time: set Django up before pytest loads them.
django.setup()

# The server keeps database connections open in its worker threads (CONN_MAX_AGE). In the test
# process those threads outlive the tests that used them, and PostgreSQL then refuses to drop
# the test database ("being accessed by other users"): tests close connections after each use.
from django.conf import settings as _settings  # noqa: E402
from django.db import connections as _connections  # noqa: E402

_settings.DATABASES["default"]["CONN_MAX_AGE"] = 0
_connections.settings["default"]["CONN_MAX_AGE"] = 0

pytest_plugins = ["rooms.tests.fixtures", "signaling.tests.fixtures", "signaling.tests.integration.fixtures"]
