from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("rooms", "0001_initial"),
    ]

    operations = [
        migrations.AddField(
            model_name="room",
            name="occupancy_version",
            field=models.BigIntegerField(
                default=0,
                db_default=0,
                editable=False,
                help_text="Presence membership version of the last occupied/empty mark (newer marks win).",
            ),
        ),
    ]
