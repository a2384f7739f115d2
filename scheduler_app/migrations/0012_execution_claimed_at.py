from django.db import migrations, models
from django.db.models.functions import Now
from django.utils import timezone


def date_queued_runs(apps, schema_editor):
    # A run queued before the upgrade expires QUEUED_RUN_TIMEOUT after it; runs that
    # already ended keep no claim time rather than a made-up one.
    ExecutionRecord = apps.get_model("scheduler_app", "ExecutionRecord")
    ExecutionRecord.objects.filter(execution__status="Queued").update(claimed_at=Now())


class Migration(migrations.Migration):

    dependencies = [
        ('scheduler_app', '0011_runtime_jobs'),
    ]

    operations = [
        # The default is Python's (the claim's clock), not the column's: the column is
        # added empty, without rewriting the table (SQLite would copy it for a default).
        migrations.SeparateDatabaseAndState(
            database_operations=[
                migrations.AddField(
                    model_name='executionrecord',
                    name='claimed_at',
                    field=models.DateTimeField(blank=True, null=True),
                ),
            ],
            state_operations=[
                migrations.AddField(
                    model_name='executionrecord',
                    name='claimed_at',
                    field=models.DateTimeField(blank=True, default=timezone.now, null=True),
                ),
            ],
        ),
        migrations.RunPython(date_queued_runs, migrations.RunPython.noop),
    ]
