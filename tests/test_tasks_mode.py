"""Runs on Django's Tasks framework, executed by real django-tasks-db workers."""

from __future__ import annotations

import os
import signal
import time
from datetime import UTC, timedelta

import pytest
from apscheduler.triggers.cron import CronTrigger
from django.db.models import Count
from django.utils import timezone
from django_apscheduler.models import DjangoJobExecution
from django_tasks_db.models import DBTaskResult

from scheduler_app import notifications, selectors, services
from scheduler_app.models import (
    EXECUTION_EXPIRED,
    EXECUTION_LOST,
    EXECUTION_QUEUED,
    JobHealth,
    JobRecord,
    RunRequest,
)
from tests.conftest import edit_stored_job, wait_for
from tests.testapp.models import ProbeRun

pytestmark = [pytest.mark.slow, pytest.mark.postgres_only]

TASKS_MODE = {"TEST_SCHEDULER_EXECUTION": "tasks"}
LOST_AFTER_2_SECONDS = {"TEST_LOST_RUN_TIMEOUT": "2"}
EVERY_SECOND = {"trigger": "cron", "trigger_args": {"second": "*"}}
UNFINISHED = (EXECUTION_QUEUED, DjangoJobExecution.SENT)
# django-apscheduler stores `finished` rounded to 10 ms.
ROUNDING = timedelta(milliseconds=10)


def change(job_id: str) -> dict[str, str]:
    return {"job_id": job_id, "actor": "t", "source": "cli"}


def outcome_of(request: RunRequest) -> DjangoJobExecution | None:
    """The run a run-now request made, once it has an outcome."""
    request.refresh_from_db()
    execution = request.execution
    if execution is None or execution.status in UNFINISHED:
        return None
    return DjangoJobExecution.objects.select_related("record").get(id=execution.id)


def run_for(job_id: str, seconds: float) -> None:
    services.reschedule_job(trigger_spec=EVERY_SECOND, **change(job_id))
    time.sleep(seconds)
    services.pause_job(**change(job_id))
    wait_for(
        lambda: not DjangoJobExecution.objects.filter(job_id=job_id, status__in=UNFINISHED)
        .exists(),
        timeout=20,
    )


def test_every_run_of_a_one_second_job_executes_once_in_a_worker(start_scheduler, start_worker):
    scheduler = start_scheduler(**TASKS_MODE)
    workers = [start_worker(), start_worker()]

    run_for("probe.record", 8)

    executions = DjangoJobExecution.objects.filter(job_id="probe.record")
    assert 7 <= executions.count() <= 10
    assert set(executions.values_list("status", flat=True)) == {DjangoJobExecution.SUCCESS}
    assert all(e.finished is not None and e.duration is not None for e in executions)
    # The worker recorded when each run started: after it was due, before it finished.
    assert all(
        e.run_time <= e.record.started_at <= selectors.ExecutionView.from_row(e).finished + ROUNDING
        for e in executions.select_related("record")
    )
    assert ProbeRun.objects.count() == executions.count()
    assert not executions.values("run_time").annotate(n=Count("id")).filter(n__gt=1).exists()
    runners = set(ProbeRun.objects.values_list("pid", flat=True))
    assert runners <= {worker.process.pid for worker in workers}
    assert scheduler.process.pid not in runners


def test_max_instances_holds_across_workers_for_a_job_stored_without_its_record(
    start_scheduler, start_worker
):
    start_scheduler(**TASKS_MODE)
    start_worker()
    start_worker()
    # As a stock job store leaves a job: no JobRecord, the row workers lock to take turns.
    JobRecord.objects.filter(job_id="probe.slow").delete()
    edit_stored_job("probe.slow", kwargs={"seconds": 2.5}, next_run_time=timezone.now(),
                    trigger=CronTrigger(second="*", timezone=UTC))
    notifications.notify_change("probe.slow")
    time.sleep(8)
    services.pause_job(**change("probe.slow"))
    wait_for(
        lambda: not DjangoJobExecution.objects.filter(job_id="probe.slow", status__in=UNFINISHED)
        .exists(),
        timeout=20,
    )

    starts = list(ProbeRun.objects.filter(job_id="probe.slow").values_list("started_at", flat=True))
    assert len(starts) >= 2
    for earlier, later in zip(starts, starts[1:], strict=False):
        assert (later - earlier).total_seconds() >= 2.5, "two runs overlapped"
    statuses = set(
        DjangoJobExecution.objects.filter(job_id="probe.slow").values_list("status", flat=True)
    )
    assert statuses == {DjangoJobExecution.SUCCESS, DjangoJobExecution.MAX_INSTANCES}


def test_run_now_takes_the_same_path(start_scheduler, start_worker):
    start_scheduler(**TASKS_MODE)
    worker = start_worker()

    request = services.request_job_run(**change("probe.record"))

    run = wait_for(lambda: ProbeRun.objects.first(), timeout=10)
    assert run.pid == worker.process.pid
    request.refresh_from_db()
    wait_for(lambda: request.execution.status == DjangoJobExecution.SUCCESS, timeout=10)


