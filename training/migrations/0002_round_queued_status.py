"""Rounds get a ``queued`` status: a round is queued until one of its runs starts."""

from django.db import migrations, models


def mark_unstarted_rounds_queued(apps, schema_editor):
    """Rounds marked running whose runs never started were only ever waiting in the queue."""
    Round = apps.get_model("training", "Round")
    TrainingRun = apps.get_model("training", "TrainingRun")
    started = TrainingRun.objects.filter(round=models.OuterRef("pk"), started_at__isnull=False)
    Round.objects.filter(status="running").exclude(models.Exists(started)).update(status="queued")


class Migration(migrations.Migration):
    dependencies = [
        ("training", "0001_initial"),
    ]

    operations = [
        migrations.AlterField(
            model_name="round",
            name="status",
            field=models.CharField(
                choices=[
                    ("queued", "Queued"),
                    ("running", "Running"),
                    ("succeeded", "Succeeded"),
                    ("failed", "Failed"),
                    ("cancelled", "Cancelled"),
                ],
                db_index=True,
                default="queued",
                max_length=12,
            ),
        ),
        migrations.RunPython(mark_unstarted_rounds_queued, migrations.RunPython.noop),
    ]
