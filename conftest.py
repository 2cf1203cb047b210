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
os.environ.setdefault(
    "JWT_SECRET", "test-secret-for-the-suite-" + "0123456789abcdef" * 4
)
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "signaling_project.settings")

# Fixture modules import models at import time: set Django up before pytest loads them.
django.setup()

pytest_plugins = ["rooms.tests.fixtures", "signaling.tests.fixtures", "signaling.tests.integration.fixtures"]
