"""A real `runscheduler` process against the test database."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django_apscheduler.models import DjangoJob, DjangoJobExecution

from scheduler_app import selectors, services
from scheduler_app.models import RunRequest, SchedulerProcess
from tests.conftest import copy_stored_job, run_in_threads, wait_for
from tests.testapp.models import ProbeRun

pytestmark = pytest.mark.slow

EVERY_SECOND = {"trigger": "cron", "trigger_args": {"second": "*"}}


def operator(**fields: object) -> dict[str, object]:
    return {"actor": "operator", "source": "cli", **fields}


def test_run_now_is_acted_on_within_a_second(start_scheduler):
    scheduler = start_scheduler()

    request = services.request_job_run(**operator(job_id="probe.record"))
    committed = time.monotonic()

    wait_for(lambda: ProbeRun.objects.filter(job_id="probe.record").exists(), timeout=1.0)
    assert time.monotonic() - committed < 1.0
    request.refresh_from_db()
    assert request.status == RunRequest.Status.SUBMITTED
    execution = wait_for(
        lambda: DjangoJobExecution.objects.filter(
            job_id="probe.record", status=DjangoJobExecution.SUCCESS
        ).first(),
        timeout=5,
    )
    assert execution.run_time == request.run_time
    job = DjangoJob.objects.get(id="probe.record")
    assert job.next_run_time.year == 2099, "run-now must not move the schedule"
    assert scheduler.process.poll() is None


def test_reschedule_takes_effect_at_once_and_pause_stops_every_later_run(start_scheduler):
    start_scheduler()

    services.reschedule_job(trigger_spec=EVERY_SECOND, **operator(job_id="probe.record"))
    wait_for(lambda: ProbeRun.objects.filter(job_id="probe.record").count() >= 2, timeout=4)
    services.pause_job(**operator(job_id="probe.record"))
    paused_at = datetime.now(UTC)

    time.sleep(2.5)
    later_runs = ProbeRun.objects.filter(job_id="probe.record", started_at__gt=paused_at)
    assert list(later_runs) == []
    assert DjangoJob.objects.get(id="probe.record").next_run_time is None


def test_every_run_records_when_it_really_started_and_how_late(start_scheduler):
    start_scheduler()

    services.reschedule_job(trigger_spec=EVERY_SECOND, **operator(job_id="probe.record"))
    wait_for(lambda: DjangoJobExecution.objects.filter(
        job_id="probe.record", status=DjangoJobExecution.SUCCESS).count() >= 2, timeout=10)
    services.pause_job(**operator(job_id="probe.record"))

    probes = {probe.started_at for probe in ProbeRun.objects.filter(job_id="probe.record")}
    runs = [
        selectors.ExecutionView.from_row(row)
        for row in selectors.execution_queryset(job_id="probe.record", status="success")
    ]
    for run in runs:
        # Recorded just before the function was called: after the due time, before
        # the function's own first statement.
        assert run.started is not None
        assert run.run_time <= run.started <= min(p for p in probes if p >= run.started)
        assert run.lateness == round((run.started - run.run_time).total_seconds(), 3)


def test_job_whose_function_is_gone_is_kept_and_reported(start_scheduler):
    services.sync_jobs_from_code()
    copy_stored_job("probe.record", "renamed.job", func="tests.testapp.jobs:renamed_away",
                    next_run_time=datetime.now(UTC) - timedelta(seconds=1))

    scheduler = start_scheduler()

    execution = wait_for(
        lambda: DjangoJobExecution.objects.filter(job_id="renamed.job").first(), timeout=5
    )
    assert execution.status == DjangoJobExecution.ERROR
    assert "renamed_away" in execution.exception
    assert DjangoJob.objects.filter(id="renamed.job").exists()
    assert "Broken (function cannot be imported): 1 (renamed.job)" in scheduler.output
    # The loop goes on with the other jobs.
    services.request_job_run(**operator(job_id="probe.record"))
    wait_for(lambda: ProbeRun.objects.exists(), timeout=5)


def test_sigterm_lets_the_running_job_finish(start_scheduler):
    scheduler = start_scheduler()
    services.request_job_run(**operator(job_id="probe.slow"))
    wait_for(lambda: ProbeRun.objects.filter(job_id="probe.slow").exists(), timeout=5)

    assert scheduler.stop() == 0

    execution = DjangoJobExecution.objects.get(job_id="probe.slow")
    assert execution.status == DjangoJobExecution.SUCCESS
    assert SchedulerProcess.objects.get(pid=scheduler.process.pid).stopped_at is not None
    assert "Scheduler stopped." in scheduler.output


@pytest.mark.postgres_only
def test_scheduler_survives_its_connections_being_killed(start_scheduler):
    scheduler = start_scheduler()

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        assert cursor.rowcount >= 1

    services.request_job_run(**operator(job_id="probe.record"))
    wait_for(lambda: ProbeRun.objects.filter(job_id="probe.record").exists(), timeout=10)
    services.reschedule_job(trigger_spec=EVERY_SECOND, **operator(job_id="probe.record"))
    wait_for(lambda: ProbeRun.objects.filter(job_id="probe.record").count() >= 3, timeout=10)
    assert scheduler.process.poll() is None


def test_simultaneous_run_now_requests_each_end_in_a_recorded_execution(start_scheduler):
    start_scheduler()

    request_ids = run_in_threads(10, lambda i: services.request_job_run(
        **operator(job_id="probe.record", actor=f"thread-{i}")
    ).id)

    assert all(isinstance(request_id, int) for request_id in request_ids), request_ids

    def all_recorded() -> bool:
        requests = list(RunRequest.objects.filter(id__in=request_ids))
        return all(request.execution and request.execution.finished for request in requests)

    wait_for(all_recorded, timeout=10)
    outcomes = [request.execution.status for request in RunRequest.objects.all()]
    # probe.record allows one instance: a request that finds it running is recorded
    # as skipped for that reason, never lost.
    assert set(outcomes) <= {DjangoJobExecution.SUCCESS, DjangoJobExecution.MAX_INSTANCES}
    assert outcomes.count(DjangoJobExecution.SUCCESS) == ProbeRun.objects.count() >= 1


def test_a_second_scheduler_stands_by_and_says_so(start_scheduler):
    first = start_scheduler()
    second = start_scheduler(role="standby")

    roles = {i.pid: i.role for i in selectors.scheduler_status().instances}

    assert roles == {first.process.pid: "active", second.process.pid: "standby"}
    assert "Standing by" in second.output
    services.request_job_run(**operator(job_id="probe.record"))
    wait_for(lambda: ProbeRun.objects.exists(), timeout=5)
    assert ProbeRun.objects.get().pid == first.process.pid


def test_a_broken_declared_job_and_a_run_that_cannot_start_leave_the_others_running(
    start_scheduler,
):
    services.sync_jobs_from_code()
    # A declared job whose stored state this version cannot unpickle: the start-up
    # sync used to raise JobBroken and end the process.
    DjangoJob.objects.filter(id="probe.slow").update(job_state=b"\x80\x05not a pickle")
    # A due job stored with an executor this scheduler does not have: submitting it
    # raised KeyError after the claim committed and ended the loop.
    copy_stored_job("probe.noop", "no.such.executor", executor="gone",
                    next_run_time=datetime.now(UTC) - timedelta(seconds=1))

    scheduler = start_scheduler()

    execution = wait_for(
        lambda: DjangoJobExecution.objects.filter(
            job_id="no.such.executor", status=DjangoJobExecution.ERROR).first(),
        timeout=10,
    )
    assert "KeyError" in execution.exception
    assert "Broken (function cannot be imported): 1 (probe.slow)" in scheduler.output
    services.request_job_run(**operator(job_id="probe.record"))
    wait_for(lambda: ProbeRun.objects.filter(job_id="probe.record").exists(), timeout=10)
    assert scheduler.process.poll() is None
    assert selectors.get_job(job_id="probe.slow").broken
