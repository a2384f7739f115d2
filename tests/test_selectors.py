"""Selectors: reads come from the store at call time, at a constant query cost."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django_apscheduler.models import DjangoJob, DjangoJobExecution

from scheduler_app import selectors, services
from scheduler_app.exceptions import JobNotFound
from scheduler_app.models import SchedulerLease, SchedulerProcess
from scheduler_app.registry import JobDeclaration, registry
from tests.conftest import copy_stored_job

pytestmark = pytest.mark.django_db


def add_generated_jobs(count: int) -> None:
    template = registry.get("probe.record")
    services.sync_jobs_from_code(declarations=[
        JobDeclaration(**{**template.__dict__, "id": f"generated.job_{i:03d}"})
        for i in range(count)
    ])
    for job_id in DjangoJob.objects.values_list("id", flat=True):
        DjangoJobExecution.objects.create(job_id=job_id, status=DjangoJobExecution.SUCCESS,
                                          run_time=timezone.now() - timedelta(minutes=1))


def queries_for_a_page(size: int) -> int:
    with CaptureQueriesContext(connection) as queries:
        views = selectors.job_views(selectors.job_queryset()[:size])
    assert len(views) == size
    return len(queries)


def test_a_page_of_jobs_is_one_query_whatever_its_size(synced):
    add_generated_jobs(60)

    assert queries_for_a_page(5) == queries_for_a_page(50) == 1


def test_last_execution_is_the_newest_one(synced):
    now = timezone.now()
    for minutes, status in ((30, DjangoJobExecution.SUCCESS), (5, DjangoJobExecution.ERROR)):
        DjangoJobExecution.objects.create(job_id="reports.weekly", status=status,
                                          run_time=now - timedelta(minutes=minutes),
                                          exception="boom" if minutes == 5 else None)

    last = selectors.get_job(job_id="reports.weekly").last_execution

    assert (last.status, last.exception) == ("error", "boom")


def test_last_execution_read_with_its_job_is_the_execution_as_recorded(synced):
    # The job query reads the newest run as JSON; each database renders times and
    # decimals its own way there, so compare with the run read as a row.
    run = DjangoJobExecution.objects.create(
        job_id="reports.weekly", status=DjangoJobExecution.ERROR,
        run_time=timezone.now().replace(microsecond=123456), duration="2.25",
        finished="1790000000.75", exception="boom", traceback="Traceback: line 1",
    )

    shown = selectors.get_job(job_id="reports.weekly").last_execution

    assert shown == selectors.ExecutionView.from_row(DjangoJobExecution.objects.get(id=run.id))
    assert (shown.run_time, shown.duration) == (run.run_time, 2.25)
    assert shown.finished.timestamp() == 1790000000.75


def test_last_execution_read_with_its_job_rounds_decimals_as_its_row_does(synced):
    # SQLite keeps a decimal unrounded; the run read as a row is rounded by Django's field.
    run = DjangoJobExecution.objects.create(
        job_id="reports.weekly", status=DjangoJobExecution.SUCCESS, run_time=timezone.now(),
        duration=0.006841, finished=1790000000.006841,
    )

    shown = selectors.get_job(job_id="reports.weekly").last_execution

    assert shown == selectors.ExecutionView.from_row(DjangoJobExecution.objects.get(id=run.id))
    assert shown.duration == 0.01


def test_views_of_value_rows_are_the_views_of_model_rows(synced):
    copy_stored_job("reports.weekly", "foreign.job")  # without a record
    services.pause_job(job_id="monitoring.heartbeat", actor="a", source="api")
    DjangoJobExecution.objects.create(job_id="reports.weekly", status=DjangoJobExecution.ERROR,
                                      run_time=timezone.now(), exception="boom")

    from_values = selectors.job_views_of_values(selectors.job_value_rows(ordering="-id"))

    assert from_values == selectors.job_views(selectors.job_queryset(ordering="-id"))
    assert {view.id for view in from_values} >= {"foreign.job", "reports.weekly"}


def test_a_job_stored_without_our_record_is_read_with_version_zero(synced):
    # Stored by another process through plain django-apscheduler: no JobRecord.
    copy_stored_job("reports.weekly", "foreign.job")

    job = selectors.get_job(job_id="foreign.job")

    assert (job.id, job.version, job.trigger) == ("foreign.job", 0, "cron")
    with pytest.raises(JobNotFound):
        selectors.get_job(job_id="no.such.job")


def test_filters_search_and_ordering(synced):
    services.pause_job(job_id="reports.weekly", actor="a", source="api")

    def ids(**filters):
        return [row.id for row in selectors.job_queryset(**filters)]

    assert "reports.weekly" not in ids(enabled=True)
    assert ids(enabled=False) == ["reports.weekly"]
    assert set(ids(trigger="interval")) == {
        "cache.warm", "integrations.flaky_sync", "monitoring.heartbeat"
    }
    assert ids(search="weekly report") == ["reports.weekly"]  # by name, case-insensitive
    probes = ids(search="probe.")
    assert probes == sorted(d.id for d in registry if d.id.startswith("probe."))
    assert {"probe.fail", "probe.needs", "probe.noop", "probe.record", "probe.scheduled",
            "probe.slow"} <= set(probes)
    by_next_run = ids(ordering="next_run_time")
    assert by_next_run[0] == "cache.warm" and by_next_run[-1] == "reports.weekly"
    assert ids(ordering="-next_run_time")[-1] == "reports.weekly"  # paused last either way


def test_search_finds_live_jobs_by_id_or_name_in_any_case(synced):
    copy_stored_job("probe.record", "foreign.Nightly")  # another process's: found by its id
    for job_id, name in (("customer.1", "Nightly report for ACME"),
                         ("customer.2", "Nightly report, deleted")):
        services.create_job(definition={
            "id": job_id, "function": "probe.customer_report", "name": name,
            "trigger": "interval", "trigger_args": {"hours": 1}, "kwargs": {"customer_id": 1},
        }, actor="a", source="api")
    services.delete_job(job_id="customer.2", actor="a", source="api")

    def found(text: str) -> list[str]:
        return [row.id for row in selectors.job_queryset(search=text)]

    assert found("NIGHTLY") == ["customer.1", "foreign.Nightly"]
    assert found("report for acme") == ["customer.1"]
    assert found("customer.") == ["customer.1"]
    assert found("deleted") == []


def test_unreadable_job_state_is_shown_broken_not_an_error(synced):
    DjangoJob.objects.create(id="garbage.job", job_state=b"not a pickle", next_run_time=None)

    job = selectors.get_job(job_id="garbage.job")

    assert job.broken and job.orphaned and job.trigger is None
    assert selectors.scheduler_status().jobs_broken == 1


def test_status_reports_a_fresh_heartbeat_as_running(synced):
    assert not selectors.scheduler_status().running
    SchedulerProcess.objects.create(instance="a", host="web-1", pid=41, notification_mode="poll")
    assert not selectors.scheduler_status().running  # a standby alone does not run jobs
    SchedulerProcess.objects.create(instance="b", host="web-1", pid=42, notification_mode="poll")
    SchedulerLease.objects.create(name="default", holder="b", epoch=3,
                                  expires_at=timezone.now() + timedelta(seconds=5))
    services.pause_job(job_id="reports.weekly", actor="a", source="api")

    status = selectors.scheduler_status()

    assert (status.running, status.host, status.pid) == (True, "web-1", 42)
    assert [(i.pid, i.role, i.epoch) for i in status.instances] == [
        (42, "active", 3), (41, "standby", None)
    ]
    assert status.jobs_total == len(registry) and status.jobs_paused == 1
    SchedulerLease.objects.update(expires_at=timezone.now())  # the active one died
    assert not selectors.scheduler_status().running
    assert {i.role for i in selectors.scheduler_status().instances} == {"standby"}
