"""The ids a log line is about: ``client_id``, ``room_id`` and ``instance`` (issue #16).

Owns the context variables the service sets while it handles one socket's event (each
connection's events run in that connection's task, so the values never leak between
sockets) and the logging filter that copies them onto every record. With
``LOG_FORMAT=json`` they become fields of the JSON object; the text format ignores them.
The filter also escapes line breaks and other control characters in the message, so that a
client's text (an ``agentId`` with CR/LF, a room name) cannot forge log lines (issue 11).
Imports only the standard library.
"""

from __future__ import annotations

import logging
import re
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


# C0 controls but TAB, DEL, C1's NEL and the Unicode line / paragraph separators: what a
# terminal, journald or a log shipper may take for the end of a line.
_CONTROL = re.compile("[\x00-\x08\x0a-\x1f\x7f\x85\u2028\u2029]")


_NAMED_ESCAPES = {"\n": "\\n", "\r": "\\r"}


def _escape_control(match: re.Match[str]) -> str:
    char = match.group()
    named = _NAMED_ESCAPES.get(char)
    if named is not None:
        return named
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def escape_controls(text: str) -> str:
    """``text`` with line breaks and control characters written as escapes (one line)."""
    return _CONTROL.sub(_escape_control, text)


class ContextFilter(logging.Filter):
    """Adds ``client_id``, ``room_id`` and ``instance`` to each record (None when unknown),
    and makes the message one line (control characters escaped)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if _CONTROL.search(message) is not None:
            record.msg, record.args = escape_controls(message), None
        if not hasattr(record, "client_id"):
            record.client_id = client_id_var.get()
        if not hasattr(record, "room_id"):
            record.room_id = room_id_var.get()
        record.instance = _instance_id or None
        return True
