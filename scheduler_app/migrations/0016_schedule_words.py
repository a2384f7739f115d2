import pickle

from django.db import migrations, models

# Records updated per statement.
CHUNK = 500


def copy_schedule_words(apps, schema_editor):
    """Fill `schedule` from each stored state, read once here, so that a scrape of the
    metrics never has to read them all. Jobs with another app's trigger, or whose
    state cannot be read, are left None: readers read those states.

    The words come from the app's own `state.record_mirror`, which every writer uses,
    so that stored words are exactly what a writer would have stored.
    """
    from scheduler_app.state import record_mirror

    DjangoJob = apps.get_model("django_apscheduler", "DjangoJob")
    JobRecord = apps.get_model("scheduler_app", "JobRecord")
    job_ids_by_words = {}
    for job_id, job_state in DjangoJob.objects.values_list("id", "job_state").iterator(
        chunk_size=2000
    ):
        try:
            state = pickle.loads(bytes(job_state))
            words = record_mirror(state)["schedule"]
        except Exception:  # a corrupt or foreign pickle can raise anything
            continue
        if words is not None:
            job_ids_by_words.setdefault(words, []).append(job_id)
    for words, job_ids in job_ids_by_words.items():
        for start in range(0, len(job_ids), CHUNK):
            JobRecord.objects.filter(job_id__in=job_ids[start:start + CHUNK]).update(
                schedule=words
            )


class Migration(migrations.Migration):

    dependencies = [
        ("scheduler_app", "0015_search_indexes"),
    ]

    operations = [
        migrations.AddField(
            model_name="jobrecord",
            name="schedule",
            field=models.TextField(blank=True, null=True),
        ),
        migrations.RunPython(copy_schedule_words, migrations.RunPython.noop),
    ]
