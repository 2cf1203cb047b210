"""Environment configuration: SPEC section 6.

Owns the parsing and validation of every environment variable the server reads. The
`.env` file is read first and the process environment wins. Nothing else in the project
reads ``os.environ``: ``settings.py`` calls :func:`load_environment` once and the rest of
the code reads ``django.conf.settings.SIGNALING`` (a frozen :class:`Config`).

A bad value raises :class:`ConfigError` with one line naming the variable, what was
expected and the value; ``manage.py`` and ``asgi.py`` print that line and exit non-zero.
"""

from __future__ import annotations

import base64
import binascii
import logging
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from dotenv import dotenv_values

logger = logging.getLogger(__name__)

LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
LOG_FORMATS = ("text", "json")
# Where DEV_MODE keeps its generated secret so that tokens survive a restart.
DEV_SECRET_FILENAME = ".dev-jwt-secret"
# A JWT_SECRET must be at least this many bytes (UTF-8): HS256 keys shorter than the hash
# are guessable offline from one token. The generated development secret is 43 bytes.
MIN_SECRET_BYTES = 32
# The placeholder that `.env.example` ships: copying the file unedited must not start a server.
EXAMPLE_SECRET = "change-me-to-a-long-random-secret"
MIN_SECRET_LENGTH = 16
# Standard Webhooks secrets: "whsec_" + base64 of the HMAC key (the prefix is optional).
WEBHOOK_SECRET_PREFIX = "whsec_"
# MAX_BUFFERED_BYTES defaults to this many MAX_PAYLOADs (socket.io's maxHttpBufferSize
# thinking, applied to what the server sends): see _max_buffered.
BUFFERED_PAYLOADS = 2


class ConfigError(Exception):
    """A configuration value is missing or malformed; the message names the variable."""


@dataclass(frozen=True)
class Config:
    """Validated server configuration (SPEC section 6); durations carry their unit."""

    port: int = 8080
    host: str = "127.0.0.1"
    jwt_secret: str = ""
    cors_origins: tuple[str, ...] = ("*",)
    heartbeat_interval_ms: int = 30000
    heartbeat_timeout_ms: int = 20000
    room_timeout_ms: int = 300000
    max_participants: int = 10
    redis_url: str | None = None
    database_url: str | None = None
    log_level: str = "info"
    jwt_leeway_s: int = 0
    join_token_ttl_s: int = 300
    max_payload_bytes: int = 1_000_000
    max_message_bytes: int = 65536
    max_buffered_bytes: int = 2_000_000
    rate_limit_per_s: int = 200
    rate_limit_burst: int = 400
    dev_mode: bool = False
    dev_secret_generated: bool = False
    allowed_hosts: tuple[str, ...] = ("*",)
    redis_prefix: str = "sig"
    metrics_token: str | None = None
    log_format: str = "text"
    stun_urls: tuple[str, ...] = ()
    turn_urls: tuple[str, ...] = ()
    turn_secret: str | None = None
    turn_ttl_s: int = 86400
    webhook_url: str | None = None
    webhook_secret: str | None = None

    @property
    def cors_allow_all(self) -> bool:
        """True when ``CORS_ORIGIN`` is ``*``."""
        return "*" in self.cors_origins


def _int(env: Mapping[str, str], name: str, default: int, *, minimum: int, unit: str) -> int:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw.strip())
    except ValueError:
        value = None
    if value is None or value < minimum:
        qualifier = "a positive" if minimum > 0 else "a non-negative"
        raise ConfigError(f"{name} must be {qualifier} integer{unit}, got {raw!r}")
    return value


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name} must be 0 or 1, got {raw!r}")


