"""REST permissions: who may create, join and delete rooms (SPEC sections 1 and 2).

Never imports ``signaling``.
"""

from __future__ import annotations

from typing import Any

from rest_framework import exceptions
from rest_framework.permissions import BasePermission
from rest_framework.request import Request

from rooms.authentication import AgentPrincipal
from rooms.errors import Forbidden
from rooms.models import Room


def is_staff(user: object) -> bool:
    """Staff: an agent token with ``"is_staff": true`` or a signed-in Django staff user."""
    return bool(getattr(user, "is_staff", False)) and bool(getattr(user, "is_authenticated", False))


class IsAgent(BasePermission):
    """Require an agent token (``Authorization: Bearer``); 401 without credentials."""

    def has_permission(self, request: Request, view: Any) -> bool:
        user = request.user
        if user is None or not getattr(user, "is_authenticated", False):
            raise exceptions.NotAuthenticated()
        if not isinstance(user, AgentPrincipal):
            raise Forbidden("This call needs an agent token (Authorization: Bearer).")
        return True


class IsCreatorOrStaff(BasePermission):
    """Require a token or staff session; only the room's creator or staff pass the object check."""

    def has_permission(self, request: Request, view: Any) -> bool:
        user = request.user
        if user is None or not getattr(user, "is_authenticated", False):
            raise exceptions.NotAuthenticated()
        return True

    def has_object_permission(self, request: Request, view: Any, obj: Room) -> bool:
        user = request.user
        if is_staff(user) or (isinstance(user, AgentPrincipal) and user.agent_id == obj.created_by):
            return True
        raise Forbidden("Only the room's creator or staff may do this.")
