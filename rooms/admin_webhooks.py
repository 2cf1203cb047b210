"""The webhook outbox in the Django admin (SPEC section 10): read-only, with "retry now".

Owns the ``WebhookEvent`` admin: a list with filters (state, type, room) and search by
``webhook-id`` or room, every field read-only (events are written by ``rooms.webhooks``
only), and one action that makes the selected pending or failed events due at once
(``rooms.webhooks.retry_now``). Never imports ``signaling``.
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from rooms import webhooks
from rooms.models import WebhookEvent


@admin.register(WebhookEvent)
class WebhookEventAdmin(admin.ModelAdmin):
    """Outbox events, newest first; nothing is edited here."""

    list_display = (
        "webhook_id",
        "room",
        "seq",
        "type",
        "state",
        "attempts",
        "occurred_at",
        "next_attempt_at",
        "last_error",
    )
    list_filter = ("state", "type", ("room", admin.RelatedOnlyFieldListFilter))
    search_fields = ("webhook_id", "room__id", "room__name")
    ordering = ("-id",)
    list_select_related = ("room",)
    readonly_fields = tuple(field.name for field in WebhookEvent._meta.fields)
    actions = ("retry_selected_now",)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: WebhookEvent | None = None) -> bool:
        return False

    @admin.action(description="Retry selected events now (pending or failed)")
    def retry_selected_now(self, request: HttpRequest, queryset: QuerySet[WebhookEvent]) -> None:
        """Make the selected undelivered events due now; a failed one gets one more attempt
        (delivered after its room's later events, which did not wait for it)."""
        count = webhooks.retry_now(list(queryset.values_list("pk", flat=True)))
        self.message_user(request, f"{count} event(s) will be retried now.", messages.SUCCESS)
