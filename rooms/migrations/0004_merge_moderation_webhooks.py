from django.db import migrations


class Migration(migrations.Migration):
    """Joins the moderation and webhook-outbox branches (both follow 0002)."""

    dependencies = [
        ("rooms", "0003_moderation"),
        ("rooms", "0003_webhook_outbox"),
    ]

    operations: list[migrations.operations.base.Operation] = []
