"""What the guarded patches of server internals check before they install: the sha256 of the
source of each function they stand in for or rely on (``daphne_frames``,
``daphne_connections``, ``uvicorn_ws``; each also checks the library versions)."""

from __future__ import annotations

import hashlib
import importlib
import inspect
from typing import Any


def resolve(dotted: str) -> Any:
    """``package.module.Class.attr`` (or ``package.module:Class.attr``) -> the object; the
    longest importable prefix is the module."""
    parts = dotted.replace(":", ".").split(".")
    for i in range(len(parts) - 1, 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        for attr in parts[i:]:
            obj = getattr(obj, attr)
        return obj
    raise ImportError(dotted)


def source_sha256(obj: Any) -> str:
    """The sha256 (hex) of ``obj``'s source, or of the source of the object ``obj`` names."""
    target = resolve(obj) if isinstance(obj, str) else obj
    return hashlib.sha256(inspect.getsource(target).encode()).hexdigest()
