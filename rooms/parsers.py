"""The REST API's JSON body parser (SPEC section 2: every 4xx under /api/ is JSON with a code).

Owns one thing: DRF's ``JSONParser`` made safe for hostile bodies. A body nested deeper than
the interpreter's recursion limit (``[[[[...]]]]`` 50,000 deep) makes ``json`` raise
``RecursionError``, which DRF does not catch (a 500 with a traceback); here it is a
``ParseError`` (400 ``parse_error``) like any other malformed body. Never imports ``signaling``.
"""

from __future__ import annotations

from typing import Any

from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser


class SafeJSONParser(JSONParser):
    """``JSONParser`` whose only difference: too deep a body is a 400, not a 500."""

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError as exc:
            raise ParseError("JSON parse error - the body is nested too deeply") from exc
