"""The ids a log line is about: ``client_id``, ``room_id`` and ``instance`` (issue #16).

Owns the context variables the service sets while it handles one socket's event (each
connection's events run in that connection's task, so the values never leak between
sockets) and the logging filter that copies them onto every record. With
``LOG_FORMAT=json`` they become fields of the JSON object; the text format ignores them.
Imports only the standard library.
"""

from __future__ import annotations

import logging
from contextvars import ContextVar

client_id_var: ContextVar[str | None] = ContextVar("client_id", default=None)
room_id_var: ContextVar[str | None] = ContextVar("room_id", default=None)
_instance_id = ""


def set_instance(instance_id: str) -> None:
    """This process's instance id, on every record from now on."""
    global _instance_id
    _instance_id = instance_id


def set_socket(client_id: str | None, room_id: str | None) -> None:
    """The socket (and its room) whose event the current task is handling."""
    client_id_var.set(client_id)
    room_id_var.set(room_id)


class ContextFilter(logging.Filter):
    """Adds ``client_id``, ``room_id`` and ``instance`` to each record (None when unknown)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "client_id"):
            record.client_id = client_id_var.get()
        if not hasattr(record, "room_id"):
            record.room_id = room_id_var.get()
        record.instance = _instance_id or None
        return True
