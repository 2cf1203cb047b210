"""``WEBHOOK_URL`` and ``WEBHOOK_SECRET`` (SPEC sections 6 and 10): parsing and start-up checks.

Unit tier: no database, no event loop; one test starts ``manage.py check`` in a subprocess
to prove a URL without a secret stops start-up with one line naming the variable.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from signaling_project.config import ConfigError, load_config

REPO_ROOT = Path(__file__).resolve().parents[3]
SECRET = "unit-test-secret-0123456789abcdef"
WEBHOOK_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
URL_WITHOUT_SECRET = "WEBHOOK_SECRET is required when WEBHOOK_URL is set (a Standard Webhooks secret, whsec_...)"
BAD_SECRET = "WEBHOOK_SECRET must be a Standard Webhooks secret (whsec_ + base64 of the key)"


def test_webhooks_are_off_by_default() -> None:
    config = load_config({"JWT_SECRET": SECRET})
    assert (config.webhook_url, config.webhook_secret) == (None, None)


@pytest.mark.parametrize(
    ("_case", "secret"),
    [("prefixed", WEBHOOK_SECRET), ("bare_base64", WEBHOOK_SECRET.removeprefix("whsec_")), ("unpadded", "whsec_YWI")],
)
def test_a_url_with_a_standard_webhooks_secret_is_accepted(_case: str, secret: str) -> None:
    config = load_config({"JWT_SECRET": SECRET, "WEBHOOK_URL": " https://hooks.example/in ", "WEBHOOK_SECRET": secret})
    assert (config.webhook_url, config.webhook_secret) == ("https://hooks.example/in", secret)


@pytest.mark.parametrize(
    ("_case", "environ", "message"),
    [
        ("url_without_secret", {"WEBHOOK_URL": "https://hooks.example/in"}, URL_WITHOUT_SECRET),
        (
            "url_with_empty_secret",
            {"WEBHOOK_URL": "https://hooks.example/in", "WEBHOOK_SECRET": " "},
            URL_WITHOUT_SECRET,
        ),
        (
            "url_not_http",
            {"WEBHOOK_URL": "hooks.example/in", "WEBHOOK_SECRET": WEBHOOK_SECRET},
            "WEBHOOK_URL must be an http:// or https:// URL, got 'hooks.example/in'",
        ),
        ("secret_not_base64", {"WEBHOOK_URL": "https://h.example", "WEBHOOK_SECRET": "whsec_not base64!"}, BAD_SECRET),
        ("secret_empty_key", {"WEBHOOK_URL": "https://h.example", "WEBHOOK_SECRET": "whsec_"}, BAD_SECRET),
    ],
)
def test_bad_webhook_settings_are_one_line_naming_the_variable(
    _case: str, environ: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config({"JWT_SECRET": SECRET, **environ})
    assert str(caught.value) == message
    assert "not base64!" not in str(caught.value)  # a secret is never echoed


def test_manage_py_with_a_webhook_url_and_no_secret_exits_with_one_line() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WEBHOOK_", "JWT_SECRET"))}
    env.update({"JWT_SECRET": SECRET, "WEBHOOK_URL": "https://hooks.example/in"})
    result = subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode != 0
    assert result.stderr.splitlines() == [f"configuration error: {URL_WITHOUT_SECRET}"]
    assert "Traceback" not in result.stderr + result.stdout
