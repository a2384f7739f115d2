"""Runs on Django's Tasks framework, executed by real django-tasks-db workers."""

from __future__ import annotations

import os
import signal
import time
from datetime import timedelta

import pytest
from django.db.models import Count
from django_apscheduler.models import DjangoJobExecution

from scheduler_app import selectors, services
from scheduler_app.models import EXECUTION_LOST, EXECUTION_QUEUED
from tests.conftest import edit_stored_job, wait_for
from tests.testapp.models import ProbeRun

pytestmark = [pytest.mark.slow, pytest.mark.postgres_only]

TASKS_MODE = {"TEST_SCHEDULER_EXECUTION": "tasks"}
EVERY_SECOND = {"trigger": "cron", "trigger_args": {"second": "*"}}
UNFINISHED = (EXECUTION_QUEUED, DjangoJobExecution.SENT)


def change(job_id: str) -> dict[str, str]:
    return {"job_id": job_id, "actor": "t", "source": "cli"}


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
    # The worker recorded when each run started: after it was due, before it finished
    # (django-apscheduler stores `finished` rounded to 10 ms: allow that much).
    rounding = timedelta(milliseconds=10)
    assert all(
        e.run_time <= e.record.started_at <= selectors.ExecutionView.from_row(e).finished + rounding
        for e in executions.select_related("record")
    )
    assert ProbeRun.objects.count() == executions.count()
    assert not executions.values("run_time").annotate(n=Count("id")).filter(n__gt=1).exists()
    runners = set(ProbeRun.objects.values_list("pid", flat=True))
    assert runners <= {worker.process.pid for worker in workers}
    assert scheduler.process.pid not in runners


def test_max_instances_holds_across_workers(start_scheduler, start_worker):
    start_scheduler(**TASKS_MODE)
    start_worker()
    start_worker()
    edit_stored_job("probe.slow", kwargs={"seconds": 2.5})

    run_for("probe.slow", 8)

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
