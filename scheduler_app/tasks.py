"""
Runs on Django's Tasks framework: `SCHEDULER_APP["EXECUTION"] = "tasks"`.

The scheduler claims a run and, in the same transaction, records it as queued and
enqueues `run_job` on the configured task backend. With django-tasks-db the task is
a row written in that transaction, so a run is dispatched exactly when its claim
commits, once. Workers (`manage.py db_worker`, on any number of machines) then run
it: each locks the job's `JobRecord` row first (creating it for a job stored
without one), so workers starting the same job take turns, and a run that would
exceed the job's `max_instances` anywhere, or that is past its misfire grace time,
is recorded as such instead of started. A backfilled run is never refused for
`max_instances`: it is handed back to the scheduler's backfill queue to wait its
turn, in order of scheduled time, and a scheduled or run-now run yields the place
to the backfilled runs queued before it.

The execution record (`DjangoJobExecution`) follows each run: queued → running →
success or error, written by whichever worker runs it. While the job's function
executes, the worker's heartbeat thread keeps the run's heartbeat fresh
(`liveness`): a worker killed mid-run leaves its record running and silent, and the
active scheduler marks it lost after LOST_RUN_TIMEOUT without a heartbeat. A run
marked lost stays lost if its worker was only cut off and reports an outcome later:
the late outcome is noted in the run's message, nothing else. A queued run that no
worker starts within QUEUED_RUN_TIMEOUT of its claim expires, and a worker that
picks it up later does not run it.

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
from django.db.models import BooleanField, Count, ExpressionWrapper, Q
from django.db.models.functions import Now
from django.utils import timezone
from django_apscheduler.models import DjangoJob, DjangoJobExecution

from scheduler_app import binding, liveness, notifications, outcomes, services
from scheduler_app.conf import app_settings
from scheduler_app.models import (
    EXECUTION_EXPIRED,
    EXECUTION_QUEUED,
    ExecutionRecord,
    JobRecord,
    RunRequest,
)
from scheduler_app.state import UnreadableState, load_state, trigger_type_name

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
        with liveness.heartbeats.beating(job_id, scheduled_for):
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
    """Mark the run running if it may start; None (with its fate recorded) if not."""
    with transaction.atomic():
        execution = (
            DjangoJobExecution.objects.select_for_update()
            .filter(job_id=job_id, run_time=run_time)
            .first()
        )
        if execution is None or execution.status != EXECUTION_QUEUED:
            # Expired or lost meanwhile, or the job was deleted: nothing to run.
            logger.warning("Run of job %r at %s not started: it is %s", job_id, run_time,
                           execution.status if execution else "no longer recorded")
            return None
        record = _record_of(execution)
        if record["expired"]:
            return _not_started(execution, EXECUTION_EXPIRED,
                                liveness.expired_message(app_settings.QUEUED_RUN_TIMEOUT))
        try:
            state = load_state(DjangoJob.objects.get(id=job_id).job_state)
        except UnreadableState as error:
            return _not_started(execution, DjangoJobExecution.ERROR,
                                f"Not run: the job's stored state cannot be read: {error}")
        _take_turn(job_id, state)
        backfill = record["cause"] == ExecutionRecord.Cause.BACKFILL
        running, ahead = _places_taken(job_id, run_time)
        if backfill and running + ahead >= state["max_instances"] and _wait_for_turn(execution):
            return None
        refusal = _refusal(job_id, run_time, state, backfill=backfill, running=running,
                           ahead=ahead)
        if refusal is None:
            try:
                func = ref_to_obj(state["func"])
            except Exception as error:  # an import can fail with any error
                refusal = (DjangoJobExecution.ERROR, f"Not run: cannot import {state['func']!r}: "
                           f"{error}")
        if refusal is not None:
            return _not_started(execution, *refusal)
        execution.status = DjangoJobExecution.SENT
        execution.save(update_fields=["status"])
        ExecutionRecord.objects.filter(execution=execution).update(
            started_at=timezone.now(), heartbeat_at=Now()
        )
    kwargs = binding.run_kwargs(func, state["kwargs"], run_kwargs=record["kwargs"],
                                scheduled_time=run_time)
    return func, list(state["args"]), kwargs


def _record_of(execution: DjangoJobExecution) -> dict[str, Any]:
    """The run's cause and own arguments, and whether it waited past QUEUED_RUN_TIMEOUT
    (by the database's clock; the sweep may not have expired it yet)."""
    cutoff = Now() - timedelta(seconds=app_settings.QUEUED_RUN_TIMEOUT)
    record = (
        ExecutionRecord.objects.filter(execution=execution)
        .annotate(expired=ExpressionWrapper(Q(claimed_at__lt=cutoff), output_field=BooleanField()))
        .values("cause", "kwargs", "expired")
        .first()
    )
    return record or {"cause": None, "kwargs": None, "expired": False}


def _take_turn(job_id: str, state: dict[str, Any]) -> None:
    """Lock the job's `JobRecord` row: workers starting runs of one job take turns
    here, so the count of running instances cannot change under us.

    A job stored without one (added through a stock job store) gets it now: two
    workers creating it at once serialize on its primary key, and the second then
    waits for the first's lock.
    """
    JobRecord.objects.select_for_update().get_or_create(
        job_id=job_id,
        defaults={"name": state.get("name") or job_id,
                  "trigger_type": trigger_type_name(state.get("trigger"))},
    )


def _places_taken(job_id: str, run_time: datetime) -> tuple[int, int]:
    """The job's runs running now, and its backfilled runs queued ahead of this one
    (scheduled earlier): each holds one of its `max_instances` places."""
    counts = DjangoJobExecution.objects.filter(job_id=job_id).aggregate(
        running=Count("id", filter=Q(status=DjangoJobExecution.SENT)),
        ahead=Count("id", filter=Q(status=EXECUTION_QUEUED, run_time__lt=run_time,
                                   record__cause=ExecutionRecord.Cause.BACKFILL)),
    )
    return counts["running"], counts["ahead"]


def _wait_for_turn(execution: DjangoJobExecution) -> bool:
    """Hand a backfilled run that found no free place back to the scheduler's backfill
    queue; False if its request is gone (then it is refused like any run).

    A run of the job started between the scheduler's claim and this worker (the
    claim counts the places without the workers' lock): the backfilled run is
    claimed again, in order of scheduled time, when a place is free.
    """
    returned = RunRequest.objects.filter(
        job_id=execution.job_id, run_time=execution.run_time,
        cause=ExecutionRecord.Cause.BACKFILL, status=RunRequest.Status.SUBMITTED,
    ).update(status=RunRequest.Status.PENDING, claimed_at=None)
    if not returned:
        return False
    logger.info("Backfilled run of job %r at %s waits its turn: max_instances reached",
                execution.job_id, execution.run_time)
    execution.delete()
    notifications.notify_change(execution.job_id)
    return True


def _refusal(
    job_id: str, run_time: datetime, state: dict[str, Any], *, backfill: bool, running: int,
    ahead: int,
) -> tuple[str, str] | None:
    grace = state.get("misfire_grace_time")
    late = timezone.now() - run_time
    # A backfilled run is late by design: its misfire grace time does not apply.
    if grace is not None and not backfill and late > timedelta(seconds=grace):
        return DjangoJobExecution.MISSED, f"Run time of job {job_id!r} was missed by {late}."
    if running + ahead >= state["max_instances"]:
        waiting = f" and {ahead} backfilled run(s) queued ahead of it" if ahead else ""
        return (
            DjangoJobExecution.MAX_INSTANCES,
            f"Execution of job {job_id!r} skipped: {running} instance(s) already running"
            f"{waiting}.",
        )
    return None


def _not_started(execution: DjangoJobExecution, status: str, reason: str) -> None:
    """Record why a run does not start, in the start's transaction; None for `_start`."""
    execution.status, execution.exception = status, reason[:1000]
    execution.finished = timezone.now().timestamp()
    execution.save()
    outcomes.record_outcomes(execution_ids=[execution.id])
    logger.warning("Run of job %r at %s not started: %s", execution.job_id,
                   execution.run_time, reason)


def _finish(job_id: str, run_time: datetime, began: float, status: str, **details: str) -> None:
    duration = round(time.monotonic() - began, 2)
    # One transaction: the failure that pauses the job and the pause commit together.
    with transaction.atomic():
        execution = (
            DjangoJobExecution.objects.select_for_update()
            .filter(job_id=job_id, run_time=run_time)
            .first()
        )
        if execution is None:
            return  # the job was deleted meanwhile, with its history
        if execution.status != DjangoJobExecution.SENT:
            _note_late_outcome(execution, status, duration, **details)
            return
        DjangoJobExecution.objects.filter(id=execution.id).update(
            status=status, finished=timezone.now().timestamp(), duration=duration, **details
        )
        outcomes.record_outcomes(execution_ids=[execution.id])
        services.record_run_outcome(
            job_id=job_id, failed=status == DjangoJobExecution.ERROR
        )


def _note_late_outcome(
    execution: DjangoJobExecution, status: str, duration: float, **details: str
) -> None:
    """A run already given up (marked lost: its heartbeat stopped, say the worker was
    cut off from the database) keeps that outcome, counted and alerted once; what
    its worker reports later is noted in the run's message, and counts for nothing."""
    if status == DjangoJobExecution.ERROR:
        outcome = f"that it failed after {duration:g}s: {details['exception']}"
    else:
        outcome = f"that it succeeded after {duration:g}s"
    logger.warning("Run of job %r at %s reported %s, but it was marked %s: it stays %s",
                   execution.job_id, execution.run_time, outcome, execution.status,
                   execution.status)
    execution.exception = (
        f"{execution.exception or ''} Its worker reported later {outcome} "
        f"(not counted: the run stays {execution.status.lower()})."
    ).strip()[:1000]
    execution.traceback = execution.traceback or details.get("traceback")
    execution.save(update_fields=["exception", "traceback"])
