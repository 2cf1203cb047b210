"""``manage.py mint_token AGENT_ID [--ttl SECONDS] [--staff]``: print an agent token.

For operators and local development: the token is shaped like agent-link's
(``agentId``, ``iat``, ``exp``; ``is_staff`` with ``--staff``), signed with ``JWT_SECRET``.
"""

from __future__ import annotations

from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from rooms.tokens import AGENT_ID_MAX_CHARS, mint_agent_token


class Command(BaseCommand):
    """Print a signed agent token on stdout."""

    help = "Print an agent token (HS256 JWT signed with JWT_SECRET) for AGENT_ID."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("agent_id", metavar="AGENT_ID", help="agentId claim (1-128 characters)")
        parser.add_argument("--ttl", type=int, default=3600, help="lifetime in seconds (default 3600)")
        parser.add_argument("--staff", action="store_true", help='add "is_staff": true')

    def handle(self, *args: Any, **options: Any) -> None:
        agent_id: str = options["agent_id"]
        if not 1 <= len(agent_id) <= AGENT_ID_MAX_CHARS:
            raise CommandError(f"AGENT_ID must be 1-{AGENT_ID_MAX_CHARS} characters")
        if options["ttl"] < 1:
            raise CommandError("--ttl must be a positive number of seconds")
        self.stdout.write(mint_agent_token(agent_id, ttl_s=options["ttl"], is_staff=options["staff"]))
