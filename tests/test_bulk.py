"""`bulk.insert_rows`: rows written by PostgreSQL's COPY read back as `bulk_create` writes them."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.db import IntegrityError, transaction
from django_apscheduler.models import DjangoJob

from scheduler_app.bulk import insert_rows
from scheduler_app.models import JobChange, JobRecord

pytestmark = pytest.mark.django_db

# Values COPY's text format must escape: tabs, newlines, backslashes, quotes, NUL in
# bytes, text beyond Latin-1, JSON nesting; and None everywhere a column takes it.
AWKWARD = 'tab\there, line\nbreak, back\\slash, "quoted", \\N, émoji 🚀'
WHEN = datetime(2026, 3, 29, 1, 30, 0, 123456, tzinfo=UTC)


def rows_for(prefix: str) -> tuple[list[DjangoJob], list[JobRecord], list[JobChange]]:
    jobs = [
        DjangoJob(id=f"{prefix}.a", next_run_time=WHEN, job_state=b"\x00\\\x80\x05\t\n"),
        DjangoJob(id=f"{prefix}.b", next_run_time=None, job_state=b""),
    ]
    records = [
        JobRecord(job=jobs[0], version=3, name=AWKWARD, trigger_type="cron", func_ref="m:f",
                  pause_after_failures=None, paused_reason=AWKWARD, paused_at=WHEN,
                  origin="runtime", function="probe.customer_report", updated_at=WHEN),
        JobRecord(job=jobs[1], version=1, name="plain", func_ref=None, updated_at=WHEN),
    ]
    changes = [
        JobChange(job_id=f"{prefix}.a", version=3, action="created", actor=AWKWARD,
                  source="cli", before=None, message=AWKWARD, created_at=WHEN,
                  after={"kwargs": {"text": AWKWARD, "list": [1, 2.5, None, True]},
                         "nested": {"a": {"b": "\\\"\u2028"}}}),
        JobChange(job_id=f"{prefix}.b", version=1, action="updated", actor="a",
                  source="api", before={"x": 1}, after={}, created_at=WHEN),
    ]
    return jobs, records, changes


def read_back(model: type, prefix: str, key: str) -> list[dict]:
    lookup = "job__id" if model is JobRecord else key
    rows = model.objects.filter(**{f"{lookup}__startswith": prefix}).order_by(key).values()
    return [
        {name: (value.replace(prefix, "") if isinstance(value, str) else
                bytes(value) if isinstance(value, memoryview) else value)
         for name, value in row.items() if name != "id"}
        for row in rows
    ]


def test_insert_rows_writes_what_bulk_create_writes():
    for prefix, insert in (("viacopy", insert_rows),
                           ("viabulk", lambda model, objects: model.objects.bulk_create(objects))):
        for model, objects in zip((DjangoJob, JobRecord, JobChange), rows_for(prefix),
                                  strict=True):
            insert(model, objects)

    for model, key in ((DjangoJob, "id"), (JobRecord, "job_id"), (JobChange, "job_id")):
        copied = read_back(model, "viacopy", key)
        assert copied == read_back(model, "viabulk", key)
        assert len(copied) == 2
    assert JobRecord.objects.get(job_id="viacopy.a").name == AWKWARD


def test_insert_rows_of_a_taken_id_raises_integrity_error_and_writes_nothing():
    insert_rows(DjangoJob, rows_for("taken")[0][:1])
    with pytest.raises(IntegrityError), transaction.atomic():
        insert_rows(DjangoJob, [DjangoJob(id="fresh.one", job_state=b"x"),
                                *rows_for("taken")[0]])

    assert list(DjangoJob.objects.values_list("id", flat=True)) == ["taken.a"]
