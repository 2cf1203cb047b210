"""The collector settings a serving process runs with (signaling/gc_tuning.py, issue #12).

Each test loads the ASGI application in a fresh interpreter, as daphne and uvicorn do, and
reads the collector's state there.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from signaling.gc_tuning import THRESHOLDS

REPO_ROOT = Path(__file__).resolve().parents[3]

PROBE = """
import gc, json
import signaling_project.asgi
print(json.dumps({"thresholds": gc.get_threshold(), "frozen": gc.get_freeze_count()}))
"""


def probe() -> dict[str, object]:
    env = {**os.environ, "DEV_MODE": "1", "DJANGO_SETTINGS_MODULE": "signaling_project.settings"}
    env.pop("DATABASE_URL", None)
    env.pop("REDIS_URL", None)
    done = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120, check=True
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_loading_the_application_freezes_what_it_imported_and_raises_the_young_threshold() -> None:
    # when
    state = probe()
    # then: the young threshold is ours, and what Django, DRF and the service loaded sits in
    # the permanent generation (objects no collection walks again)
    assert tuple(state["thresholds"]) == THRESHOLDS != (700, 10, 10)
    assert isinstance(state["frozen"], int) and state["frozen"] > 50_000