def _origins(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    raw = env.get(name, "*").strip() or "*"
    origins = tuple(part.strip().rstrip("/") for part in raw.split(",") if part.strip())
    for origin in origins:
        if origin != "*" and not origin.startswith(("http://", "https://")):
            raise ConfigError(f"{name} must be * or a comma-separated list of http(s) origins, got {raw!r}")
    return origins


def load_config(environ: Mapping[str, str], *, data_dir: Path | None = None) -> Config:
    """Validate ``environ`` into a :class:`Config`.

    Args:
        environ: the merged environment (``.env`` values overridden by the process).
        data_dir: where DEV_MODE keeps its generated secret; no file is written when None.

    Raises:
        ConfigError: a value is malformed, or ``JWT_SECRET`` is missing outside DEV_MODE, shorter
            than ``MIN_SECRET_BYTES`` or the `.env.example` placeholder.
    """
    env = environ
    dev_mode = _bool(env, "DEV_MODE", False)
    log_level = env.get("LOG_LEVEL", "info").strip().lower() or "info"
    if log_level not in LOG_LEVELS:
        raise ConfigError(f"LOG_LEVEL must be one of {', '.join(LOG_LEVELS)}, got {env['LOG_LEVEL']!r}")

    secret = env.get("JWT_SECRET", "")
    generated = False
    if not secret:
        if not dev_mode:
            raise ConfigError(
                "JWT_SECRET is required (set it in the environment or .env; "
                "DEV_MODE=1 generates one for local development)"
            )
        secret, generated = _dev_secret(data_dir), True
    _check_secret_strength(secret)

    port = _int(env, "PORT", 8080, minimum=1, unit="")
    if port > 65535:
        raise ConfigError(f"PORT must be an integer from 1 to 65535, got {env['PORT']!r}")
    max_participants = _int(env, "MAX_PARTICIPANTS", 10, minimum=1, unit="")
    rate_limit = _int(env, "RATE_LIMIT", 200, minimum=1, unit=" of events per second")
    burst = _int(env, "RATE_LIMIT_BURST", 400, minimum=1, unit=" of events")
    database_url = env.get("DATABASE_URL", "").strip() or None
    redis_url = env.get("REDIS_URL", "").strip() or None
    if redis_url and not redis_url.startswith(("redis://", "rediss://", "unix://")):
        raise ConfigError(f"REDIS_URL must be a redis:// or rediss:// URL, got {redis_url!r}")
    hosts = tuple(h.strip() for h in env.get("ALLOWED_HOSTS", "*").split(",") if h.strip())
    max_payload = _int(env, "MAX_PAYLOAD", 1_000_000, minimum=1, unit=" of bytes")
    return Config(
        port=port,
        host=env.get("HOST", "127.0.0.1").strip() or "127.0.0.1",
        jwt_secret=secret,
        cors_origins=_origins(env, "CORS_ORIGIN"),
        heartbeat_interval_ms=_int(env, "HEARTBEAT_INTERVAL", 30000, minimum=1, unit=" of milliseconds"),
        heartbeat_timeout_ms=_int(env, "HEARTBEAT_TIMEOUT", 20000, minimum=1, unit=" of milliseconds"),
        room_timeout_ms=_int(env, "ROOM_TIMEOUT", 300000, minimum=1, unit=" of milliseconds"),
        max_participants=max_participants,
        redis_url=redis_url,
        database_url=database_url,
        log_level=log_level,
        jwt_leeway_s=_int(env, "JWT_LEEWAY", 0, minimum=0, unit=" of seconds"),
        join_token_ttl_s=_int(env, "JOIN_TOKEN_TTL", 300, minimum=1, unit=" of seconds"),
        max_payload_bytes=max_payload,
        max_message_bytes=_int(env, "MAX_MESSAGE_BYTES", 65536, minimum=1, unit=" of bytes"),
        max_buffered_bytes=_max_buffered(env, max_payload),
        rate_limit_per_s=rate_limit,
        rate_limit_burst=burst,
        dev_mode=dev_mode,
        dev_secret_generated=generated,
        allowed_hosts=hosts or ("*",),
        redis_prefix=_prefix(env),
        metrics_token=env.get("METRICS_TOKEN", "").strip() or None,
        log_format=_log_format(env),
        **_ice(env),
        **_webhooks(env),
    )


def _max_buffered(env: Mapping[str, str], max_payload: int) -> int:
    """``MAX_BUFFERED_BYTES``: what may wait for one client that does not read before its
    connection is closed. Default twice ``MAX_PAYLOAD`` (room for the largest packet and as
    much again); at least ``MAX_PAYLOAD``, else one large legitimate packet would close it."""
    default = BUFFERED_PAYLOADS * max_payload
    value = _int(env, "MAX_BUFFERED_BYTES", default, minimum=1, unit=" of bytes")
    if value < max_payload:
        raise ConfigError(f"MAX_BUFFERED_BYTES must be at least MAX_PAYLOAD ({max_payload}), got {value}")
    return value


def _uris(env: Mapping[str, str], name: str, schemes: tuple[str, ...]) -> tuple[str, ...]:
    raw = env.get(name, "")
    uris = tuple(part.strip() for part in raw.split(",") if part.strip())
    for uri in uris:
        host = uri.partition(":")[2]
        if not uri.startswith(tuple(f"{scheme}:" for scheme in schemes)) or not host or " " in uri:
            expected = " or ".join(f"{scheme}:" for scheme in schemes)
            raise ConfigError(f"{name} must be a comma-separated list of {expected} URIs, got {raw!r}")
    return uris


def _ice(env: Mapping[str, str]) -> dict[str, object]:
    """``STUN_URLS``, ``TURN_URLS``, ``TURN_SECRET``, ``TURN_TTL`` (SPEC section 8)."""
    turn_urls = _uris(env, "TURN_URLS", ("turn", "turns"))
    turn_secret = env.get("TURN_SECRET", "").strip() or None
    if turn_urls and turn_secret is None:
        raise ConfigError("TURN_URLS is set but TURN_SECRET is not: set the TURN server's static-auth-secret")
    return {
        "stun_urls": _uris(env, "STUN_URLS", ("stun", "stuns")),
        "turn_urls": turn_urls,
        "turn_secret": turn_secret,
        "turn_ttl_s": _int(env, "TURN_TTL", 86400, minimum=1, unit=" of seconds"),
    }


def _log_format(env: Mapping[str, str]) -> str:
    raw = env.get("LOG_FORMAT", "text").strip().lower() or "text"
    if raw not in LOG_FORMATS:
        raise ConfigError(f"LOG_FORMAT must be one of {', '.join(LOG_FORMATS)}, got {env['LOG_FORMAT']!r}")
    return raw


def _check_secret_strength(secret: str) -> None:
    """Refuse the `.env.example` placeholder and secrets shorter than ``MIN_SECRET_BYTES``."""
    if secret.strip() == EXAMPLE_SECRET:
        raise ConfigError(
            "JWT_SECRET is the placeholder from .env.example; set a random one, e.g. "
            "python3 -c 'import secrets; print(secrets.token_urlsafe(32))'"
        )
    size = len(secret.encode())
    if size < MIN_SECRET_BYTES:
        raise ConfigError(f"JWT_SECRET must be at least {MIN_SECRET_BYTES} bytes, got {size}")


def _webhooks(env: Mapping[str, str]) -> dict[str, str | None]:
    """``WEBHOOK_URL`` and ``WEBHOOK_SECRET`` (SPEC sections 6 and 10): a URL needs a secret."""
    url = env.get("WEBHOOK_URL", "").strip() or None
    secret = env.get("WEBHOOK_SECRET", "").strip() or None
    if url is not None and not url.startswith(("http://", "https://")):
        raise ConfigError(f"WEBHOOK_URL must be an http:// or https:// URL, got {url!r}")
    if secret is not None:
        key = secret.removeprefix(WEBHOOK_SECRET_PREFIX)
        try:
            decoded = base64.b64decode(key + "=" * (-len(key) % 4), validate=True)
        except (binascii.Error, ValueError):
            decoded = b""
        if not decoded:
            # The value is a secret: the message does not repeat it.
            raise ConfigError("WEBHOOK_SECRET must be a Standard Webhooks secret (whsec_ + base64 of the key)")
    if url is not None and secret is None:
        raise ConfigError("WEBHOOK_SECRET is required when WEBHOOK_URL is set (a Standard Webhooks secret, whsec_...)")
    return {"webhook_url": url, "webhook_secret": secret}


def _prefix(env: Mapping[str, str]) -> str:
    raw = env.get("REDIS_PREFIX", "sig").strip() or "sig"
    if not raw.replace("_", "").replace("-", "").isalnum() or len(raw) > 40:
        raise ConfigError(f"REDIS_PREFIX must be letters, digits, - or _ (at most 40), got {raw!r}")
    return raw


def _dev_secret(data_dir: Path | None) -> str:
    """Return the development secret kept in ``data_dir``, creating it on first use."""
    if data_dir is None:
        return secrets.token_urlsafe(32)
    path = data_dir / DEV_SECRET_FILENAME
    try:
        existing = path.read_text().strip()
    except FileNotFoundError:
        existing = ""
    if len(existing.encode()) >= MIN_SECRET_BYTES:
        return existing
    secret = secrets.token_urlsafe(32)
    path.write_text(secret + "\n")
    path.chmod(0o600)
    return secret


def read_environment(base_dir: Path) -> dict[str, str]:
    """Merge ``base_dir/.env`` with the process environment (the process wins)."""
    merged = {k: v for k, v in dotenv_values(base_dir / ".env").items() if v is not None}
    merged.update(os.environ)
    return merged
