"""Run daphne on uvloop with the write-coalescing reactor: ``python -m signaling.daphne_launcher ARGS``.

ARGS are daphne's own command line (``-b HOST -p PORT --proxy-headers APP``, as the ``daphne``
binary takes them); ``manage.py serve`` execs this module instead of the binary. Before
daphne is imported (``daphne.server`` installs Twisted's asyncio reactor at import time and
keeps one that is installed already), it installs uvloop's event loop policy and a
:class:`signaling.twisted_writes.CoalescingReactor` on a uvloop loop. Everything else is
daphne's: its CLI parses the options, its ``Server`` runs, Twisted handles SIGINT/SIGTERM.
When the installed Twisted lacks an internal the reactor relies on, daphne runs on its stock
reactor (still on uvloop) and a warning says so. daphne's per-connection application queue
is replaced by :class:`signaling.daphne_app_queue.AppQueue` (3 KB less per socket); whole
websocket text frames are read and written in one step each (:mod:`signaling.daphne_frames`);
and :mod:`signaling.daphne_connections` trims what each socket keeps (autobahn's option
copies, the upgraded HTTP request). Each only where daphne and autobahn are the tested
releases, else left alone with a warning.
"""

from __future__ import annotations

import asyncio
import logging
import sys

logger = logging.getLogger(__name__)


def install_loop_and_reactor() -> str:
    """Install uvloop and the best reactor available; returns which reactor (for the banner)."""
    import uvloop

    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    from signaling import twisted_writes

    missing = twisted_writes.missing_internals()
    loop = asyncio.new_event_loop()
    if missing:
        logging.basicConfig()
        logger.warning(
            "Twisted %s lacks %s: daphne runs on the stock reactor (no write coalescing)",
            twisted_writes.twisted_version(),
            ", ".join(missing),
        )
        from twisted.internet import asyncioreactor

        asyncioreactor.install(loop)
        return "uvloop"
    twisted_writes.install(loop)
    return "uvloop+coalescing"


def main(argv: list[str]) -> None:
    install_loop_and_reactor()
    from signaling import daphne_app_queue

    if not daphne_app_queue.install():
        logging.basicConfig()
        logger.warning("daphne is not %s: its own application queue is kept", daphne_app_queue.TESTED_DAPHNE)
    from signaling import daphne_frames

    daphne_frames.install_or_warn()
    from signaling import daphne_connections

    if not daphne_connections.install():
        logging.basicConfig()
        logger.warning(
            "%s differ from the tested releases: autobahn's per-socket option copies and the "
            "upgraded HTTP request are kept",
            ", ".join(daphne_connections.changed_internals()),
        )
    from daphne.cli import CommandLineInterface

    CommandLineInterface().run(argv)


if __name__ == "__main__":
    main(sys.argv[1:])
