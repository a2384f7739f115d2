"""
Runs on Django's Tasks framework: `SCHEDULER_APP["EXECUTION"] = "tasks"`.

The scheduler claims a run and, in the same transaction, records it as queued and
enqueues `run_job` on the configured task backend. With django-tasks-db the task is
a row written in that transaction, so a run is dispatched exactly when its claim
commits, once. Workers (`manage.py db_worker`, on any number of machines) then run
it: each locks the job's `JobRecord` row first, so workers starting the same job
take turns, and a run that would exceed the job's `max_instances` anywhere, or that
is past its misfire grace time, is recorded as such instead of started.

The execution record (`DjangoJobExecution`) follows each run: queued → running →
success or error, written by whichever worker runs it. A worker killed mid-run
leaves its record running; the active scheduler marks such records lost after
LOST_RUN_TIMEOUT (`JobStore.mark_lost_runs`).

`django.tasks` is Django's own on Django 6; on Django 5.2 the `django-tasks`
backport provides the same API.
"""

from __future__ import annotations

import logging
import time
import traceback
from datetime import datetime, timedelta
from typing import Any

from apscheduler.util import ref_to_obj
from django.db import close_old_connections, transaction
from django.utils import timezone
from django_apscheduler.models import DjangoJob, DjangoJobExecution

from scheduler_app import binding, outcomes, services
from scheduler_app.conf import app_settings
from scheduler_app.models import EXECUTION_QUEUED, ExecutionRecord, JobRecord
from scheduler_app.state import load_state

try:
    from django.tasks import task
except ImportError:  # Django 5.2: the backport
    from django_tasks import task

logger = logging.getLogger(__name__)


@task(backend=app_settings.TASK_BACKEND)
def run_job(job_id: str, run_time: str) -> str:
    """Run one claimed run of a job in a task worker; returns the recorded outcome."""
    scheduled_for = datetime.fromisoformat(run_time)
    close_old_connections()
    started = _start(job_id, scheduled_for)
    if started is None:
        return "not started"
    func, args, kwargs = started
    began = time.monotonic()
    try:
        func(*args, **kwargs)
    except Exception as error:
        _finish(job_id, scheduled_for, began, DjangoJobExecution.ERROR,
                exception=str(error)[:1000] or type(error).__name__,
                traceback=traceback.format_exc())
        raise
    _finish(job_id, scheduled_for, began, DjangoJobExecution.SUCCESS)
    return "success"


def enqueue_run(job_id: str, run_time: datetime) -> None:
    """Dispatch a claimed run to the task backend (inside the claiming transaction)."""
    run_job.enqueue(job_id=job_id, run_time=run_time.isoformat())


def _start(job_id: str, run_time: datetime) -> tuple[Any, list[Any], dict[str, Any]] | None:
    """Mark the run running if it may start; None (with the reason recorded) if not."""
    with transaction.atomic():
        execution = (
            DjangoJobExecution.objects.select_for_update()
            .filter(job_id=job_id, run_time=run_time)
            .first()
        )
        if execution is None or execution.status != EXECUTION_QUEUED:
            return None  # already handled (lost, or the job was deleted)
        # Workers starting runs of one job take turns here, so the count of running
        # instances below cannot change under us.
        JobRecord.objects.select_for_update().filter(job_id=job_id).first()
        state = load_state(DjangoJob.objects.get(id=job_id).job_state)
        records = ExecutionRecord.objects.filter(execution=execution)
        cause, run_kwargs = records.values_list("cause", "kwargs").first() or (None, None)
        refusal = _refusal(
            job_id, run_time, state, backfill=cause == ExecutionRecord.Cause.BACKFILL
        )
        if refusal is None:
            try:
                func = ref_to_obj(state["func"])
            except Exception as error:  # an import can fail with any error
                refusal = (DjangoJobExecution.ERROR, f"Not run: cannot import {state['func']!r}: "
                           f"{error}"[:1000])
        if refusal is not None:
            execution.status, execution.exception = refusal
            execution.finished = timezone.now().timestamp()
            execution.save()
            outcomes.record_outcomes(execution_ids=[execution.id])
            return None
        execution.status = DjangoJobExecution.SENT
        execution.save(update_fields=["status"])
        records.update(started_at=timezone.now())
    kwargs = binding.run_kwargs(func, state["kwargs"], run_kwargs=run_kwargs,
                                scheduled_time=run_time)
    return func, list(state["args"]), kwargs


def _refusal(
    job_id: str, run_time: datetime, state: dict[str, Any], *, backfill: bool
) -> tuple[str, str] | None:
    grace = state.get("misfire_grace_time")
    late = timezone.now() - run_time
    # A backfilled run is late by design: its misfire grace time does not apply.
    if grace is not None and not backfill and late > timedelta(seconds=grace):
        return DjangoJobExecution.MISSED, f"Run time of job {job_id!r} was missed by {late}."
    running = DjangoJobExecution.objects.filter(
        job_id=job_id, status=DjangoJobExecution.SENT
    ).count()
    if running >= state["max_instances"]:
        return (
            DjangoJobExecution.MAX_INSTANCES,
            f"Execution of job {job_id!r} skipped: {running} instance(s) already running.",
        )
    return None


def _finish(job_id: str, run_time: datetime, began: float, status: str, **details: str) -> None:
    # One transaction: the failure that pauses the job and the pause commit together.
    with transaction.atomic():
        execution = DjangoJobExecution.objects.filter(job_id=job_id, run_time=run_time)
        execution.update(
            status=status,
            finished=timezone.now().timestamp(),
            duration=round(time.monotonic() - began, 2),
            **details,
        )
        outcomes.record_outcomes(execution_ids=execution.values_list("id", flat=True))
        services.record_run_outcome(
            job_id=job_id, failed=status == DjangoJobExecution.ERROR
        )