def test_run_of_a_killed_worker_is_marked_lost(start_scheduler, start_worker):
    start_scheduler(**TASKS_MODE, TEST_LOST_RUN_TIMEOUT="2")
    worker = start_worker()
    edit_stored_job("probe.slow", kwargs={"seconds": 60})
    request = services.request_job_run(**change("probe.slow"))
    wait_for(lambda: ProbeRun.objects.exists(), timeout=10)

    os.kill(worker.process.pid, signal.SIGKILL)

    request.refresh_from_db()
    wait_for(lambda: request.execution.status == EXECUTION_LOST, timeout=20)
    assert "died" in request.execution.exception


def test_a_long_run_that_heartbeats_is_not_lost_and_keeps_its_place(
    start_scheduler, start_worker
):
    start_scheduler(**TASKS_MODE, **LOST_AFTER_2_SECONDS)
    start_worker(**LOST_AFTER_2_SECONDS)
    start_worker(**LOST_AFTER_2_SECONDS)
    edit_stored_job("probe.slow", kwargs={"seconds": 6})  # max_instances 1
    long_run = services.request_job_run(**change("probe.slow"))
    wait_for(lambda: ProbeRun.objects.exists(), timeout=10)
    time.sleep(4)  # twice LOST_RUN_TIMEOUT: a run with no heartbeat would be lost by now

    second = services.request_job_run(**change("probe.slow"))

    second_run = wait_for(lambda: outcome_of(second), timeout=20)
    assert second_run.status == DjangoJobExecution.MAX_INSTANCES, second_run.exception
    long_run = wait_for(lambda: outcome_of(long_run), timeout=20)
    assert long_run.status == DjangoJobExecution.SUCCESS
    assert long_run.record.heartbeat_at > long_run.record.started_at
    assert ProbeRun.objects.count() == 1


def test_a_lost_runs_late_outcome_does_not_overwrite_lost(start_scheduler, start_worker):
    start_scheduler(**TASKS_MODE, **LOST_AFTER_2_SECONDS)
    worker = start_worker(**LOST_AFTER_2_SECONDS)
    edit_stored_job("probe.slow", kwargs={"seconds": 3})
    request = services.request_job_run(**change("probe.slow"))
    wait_for(lambda: ProbeRun.objects.exists(), timeout=10)

    # Cut off mid-run: no heartbeat, no outcome, until it is marked lost.
    os.kill(worker.process.pid, signal.SIGSTOP)
    try:
        lost = wait_for(lambda: outcome_of(request), timeout=20)
    finally:
        os.kill(worker.process.pid, signal.SIGCONT)
    assert lost.status == EXECUTION_LOST

    noted = wait_for(lambda: "reported later" in (outcome_of(request).exception or "")
                     and outcome_of(request), timeout=20)
    assert noted.status == EXECUTION_LOST
    assert noted.exception.startswith(
        "No heartbeat for 2s: the process running it probably died. Its worker reported "
        "later that it succeeded after ")
    health = JobHealth.objects.get(job_id="probe.slow")
    assert (health.runs_lost, health.runs_success) == (1, 0)


def test_a_queued_run_no_worker_starts_expires_and_a_late_worker_does_not_run_it(
    start_scheduler, start_worker
):
    start_scheduler(**TASKS_MODE, TEST_QUEUED_RUN_TIMEOUT="1")
    request = services.request_job_run(**change("probe.record"))

    expired = wait_for(lambda: outcome_of(request), timeout=20)

    assert expired.status == EXECUTION_EXPIRED
    assert expired.exception == "Expired: no worker started it within 1s of being queued."
    assert selectors.ExecutionView.from_row(expired).status == "expired"
    start_worker()
    task = wait_for(lambda: DBTaskResult.objects.finished().first(), timeout=20)
    assert task.return_value == "not started"
    assert not ProbeRun.objects.exists()


def test_backfilled_runs_wait_their_turn_in_order_beside_scheduled_runs(
    start_scheduler, start_worker
):
    start_scheduler(**TASKS_MODE)
    start_worker()
    start_worker()
    edit_stored_job("probe.slow", kwargs={"seconds": 1})  # max_instances 1
    services.reschedule_job(trigger_spec=EVERY_SECOND, **change("probe.slow"))
    second = timezone.now().replace(microsecond=0)
    outcome = services.backfill_job(start=second - timedelta(seconds=30),
                                     end=second - timedelta(seconds=28), **change("probe.slow"))
    assert len(outcome.queued) == 3
    runs = DjangoJobExecution.objects.filter(job_id="probe.slow").select_related("record")
    backfilled = runs.filter(record__cause="backfill")

    wait_for(lambda: backfilled.filter(status=DjangoJobExecution.SUCCESS).count() == 3,
             timeout=30)
    services.pause_job(**change("probe.slow"))
    wait_for(lambda: not runs.filter(status__in=UNFINISHED).exists(), timeout=20)

    starts = [run.record.started_at for run in backfilled.order_by("run_time")]
    assert starts == sorted(starts), "backfilled runs started in order of scheduled time"
    ran = sorted((run.record.started_at, selectors.ExecutionView.from_row(run).finished)
                 for run in runs.filter(status=DjangoJobExecution.SUCCESS))
    for (_, finished), (started, _) in zip(ran, ran[1:], strict=False):
        assert started >= finished - ROUNDING, "two runs overlapped"
