"""signaling_project.config: environment parsing and validation (SPEC section 6, STYLE section 5).

Unit tier: no database, no event loop. Two tests start ``manage.py check`` in a
subprocess to prove a bad configuration stops start-up with one line and no traceback.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from signaling_project.config import (
    DEV_SECRET_FILENAME,
    Config,
    ConfigError,
    load_config,
    read_environment,
)

REPO_ROOT = Path(__file__).resolve().parents[3]
SECRET = "unit-test-secret-0123456789abcdef"


def test_every_variable_has_its_spec_default() -> None:
    # when only the required secret is set
    config = load_config({"JWT_SECRET": SECRET})
    # then
    assert config == Config(
        port=8080,
        jwt_secret=SECRET,
        cors_origins=("*",),
        heartbeat_interval_ms=30000,
        heartbeat_timeout_ms=20000,
        room_timeout_ms=300000,
        max_participants=10,
        redis_url=None,
        database_url=None,
        log_level="info",
        jwt_leeway_s=0,
        join_token_ttl_s=300,
        max_payload_bytes=1_000_000,
        max_message_bytes=65536,
        rate_limit_per_s=200,
        rate_limit_burst=400,
        dev_mode=False,
        dev_secret_generated=False,
        allowed_hosts=("*",),
    )
    assert config.cors_allow_all is True


@pytest.mark.parametrize(
    ("_case", "value", "field", "expected"),
    [
        ("PORT", "9000", "port", 9000),
        ("HEARTBEAT_INTERVAL", "250", "heartbeat_interval_ms", 250),
        ("HEARTBEAT_TIMEOUT", "1000", "heartbeat_timeout_ms", 1000),
        ("ROOM_TIMEOUT", "60000", "room_timeout_ms", 60000),
        ("MAX_PARTICIPANTS", "3", "max_participants", 3),
        (
            "REDIS_URL",
            "redis://127.0.0.1:6379/0",
            "redis_url",
            "redis://127.0.0.1:6379/0",
        ),
        ("DATABASE_URL", "postgres://u@h/db", "database_url", "postgres://u@h/db"),
        ("LOG_LEVEL", "DEBUG", "log_level", "debug"),
        ("LOG_FORMAT", "JSON", "log_format", "json"),
        ("LOG_FORMAT", "", "log_format", "text"),
        ("METRICS_TOKEN", " s3cret ", "metrics_token", "s3cret"),
        ("METRICS_TOKEN", "", "metrics_token", None),
        ("JWT_LEEWAY", "5", "jwt_leeway_s", 5),
        ("JWT_LEEWAY", "0", "jwt_leeway_s", 0),
        ("JOIN_TOKEN_TTL", "60", "join_token_ttl_s", 60),
        ("MAX_PAYLOAD", "2048", "max_payload_bytes", 2048),
        ("MAX_MESSAGE_BYTES", "1024", "max_message_bytes", 1024),
        ("MAX_BUFFERED_BYTES", "5000000", "max_buffered_bytes", 5_000_000),
        ("MAX_BUFFERED_BYTES", "", "max_buffered_bytes", 2_000_000),
        ("RATE_LIMIT", "10", "rate_limit_per_s", 10),
        ("RATE_LIMIT_BURST", "20", "rate_limit_burst", 20),
        ("DEV_MODE", "1", "dev_mode", True),
        ("DEV_MODE", "0", "dev_mode", False),
        ("CORS_ORIGIN", "*", "cors_origins", ("*",)),
        (
            "CORS_ORIGIN",
            "https://a.example, https://b.example/",
            "cors_origins",
            ("https://a.example", "https://b.example"),
        ),
        ("PORT", " 9001 ", "port", 9001),
        ("PORT", "", "port", 8080),
    ],
)
def test_each_variable_is_parsed(_case: str, value: str, field: str, expected: Any) -> None:
    config = load_config({"JWT_SECRET": SECRET, _case: value})
    assert getattr(config, field) == expected


def test_max_buffered_bytes_defaults_to_twice_max_payload() -> None:
    config = load_config({"JWT_SECRET": SECRET, "MAX_PAYLOAD": "300000"})
    assert (config.max_payload_bytes, config.max_buffered_bytes) == (300_000, 600_000)


def test_a_cors_origin_list_is_not_allow_all() -> None:
    config = load_config({"JWT_SECRET": SECRET, "CORS_ORIGIN": "https://a.example"})
    assert (config.cors_allow_all, config.cors_origins) == (
        False,
        ("https://a.example",),
    )


BAD_VALUES = [
    ("PORT", "abc", "PORT must be a positive integer, got 'abc'"),
    ("PORT", "0", "PORT must be a positive integer, got '0'"),
    ("PORT", "70000", "PORT must be an integer from 1 to 65535, got '70000'"),
    (
        "HEARTBEAT_INTERVAL",
        "-5",
        "HEARTBEAT_INTERVAL must be a positive integer of milliseconds, got '-5'",
    ),
    (
        "HEARTBEAT_INTERVAL",
        "30s",
        "HEARTBEAT_INTERVAL must be a positive integer of milliseconds, got '30s'",
    ),
    (
        "HEARTBEAT_TIMEOUT",
        "0",
        "HEARTBEAT_TIMEOUT must be a positive integer of milliseconds, got '0'",
    ),
    (
        "ROOM_TIMEOUT",
        "-1",
        "ROOM_TIMEOUT must be a positive integer of milliseconds, got '-1'",
    ),
    (
        "ROOM_TIMEOUT",
        "1.5",
        "ROOM_TIMEOUT must be a positive integer of milliseconds, got '1.5'",
    ),
    (
        "MAX_PARTICIPANTS",
        "ten",
        "MAX_PARTICIPANTS must be a positive integer, got 'ten'",
    ),
    ("MAX_PARTICIPANTS", "0", "MAX_PARTICIPANTS must be a positive integer, got '0'"),
    (
        "JWT_LEEWAY",
        "-1",
        "JWT_LEEWAY must be a non-negative integer of seconds, got '-1'",
    ),
    (
        "JOIN_TOKEN_TTL",
        "0",
        "JOIN_TOKEN_TTL must be a positive integer of seconds, got '0'",
    ),
    (
        "MAX_PAYLOAD",
        "1e6",
        "MAX_PAYLOAD must be a positive integer of bytes, got '1e6'",
    ),
    (
        "MAX_MESSAGE_BYTES",
        "-2",
        "MAX_MESSAGE_BYTES must be a positive integer of bytes, got '-2'",
    ),
    (
        "MAX_BUFFERED_BYTES",
        "2MB",
        "MAX_BUFFERED_BYTES must be a positive integer of bytes, got '2MB'",
    ),
    (
        "MAX_BUFFERED_BYTES",
        "999999",
        "MAX_BUFFERED_BYTES must be at least MAX_PAYLOAD (1000000), got 999999",
    ),
    (
        "RATE_LIMIT",
        "fast",
        "RATE_LIMIT must be a positive integer of events per second, got 'fast'",
    ),
    (
        "RATE_LIMIT_BURST",
        "0",
        "RATE_LIMIT_BURST must be a positive integer of events, got '0'",
    ),
    ("DEV_MODE", "maybe", "DEV_MODE must be 0 or 1, got 'maybe'"),
    (
        "LOG_LEVEL",
        "loud",
        "LOG_LEVEL must be one of debug, info, warning, error, critical, got 'loud'",
    ),
    ("LOG_FORMAT", "xml", "LOG_FORMAT must be one of text, json, got 'xml'"),
    (
        "REDIS_URL",
        "localhost:6379",
        "REDIS_URL must be a redis:// or rediss:// URL, got 'localhost:6379'",
    ),
    (
        "CORS_ORIGIN",
        "app.example",
        "CORS_ORIGIN must be * or a comma-separated list of http(s) origins, got 'app.example'",
    ),
]


@pytest.mark.parametrize(("_case", "value", "message"), BAD_VALUES)
def test_bad_value_is_one_line_naming_the_variable(_case: str, value: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config({"JWT_SECRET": SECRET, _case: value})
    assert str(caught.value) == message
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(("_case", "environ"), [("unset", {}), ("empty", {"JWT_SECRET": ""})])
def test_missing_jwt_secret_is_an_error(_case: str, environ: dict[str, str]) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(environ)
    assert str(caught.value) == (
        "JWT_SECRET is required (set it in the environment or .env; DEV_MODE=1 generates one for local development)"
    )


def test_env_file_is_read_and_the_environment_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # given a .env file and a process environment that overrides one of its values
    (tmp_path / ".env").write_text(
        "JWT_SECRET=secret-from-dotenv-file-0123456789abcdef\nPORT=9000\nMAX_PARTICIPANTS=4\n"
    )
    monkeypatch.delenv("JWT_SECRET", raising=False)
    monkeypatch.delenv("MAX_PARTICIPANTS", raising=False)
    monkeypatch.setenv("PORT", "9100")
    # when
    config = load_config(read_environment(tmp_path))
    # then
    assert (config.jwt_secret, config.port, config.max_participants) == (
        "secret-from-dotenv-file-0123456789abcdef",
        9100,
        4,
    )


def test_missing_env_file_is_fine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JWT_SECRET", SECRET)
    assert load_config(read_environment(tmp_path)).jwt_secret == SECRET


def test_dev_mode_generates_a_secret_and_keeps_it_across_loads(tmp_path: Path) -> None:
    # when loaded twice in development mode without a secret
    first = load_config({"DEV_MODE": "1"}, data_dir=tmp_path)
    second = load_config({"DEV_MODE": "1"}, data_dir=tmp_path)
    # then one secret is generated, kept private on disk, and reused
    secret_file = tmp_path / DEV_SECRET_FILENAME
    assert len(first.jwt_secret) >= 32
    assert second.jwt_secret == first.jwt_secret
    assert secret_file.read_text().strip() == first.jwt_secret
    assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600
    assert (first.dev_mode, first.dev_secret_generated) == (True, True)


def test_dev_mode_with_a_secret_uses_it_and_writes_nothing(tmp_path: Path) -> None:
    config = load_config({"DEV_MODE": "1", "JWT_SECRET": SECRET}, data_dir=tmp_path)
    assert (config.jwt_secret, config.dev_secret_generated) == (SECRET, False)
    assert list(tmp_path.iterdir()) == []


def _manage_check(environ: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run ``manage.py check`` in the repo with exactly ``environ`` (plus PATH)."""
    env = {"PATH": os.environ.get("PATH", ""), **environ}
    return subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_manage_py_with_a_bad_value_exits_with_one_line_and_no_traceback() -> None:
    # when
    result = _manage_check({"JWT_SECRET": SECRET, "HEARTBEAT_INTERVAL": "-5"})
    # then
    assert result.returncode != 0
    assert result.stderr.splitlines() == [
        ("configuration error: HEARTBEAT_INTERVAL must be a positive integer of milliseconds, got '-5'")
    ]
    assert "Traceback" not in result.stderr + result.stdout


def test_manage_py_without_jwt_secret_exits_non_zero() -> None:
    if (REPO_ROOT / ".env").exists():
        pytest.skip("a .env in the repo root may provide JWT_SECRET")
    result = _manage_check({})
    assert result.returncode != 0
    assert result.stderr.splitlines() == [
        (
            "configuration error: JWT_SECRET is required (set it in the environment "
            "or .env; DEV_MODE=1 generates one for local development)"
        )
    ]
