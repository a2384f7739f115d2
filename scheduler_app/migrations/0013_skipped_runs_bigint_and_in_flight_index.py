from django.db import migrations, models

# Runs without an outcome yet are a sliver of the executions table, which grows by a
# row per run; the lost-run sweep, the metrics' running count and the max_instances
# counts look for exactly those. A partial index (PostgreSQL and SQLite) keeps those
# reads from scanning the whole history. On django-apscheduler's table, so written
# as SQL.
IN_FLIGHT_INDEX = "scheduler_app_runs_in_flight"


class Migration(migrations.Migration):

    dependencies = [
        ('django_apscheduler', '0009_djangojobexecution_unique_job_executions'),
        ('scheduler_app', '0012_execution_claimed_at'),
    ]

    operations = [
        migrations.AlterField(
            model_name='executionrecord',
            name='skipped_runs',
            field=models.PositiveBigIntegerField(default=0),
        ),
        migrations.RunSQL(
            f"CREATE INDEX {IN_FLIGHT_INDEX} ON django_apscheduler_djangojobexecution"
            " (job_id) WHERE status IN ('Sent', 'Queued')",
            f"DROP INDEX {IN_FLIGHT_INDEX}",
        ),
    ]
