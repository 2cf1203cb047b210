"""What ASGI does not tell an application about its websocket's connection (issue 11).

ASGI has no backpressure and no write-buffer size: daphne writes every ``websocket.send``
straight into Twisted's write buffer (it never waits), so a client that stops reading makes
that buffer grow without limit; uvicorn's ``send`` waits while its asyncio transport is
paused, which would stall whoever writes (a relay, a whole room's broadcast). This module is
the one place that reaches past ASGI into the server: from the ``send`` callable the server
gave the application it finds that connection's transport, and answers how many bytes wait in
the server's write buffer, whether a ``send`` may wait now, and aborts the connection.

It relies on (``signaling/tests/e2e/test_server_transports.py`` fails when a new daphne,
Twisted or uvicorn changes any of it):

- daphne: the application's ``send`` is ``functools.partial(Server.handle_reply, protocol)``
  (``daphne.server.Server.create_application``), ``handle_reply`` never awaits, and
  ``protocol.transport`` is a Twisted ``FileDescriptor`` whose unsent bytes are
  ``len(dataBuffer) - offset + _tempDataLen`` (what its own ``_isSendBufferFull`` counts);
  ``abortConnection()`` is Twisted's public ``ITCPTransport`` API. Where
  :mod:`signaling.daphne_frames` is installed (daphne's sources checked), a text frame is
  written by its :func:`~signaling.daphne_frames.text_writer`: ``handle_reply`` as a plain call.
- uvicorn (every ``--ws`` implementation): ``send`` is a bound method of the connection's
  protocol, whose ``transport`` attribute is the asyncio (or uvloop) transport; from there
  only public asyncio API (``get_write_buffer_size``, ``get_write_buffer_limits``, ``abort``).

Any other server gets :class:`UnknownTransport`: sends may wait (so they go through the
connection's drain task), nothing is known about its buffer and nothing can be aborted.
Never imports daphne, Twisted or uvicorn at module level (each is optional at run time).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any, Protocol

logger = logging.getLogger(__name__)


class ServerTransport(Protocol):
    """One websocket connection's transport as the ASGI server holds it."""

    kind: str
    # Writes one text frame now, as ``await send({"type": "websocket.send", "text": ...})``
    # would, without the coroutine; None where the server offers no such call.
    write_text: Callable[[str], None] | None

    def buffered_bytes(self) -> int:
        """Bytes written by the application that the server has not yet handed to the kernel."""
        ...

    def send_may_wait(self) -> bool:
        """True when an ASGI ``send`` could wait now for the peer to read."""
        ...

    def abort(self) -> bool:
        """Drop the connection at once, discarding what waits for the peer; False if it cannot."""
        ...


class DaphneTransport:
    """daphne: Twisted's write buffer of the connection; sends never wait."""

    kind = "daphne"
    __slots__ = ("_transport", "write_text")

    def __init__(self, transport: Any, write_text: Callable[[str], None] | None = None) -> None:
        self._transport = transport
        self.write_text = write_text

    def buffered_bytes(self) -> int:
        transport = self._transport
        # twisted.internet.abstract.FileDescriptor: dataBuffer[offset:] is being written,
        # _tempDataBuffer (_tempDataLen bytes) waits to be joined onto it.
        return len(transport.dataBuffer) - transport.offset + transport._tempDataLen

    def send_may_wait(self) -> bool:
        return False

    def abort(self) -> bool:
        self._transport.abortConnection()
        return True


class AsyncioTransport:
    """uvicorn: the connection's asyncio transport; a send waits while it is paused."""

    kind = "asyncio"
    write_text = None
    __slots__ = ("_transport",)

    def __init__(self, transport: Any) -> None:  # asyncio.WriteTransport, or a uvloop one
        self._transport = transport

    def buffered_bytes(self) -> int:
        return self._transport.get_write_buffer_size()

    def send_may_wait(self) -> bool:
        # Paused above the high-water mark, resumed at the low one: above the low mark the
        # protocol may still be paused, so a send may wait.
        transport = self._transport
        return transport.get_write_buffer_size() > transport.get_write_buffer_limits()[0]

    def abort(self) -> bool:
        self._transport.abort()
        return True


class UnknownTransport:
    """An ASGI server this module does not know: assume sends wait, know nothing else."""

    kind = "unknown"
    write_text = None
    __slots__ = ()

    def buffered_bytes(self) -> int:
        return 0

    def send_may_wait(self) -> bool:
        return True

    def abort(self) -> bool:
        return False


_warned_unknown = False
_ASYNCIO_TRANSPORT_API = ("get_write_buffer_size", "get_write_buffer_limits", "abort")


def transport_of(send: Any) -> ServerTransport:
    """The transport behind the ASGI ``send`` callable of one websocket connection."""
    if isinstance(send, functools.partial):
        daphne = _daphne_transport(send)
        if daphne is not None:
            return daphne
    transport = getattr(getattr(send, "__self__", None), "transport", None)
    # Duck-typed: uvloop's transports have asyncio's API without subclassing asyncio.Transport.
    if all(callable(getattr(transport, name, None)) for name in _ASYNCIO_TRANSPORT_API):
        return AsyncioTransport(transport)
    global _warned_unknown
    if not _warned_unknown:
        _warned_unknown = True
        logger.warning(
            "cannot see this ASGI server's websocket write buffer (send is %r): a client that "
            "stops reading is bounded by the server alone (see signaling/consumers/server_transports.py)",
            send,
        )
    return UnknownTransport()


def _daphne_transport(send: functools.partial[Any]) -> DaphneTransport | None:
    try:
        from daphne.server import Server
        from twisted.internet.abstract import FileDescriptor
    except ImportError:
        return None
    if getattr(send.func, "__func__", None) is not Server.handle_reply or len(send.args) != 1:
        return None
    protocol = send.args[0]
    transport = getattr(protocol, "transport", None)
    if not isinstance(transport, FileDescriptor):
        return None
    from signaling import daphne_frames

    server = getattr(send.func, "__self__", None)
    if daphne_frames.is_installed() and server is not None:
        return DaphneTransport(transport, daphne_frames.text_writer(server, protocol))
    return DaphneTransport(transport)
