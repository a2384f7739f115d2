"""Trigram indexes for the job search on PostgreSQL (`selectors.job_matches`).

A search is a case-insensitive substring match of the job id and name, which no
B-tree index answers: it read every job. pg_trgm's GIN indexes on the very
expressions Django's `icontains` compares (`UPPER(column::text)`) answer it. A
database that refuses the extension (no privilege to create it) keeps searching
by a scan, and the migration goes on. Other databases are left alone.
"""

from django.db import DatabaseError, migrations, transaction

INDEXES = (
    ("django_apscheduler", "DjangoJob", "id", "scheduler_app_job_id_search"),
    ("scheduler_app", "JobRecord", "name", "scheduler_app_jobrecord_name_search"),
)


def create_search_indexes(apps, schema_editor):
    connection = schema_editor.connection
    if connection.vendor != "postgresql":
        return
    try:
        with transaction.atomic(using=connection.alias):
            schema_editor.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    except DatabaseError:
        return  # no pg_trgm here: searches scan, as before
    quote = connection.ops.quote_name
    for app_label, model_name, column, name in INDEXES:
        table = apps.get_model(app_label, model_name)._meta.db_table
        schema_editor.execute(
            f"CREATE INDEX IF NOT EXISTS {quote(name)} ON {quote(table)} "
            f"USING gin (UPPER({quote(column)}::text) gin_trgm_ops)"
        )


def drop_search_indexes(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    quote = schema_editor.connection.ops.quote_name
    for *_, name in INDEXES:
        schema_editor.execute(f"DROP INDEX IF EXISTS {quote(name)}")


class Migration(migrations.Migration):

    dependencies = [
        ('django_apscheduler', '0009_djangojobexecution_unique_job_executions'),
        ('scheduler_app', '0014_function_references'),
    ]

    operations = [
        migrations.RunPython(create_search_indexes, drop_search_indexes),
    ]
