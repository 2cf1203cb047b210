"""Connection options for every Redis client of the server (channel layer and presence).

Owns one policy: a command that meets a dead connection (Redis restarted, a failover, an
idle connection cut by a proxy) is retried on a fresh connection a few times with a short
backoff, instead of failing the caller. Without it, the first command on each pooled
connection after a Redis restart raises ``ConnectionError`` (seen in the reconciliation
test). Imports only redis-py.
"""

from __future__ import annotations

from typing import Any

from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

RETRIES = 3
BACKOFF_CAP_S = 0.5
BACKOFF_BASE_S = 0.05
HEALTH_CHECK_INTERVAL_S = 10


def retry_options() -> dict[str, Any]:
    """Keyword arguments for a redis-py connection (pool): retry dead connections."""
    return {
        "retry": Retry(ExponentialBackoff(cap=BACKOFF_CAP_S, base=BACKOFF_BASE_S), RETRIES),
        "retry_on_error": [RedisConnectionError, RedisTimeoutError],
        "health_check_interval": HEALTH_CHECK_INTERVAL_S,
    }


def redis_connection_options(url: str) -> dict[str, Any]:
    """A channels_redis ``hosts`` entry for ``url`` with the retry policy."""
    return {"address": url, **retry_options()}
