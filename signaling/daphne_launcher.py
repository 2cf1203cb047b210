"""Run daphne on uvloop: ``python -m signaling.daphne_launcher ARGS``.

ARGS are daphne's own command line (``-b HOST -p PORT --proxy-headers APP``, as the ``daphne``
binary takes them); ``manage.py serve`` execs this module instead of the binary. Before
daphne is imported (``daphne.server`` installs Twisted's asyncio reactor at import time and
keeps one that is installed already), it installs uvloop's event loop policy and Twisted's
asyncio reactor on a uvloop loop. Everything else is daphne's: its CLI parses the options,
its ``Server`` runs, Twisted handles SIGINT/SIGTERM.
"""

from __future__ import annotations

import asyncio
import sys


def install_loop_and_reactor() -> str:
    """Install uvloop and Twisted's asyncio reactor on it; returns which (for tests)."""
    import uvloop

    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    from twisted.internet import asyncioreactor

    asyncioreactor.install(asyncio.new_event_loop())
    return "uvloop"


def main(argv: list[str]) -> None:
    install_loop_and_reactor()
    from daphne.cli import CommandLineInterface

    CommandLineInterface().run(argv)


if __name__ == "__main__":
    main(sys.argv[1:])
