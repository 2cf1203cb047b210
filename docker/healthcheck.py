"""The container's HEALTHCHECK: exit 0 when ``GET /healthz`` on this container answers 200.

Reads only ``PORT`` (default 8080), with the standard library: the image has no curl.
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request

TIMEOUT_S = 3


def main() -> int:
    """Return 0 when the local server is healthy, 1 otherwise (with the reason on stderr)."""
    url = f"http://127.0.0.1:{os.environ.get('PORT', '8080')}/healthz"
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response:
            return 0 if response.status == 200 else 1
    except (OSError, urllib.error.URLError) as exc:
        print(f"unhealthy: {url}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
