"""Twisted's asyncio reactor with one write per connection per loop turn (daphne's I/O path).

Stock Twisted (``abstract.FileDescriptor.write`` -> ``startWriting`` -> the reactor's
``addWriter``) registers the socket with the event loop on every write (an ``epoll_ctl``),
waits a loop turn for it to be writable, sends, and unregisters it again (another
``epoll_ctl``): three syscalls and a loop turn per delivered frame. :class:`CoalescingReactor`
queues the writer instead and, once per loop turn, calls its ``doWrite`` directly: one
``send`` of everything the connection queued in that turn. Only when the kernel takes less
than all of it is the socket registered the stock way, so slow readers and back-pressure
(``bufferSize``, producers) behave as before.

It also calls ``_readOrWrite`` from the loop directly instead of through
``twisted.python.log.callWithLogger``, which computed the descriptor's ``logPrefix()`` and
pushed a log context (a dict copy) on every read: 5-7 % of daphne's CPU per relay. What
changes is only the ``system`` field of legacy Twisted log events emitted during a read or a
write (``-`` instead of the protocol's prefix); an exception escaping ``_readOrWrite`` is
still logged and swallowed, as ``callWithLogger`` did.

This is the one module that relies on Twisted internals: the attributes
``_asyncioEventloop``, ``_readers``, ``_writers``, ``_continuousPolling``,
``_unregisterFDInAsyncio`` and ``_readOrWrite`` of
``AsyncioSelectorReactor``, checked by :func:`missing_internals` and by
``signaling/tests/integration/test_server_internals.py`` for :data:`TESTED_TWISTED`.
"""

from __future__ import annotations

import asyncio
import errno
from typing import Any

import twisted
from twisted.internet.asyncioreactor import AsyncioSelectorReactor
from twisted.python import log

# The Twisted release this module was written and tested against (requirements.txt pins it
# through daphne); the test fails when the installed one differs, so the internals get
# looked at again.
TESTED_TWISTED = "26.10.0"
REACTOR_INTERNALS = (
    "_asyncioEventloop",
    "_readers",
    "_writers",
    "_continuousPolling",
    "_unregisterFDInAsyncio",
    "_readOrWrite",
)


def missing_internals() -> list[str]:
    """The reactor internals this module uses that the installed Twisted lacks (empty: fine)."""
    probe = AsyncioSelectorReactor(asyncio.new_event_loop())
    try:
        missing = [name for name in REACTOR_INTERNALS if not hasattr(probe, name)]
        polling = getattr(probe, "_continuousPolling", None)
        missing += [f"_continuousPolling.{name}" for name in ("_readers", "_writers") if not hasattr(polling, name)]
        return missing
    finally:
        probe._asyncioEventloop.close()


def twisted_version() -> str:
    return str(twisted.__version__)


class CoalescingReactor(AsyncioSelectorReactor):
    """``AsyncioSelectorReactor`` whose writers are flushed once per loop turn (module docstring)."""

    def __init__(self, eventloop: asyncio.AbstractEventLoop | None = None) -> None:
        super().__init__(eventloop)
        self._queued: dict[Any, None] = {}  # writers to flush next turn, in order of first write
        self._flushing: Any = None  # the writer whose doWrite runs now
        self._flush_handle: asyncio.Handle | None = None

    def addReader(self, reader: Any) -> None:
        """``AsyncioSelectorReactor.addReader`` with :meth:`_io_ready` as the loop's callback."""
        if reader in self._readers or reader in self._continuousPolling._readers:
            return
        fd = reader.fileno()
        try:
            self._asyncioEventloop.add_reader(fd, self._io_ready, reader, True)
            self._readers[reader] = fd
        except OSError as e:
            self._unregisterFDInAsyncio(fd)
            if e.errno != errno.EPERM:
                raise
            self._continuousPolling.addReader(reader)  # epoll refuses e.g. regular files

    def _io_ready(self, selectable: Any, is_read: bool) -> None:
        """``callWithLogger(selectable, self._readOrWrite, ...)`` without the log context."""
        try:
            self._readOrWrite(selectable, is_read)
        except KeyboardInterrupt:
            raise
        except BaseException:
            log.err(system=_log_prefix(selectable))

    def addWriter(self, writer: Any) -> None:
        if writer in self._queued or writer in self._writers or writer in self._continuousPolling._writers:
            return
        self._queued[writer] = None
        if self._flush_handle is None:
            self._flush_handle = self._asyncioEventloop.call_soon(self._flush)

    def removeWriter(self, writer: Any) -> None:
        if writer is self._flushing:
            self._flushing = None  # doWrite sent everything (or the connection is gone)
        if writer in self._queued:
            del self._queued[writer]  # not registered with the loop yet: nothing else to undo
            return
        super().removeWriter(writer)

    def removeAll(self) -> list[Any]:
        queued = [w for w in self._queued if w not in self._writers]
        self._queued.clear()
        removed: list[Any] = super().removeAll()
        return removed + [w for w in queued if w not in removed]

    def getWriters(self) -> list[Any]:
        writers: list[Any] = super().getWriters()
        return writers + [w for w in self._queued if w not in writers]

    def _flush(self) -> None:
        """Write each queued writer's data now; register the ones the kernel did not drain."""
        self._flush_handle = None
        queued, self._queued = self._queued, {}
        for writer in queued:
            if writer in self._writers:
                continue  # registered the stock way meanwhile: the loop calls it when writable
            self._flushing = writer
            self._io_ready(writer, False)
            if self._flushing is writer:  # data left over: wait for writability, as stock Twisted
                self._flushing = None
                self._queued.pop(writer, None)
                AsyncioSelectorReactor.addWriter(self, writer)
        self._flushing = None


def _log_prefix(selectable: Any) -> str:
    try:
        return str(selectable.logPrefix())
    except KeyboardInterrupt:
        raise
    except BaseException:
        return "(buggy logPrefix method)"


def install(loop: asyncio.AbstractEventLoop) -> CoalescingReactor:
    """Install a :class:`CoalescingReactor` on ``loop`` as ``twisted.internet.reactor``."""
    from twisted.internet.main import installReactor

    reactor = CoalescingReactor(loop)
    installReactor(reactor)
    return reactor
