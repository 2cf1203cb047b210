"""The cyclic garbage collector tuned for a server that holds thousands of sockets (issue #12).

Owns the collector's settings of a serving process; :func:`tune_collector` runs once, at the
end of ``signaling_project.asgi`` (so under daphne, uvicorn or any ASGI server), after Django,
the REST framework and the signaling service are imported:

1. ``gc.freeze()``: everything imported so far (modules, classes, functions, settings: a few
   hundred thousand objects that live as long as the process) moves to the permanent
   generation, which no collection traverses again.
2. ``gc.set_threshold(10_000, 10, 10)`` instead of ``(700, 10, 10)``: each socket keeps a few
   hundred container objects (protocol, transport, session, queues, timers) for the life of
   its call. With the default threshold, a burst of connects ran a young collection every
   ~700 allocations, each survivor was traversed again in the middle generation, and every
   few hundred sockets a full collection walked everything alive: 280 ms a time at 5,000
   sockets, long enough for the overload check to refuse connects. Collection took about a
   quarter of daphne's CPU in the ``connect`` benchmark (5,000 connects+joins); with these
   settings about 8 %, and no full collection during the burst (docs/benchmarks.md, "Runs K").

Reference cycles are still collected, only in larger batches: garbage that only the collector
frees waits for at most 10,000 allocations instead of 700.
"""

from __future__ import annotations

import gc

# (young, middle, old): see the module docstring; CPython's defaults are (700, 10, 10).
THRESHOLDS = (10_000, 10, 10)


def tune_collector() -> None:
    """Freeze what the process has loaded and raise the young generation's threshold."""
    gc.collect()  # what startup left as garbage is freed, not frozen
    gc.freeze()
    gc.set_threshold(*THRESHOLDS)
