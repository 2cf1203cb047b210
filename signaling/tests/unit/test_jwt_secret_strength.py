"""JWT_SECRET strength: short secrets and the `.env.example` placeholder are refused with a
ConfigError naming the variable; the generated development secret passes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from signaling_project.config import EXAMPLE_SECRET, MIN_SECRET_BYTES, ConfigError, load_config

REPO_ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.parametrize(
    ("_case", "secret", "size"), [("one char", "x", 1), ("31 bytes", "s" * 31, 31), ("multibyte", "é" * 15, 30)]
)
def test_short_secret_is_refused_naming_the_variable(_case: str, secret: str, size: int) -> None:
    with pytest.raises(ConfigError) as raised:
        load_config({"JWT_SECRET": secret})
    assert str(raised.value) == f"JWT_SECRET must be at least {MIN_SECRET_BYTES} bytes, got {size}"
    assert secret not in str(raised.value)


def test_env_example_placeholder_is_refused() -> None:
    # given: the placeholder exactly as .env.example ships it
    assert f"JWT_SECRET={EXAMPLE_SECRET}\n" in (REPO_ROOT / ".env.example").read_text()
    # when / then
    with pytest.raises(ConfigError, match=r"^JWT_SECRET is the placeholder from \.env\.example"):
        load_config({"JWT_SECRET": EXAMPLE_SECRET})


def test_secret_of_32_bytes_is_accepted() -> None:
    assert load_config({"JWT_SECRET": "k" * 32}).jwt_secret == "k" * 32


def test_generated_development_secret_passes(tmp_path: Path) -> None:
    config = load_config({"DEV_MODE": "1"}, data_dir=tmp_path)
    assert config.dev_secret_generated and len(config.jwt_secret.encode()) >= MIN_SECRET_BYTES


def test_short_development_secret_file_is_replaced(tmp_path: Path) -> None:
    (tmp_path / ".dev-jwt-secret").write_text("short\n")
    config = load_config({"DEV_MODE": "1"}, data_dir=tmp_path)
    assert len(config.jwt_secret.encode()) >= MIN_SECRET_BYTES
    assert (tmp_path / ".dev-jwt-secret").read_text().strip() == config.jwt_secret


def test_manage_py_with_the_placeholder_exits_with_one_line_and_no_traceback() -> None:
    # given: exactly what copying .env.example unedited gives
    env = {"PATH": os.environ.get("PATH", ""), "JWT_SECRET": EXAMPLE_SECRET}
    # when
    result = subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    # then
    assert result.returncode != 0
    assert len(result.stderr.splitlines()) == 1
    assert result.stderr.startswith("configuration error: JWT_SECRET is the placeholder from .env.example")
    assert "Traceback" not in result.stdout + result.stderr
