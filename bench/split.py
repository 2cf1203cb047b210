"""Where a Python server's CPU goes, by layer: ``python -m bench.split FILE [FILE ...]``.

FILE is a py-spy ``--format raw`` profile (``python -m bench run --profile``). Each sample
is charged to the layer of its innermost Python frame (py-spy without ``--native`` charges C
code to the Python frame that called it): ``syscalls`` are the frames that are thin wrappers
of a system call (epoll, send, recv, the loop's self-pipe, epoll_ctl through ``selectors``);
``loop`` is asyncio or uvloop (uvloop is C: its epoll and callback dispatch are charged to
the Python frame that called ``run_forever``, the reactor's ``run``); ``ours`` is
``signaling/`` and ``rooms/`` plus the ``json`` module they call. ``setup`` (Django, REST,
the database threads) is the scenario's room creation and connects, not the per-message
cost, and is left out of the percentages.
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

from bench.stacks import collapsed

# (layer, substrings of the innermost frame), first match wins.
SYSCALL_FRAMES = (
    "EpollSelector.select (selectors.py",
    "untilConcludes (twisted/python/util.py",
    "Connection.doRead (twisted/internet/tcp.py",
    "_write_to_self (asyncio/selector_events.py",
    "_read_from_self (asyncio/selector_events.py",
    "(selectors.py",
    "Connection.writeSomeData (twisted/internet/tcp.py",
)
# The frames that call a C event loop's run_forever: what is charged to them is the loop.
LOOP_RUNNERS = ("AsyncioSelectorReactor.run (twisted/internet/asyncioreactor.py", "Server.run (daphne/server.py")
LAYERS = (
    ("syscalls", SYSCALL_FRAMES),
    ("loop", LOOP_RUNNERS),
    ("uvicorn", ("(signaling/uvicorn_ws.py",)),  # uvicorn's protocol, ours only by location
    ("ours", ("(signaling/", "(rooms/", "(json/")),
    ("Channels", ("(channels/", "(asgiref/")),
    ("daphne", ("(daphne/",)),
    ("autobahn", ("(autobahn/", "(txaio/")),
    ("Twisted", ("(twisted/", "(zope/")),
    ("uvicorn", ("(uvicorn/", "(websockets/", "(httptools/", "(wsproto/", "(h11/")),
    ("loop", ("(asyncio/", "(uvloop/", "run_forever", "(contextvars")),
    ("setup", ("(django/", "(rest_framework/", "(whitenoise/", "(corsheaders/", "(threading.py", "(concurrent/")),
)
ORDER = ("ours", "Channels", "daphne", "autobahn", "Twisted", "uvicorn", "loop", "syscalls", "other")


def layer_of(frame: str) -> str:
    for layer, needles in LAYERS:
        if any(needle in frame for needle in needles):
            return layer
    return "other"


def split(path: Path) -> tuple[Counter[str], int]:
    """Samples per layer (``setup`` included) and the per-message total (``setup`` excluded)."""
    counts: Counter[str] = Counter()
    for frames, weight in collapsed(path):
        counts[layer_of(frames[-1])] += weight
    return counts, sum(counts.values()) - counts["setup"]


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.split")
    parser.add_argument("files", nargs="+", type=Path)
    args = parser.parse_args()
    print("| layer | " + " | ".join(f.stem.removeprefix("profile-") for f in args.files) + " |")
    print("|---|" + "---|" * len(args.files))
    results = [split(f) for f in args.files]
    for layer in ORDER:
        cells = [f"{100 * c[layer] / total:.1f} %" if total else "-" for c, total in results]
        print(f"| {layer} | " + " | ".join(cells) + " |")
    cells = [f"{total} (+{c['setup']} setup)" for c, total in results]
    print("| samples | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
