"""A client's text cannot forge log lines: the project's logging config writes one line per
record, in the text and the JSON format alike (issue 11)."""

from __future__ import annotations

import io
import json
import logging
import logging.config
from typing import Any

import pytest
from django.conf import settings

FORGED = "2026-12-02 00:00:00,000 WARNING forged: admin logged in"


def log_through_project_config(log_format: str, message: str, *args: Any) -> str:
    """Log one WARNING with the project's formatters and filter; return what was written."""
    stream = io.StringIO()
    config = {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": settings.LOGGING["formatters"],
        "filters": settings.LOGGING["filters"],
        "handlers": {
            "probe": {
                "class": "logging.StreamHandler",
                "stream": stream,
                "formatter": log_format,
                "filters": ["context"],
            }
        },
        "loggers": {"log-lines-probe": {"handlers": ["probe"], "level": "INFO", "propagate": False}},
    }
    logging.config.dictConfig(config)
    logging.getLogger("log-lines-probe").warning(message, *args)
    return stream.getvalue()


@pytest.mark.parametrize("_case", ["text", "json"])
@pytest.mark.parametrize("agent_id", ["evil\r\n" + FORGED, "evil\n" + FORGED, "evil\u2028" + FORGED, "nul\x00x"])
def test_control_characters_in_a_logged_agent_id_stay_on_one_line(_case: str, agent_id: str) -> None:
    # when
    written = log_through_project_config(_case, "%s joined room %s", agent_id, "r_1")
    # then one line, which says what was logged (escaped)
    lines = written.splitlines()
    assert len(lines) == 1, written
    assert not any(line.startswith(FORGED) for line in lines)
    message = json.loads(lines[0])["message"] if _case == "json" else lines[0]
    assert "joined room r_1" in message
    escapes = ("\\r\\n" + FORGED, "\\n" + FORGED, "\\u2028" + FORGED, "nul\\x00x")
    assert any(escaped in message for escaped in escapes), message


def test_a_plain_message_is_logged_unchanged() -> None:
    assert log_through_project_config("text", "%s joined room %s", "agent-ok", "r_1").endswith(
        "WARNING log-lines-probe: agent-ok joined room r_1\n"
    )
