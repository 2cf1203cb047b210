"""daphne's per-connection application queue, without ``asyncio.Queue``'s 3 KB (memory per socket).

daphne's ``Server.create_application`` gives every connection an ``asyncio.Queue`` for the
ASGI ``receive``: three deques and an ``Event`` (another deque), about 3 KB per idle socket,
of which daphne uses ``put_nowait`` and the application ``get``. :func:`install` replaces
``create_application`` by the same code with an :class:`AppQueue`: unbounded, FIFO, FIFO
among waiting getters, a cancelled getter passes its wake-up on, as ``asyncio.Queue``.

Relies on daphne's ``Server.create_application`` being the one of :data:`TESTED_DAPHNE`
(its source hash is checked here, at install, and by
``signaling/tests/integration/test_server_internals.py``): on another release nothing is
replaced and daphne keeps its own queue.
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
from functools import partial
from typing import Any

TESTED_DAPHNE = "4.2.3"
# sha256 of inspect.getsource(daphne.server.Server.create_application) in TESTED_DAPHNE.
CREATE_APPLICATION_SHA256 = "f1e300b4ecf636c85e1a66250e32af2ebb67728f01919678d43e80c794a79a87"


class AppQueue:
    """The part of ``asyncio.Queue`` that daphne and ASGI applications use, in 2 slots."""

    __slots__ = ("_getters", "_items")

    def __init__(self) -> None:
        self._items: list[Any] = []
        self._getters: list[asyncio.Future[None]] | None = None

    def put_nowait(self, item: Any) -> None:
        self._items.append(item)
        self._wake_next()

    def _wake_next(self) -> None:
        getters = self._getters
        while getters:
            getter = getters.pop(0)
            if not getter.done():
                getter.set_result(None)
                return

    async def get(self) -> Any:
        items = self._items
        while not items:
            getter = asyncio.get_running_loop().create_future()
            if self._getters is None:
                self._getters = []
            self._getters.append(getter)
            try:
                await getter
            except BaseException:
                getter.cancel()
                if getter in self._getters:
                    self._getters.remove(getter)
                elif items:  # woken, then cancelled: the next getter takes the item
                    self._wake_next()
                raise
        return items.pop(0)

    def qsize(self) -> int:
        return len(self._items)

    def empty(self) -> bool:
        return not self._items


def is_tested_daphne() -> bool:
    """True when daphne's ``create_application`` is the source this module reproduces."""
    from daphne.server import Server

    source = inspect.getsource(Server.create_application)
    return hashlib.sha256(source.encode()).hexdigest() == CREATE_APPLICATION_SHA256


def install() -> bool:
    """Give daphne's ``Server`` the :class:`AppQueue` variant; False (nothing done) elsewhere."""
    from daphne.server import Server

    if not is_tested_daphne():
        return False

    def create_application(self: Any, protocol: Any, scope: dict[str, Any]) -> AppQueue | None:
        # daphne 4.2.3's Server.create_application, with AppQueue for asyncio.Queue.
        assert "application_instance" not in self.connections[protocol]
        input_queue = AppQueue()
        scope.setdefault("asgi", {"version": "3.0"})
        application_instance = self.application(
            scope=scope,
            receive=input_queue.get,
            send=partial(self.handle_reply, protocol),
        )
        if protocol not in self.connections:
            return None
        self.connections[protocol]["application_instance"] = asyncio.ensure_future(
            application_instance,
            loop=asyncio.get_event_loop(),
        )
        return input_queue

    Server.create_application = create_application
    return True
