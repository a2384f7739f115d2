"""
What the store learns when a run is claimed and when it ends.

Both execution modes (the scheduler's thread pool, and task workers in "tasks"
mode) record a run's outcome through these functions (its start, for lateness, is
`ExecutionRecord.started_at`, written by the `RunRecorder` and by `tasks`), so the
run counters behind the Prometheus metrics and the incidents that alerts are raised
from stay the same whichever mode ran the job:

- `record_runs_due`, in the claiming transaction: the job has a run due, so from
  now on it must succeed within its `alert_after` or it is overdue;
- `record_outcomes` (or, as the scheduler's `RunRecorder` hook,
  `record_reported_outcomes`), in the transaction that wrote the outcome: counts
  it in `JobHealth`, keeps the newest run's gauges, and raises or closes the
  alert incident;
- `raise_overdue_alerts`, from the active scheduler's loop.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from django.db import transaction
from django.db.models import Min
from django.utils import timezone
from django_apscheduler.models import DjangoJobExecution

from scheduler_app import alerts
from scheduler_app.conf import app_settings
from scheduler_app.models import EXECUTION_LOST, Alert, JobHealth, JobRecord
from scheduler_app.registry import registry

if TYPE_CHECKING:
    from scheduler_app.recorder import RunReport

logger = logging.getLogger(__name__)

# Outcome status -> (JobHealth counter, alert event it raises).
OUTCOMES = {
    DjangoJobExecution.SUCCESS: ("runs_success", alerts.RECOVERED),
    DjangoJobExecution.ERROR: ("runs_error", "run_failed"),
    EXECUTION_LOST: ("runs_lost", "run_failed"),
    DjangoJobExecution.MISSED: ("runs_missed", "run_missed"),
    DjangoJobExecution.MAX_INSTANCES: ("runs_skipped", "run_missed"),
}


def record_runs_due(runs: Iterable[tuple[str, datetime]]) -> None:
    """Note, in the claiming transaction, that these (job id, run time) runs are due.

    Only the first run due since a job's last success counts: the job is overdue
    when none has succeeded `alert_after` seconds after it. A few statements per
    claim, whatever the number of runs.
    """
    first: dict[str, datetime] = {}
    for job_id, run_time in runs:
        first[job_id] = min(first.get(job_id, run_time), run_time)
    if not first:
        return
    known = set(JobHealth.objects.filter(job_id__in=first).values_list("job_id", flat=True))
    JobHealth.objects.bulk_create(
        [JobHealth(job_id=job_id, due_since=run_time)
         for job_id, run_time in first.items() if job_id not in known],
        ignore_conflicts=True,
    )
    waiting = JobHealth.objects.filter(job_id__in=known, due_since__isnull=True)
    JobHealth.objects.bulk_update(
        [JobHealth(job_id=job_id, due_since=first[job_id])
         for job_id in waiting.values_list("job_id", flat=True)],
        ["due_since"],
    )


def record_outcomes(*, execution_ids: Iterable[int]) -> None:
    """Count the outcomes just written to these executions and raise their alerts.

    Call it in the transaction that wrote the outcomes, after writing them.
    """
    rows = (
        DjangoJobExecution.objects.filter(id__in=list(execution_ids), status__in=OUTCOMES)
        .select_related("record")
        .order_by("job_id", "run_time")
    )
    with transaction.atomic():
        for row in rows:
            health = alerts.locked_health(row.job_id)
            if health is not None:
                _count(health, row)


def record_reported_outcomes(reports: Sequence[RunReport]) -> None:
    """`RunRecorder` batch hook: `record_outcomes` for the runs a batch finished."""
    wanted = {(report.job_id, report.run_time) for report in reports if report.status}
    if not wanted:
        return
    rows = DjangoJobExecution.objects.filter(
        job_id__in={job_id for job_id, _ in wanted},
        run_time__in={run_time for _, run_time in wanted},
    ).values_list("id", "job_id", "run_time")
    record_outcomes(execution_ids=[
        execution_id for execution_id, job_id, run_time in rows if (job_id, run_time) in wanted
    ])


def _count(health: JobHealth, row: DjangoJobExecution) -> None:
    counter, event = OUTCOMES[row.status]
    setattr(health, counter, getattr(health, counter) + 1)
    started = row.record.started_at if hasattr(row, "record") else None
    finished = datetime.fromtimestamp(float(row.finished), tz=UTC) if row.finished else None
    if health.last_run_time is None or row.run_time >= health.last_run_time:
        health.last_run_time = row.run_time
        if started is not None:  # missed and skipped runs never started: nothing to time
            health.last_lateness = (started - row.run_time).total_seconds()
            health.last_duration = (
                (finished - started).total_seconds() if finished else None
            )
    if row.status == DjangoJobExecution.SUCCESS:
        health.last_success_at = finished or timezone.now()
        health.due_since = None
    health.save()
    alerts.raise_for(health, event=event, run_time=row.run_time, message=_message(row))


def _message(row: DjangoJobExecution) -> str:
    when = f"{row.run_time:%Y-%m-%d %H:%M:%S %Z}"
    if row.status == DjangoJobExecution.SUCCESS:
        return f"Job {row.job_id!r} succeeded again (run due at {when})."
    if row.status == DjangoJobExecution.MAX_INSTANCES:
        return (f"Run of job {row.job_id!r} due at {when} was skipped: "
                f"{row.exception or 'too many instances running'}")
    if row.status == DjangoJobExecution.MISSED:
        return f"Run of job {row.job_id!r} due at {when} was missed: {row.exception or ''}".strip()
    what = "was lost" if row.status == EXECUTION_LOST else "failed"
    return f"Run of job {row.job_id!r} due at {when} {what}: {row.exception or 'no detail'}"


def raise_overdue_alerts(now: datetime) -> int:
    """Raise `job_overdue` for running jobs with no success within their window; how many.

    A job's window is its first run due since its last success plus its
    `alert_after`; paused jobs are never overdue.
    """
    shortest = min(
        [app_settings.ALERT_AFTER]
        + [d.alert_after for d in registry if d.alert_after is not None]
        + [JobRecord.objects.aggregate(shortest=Min("alert_after"))["shortest"] or float("inf")]
    )
    candidates = JobHealth.objects.filter(
        due_since__lte=now - timedelta(seconds=shortest), job__next_run_time__isnull=False
    ).values_list("job_id", "incident")
    raised = 0
    for job_id, incident in candidates:
        if "job_overdue" not in incident:
            raised += _raise_if_overdue(job_id, now) is not None
    return raised


def _raise_if_overdue(job_id: str, now: datetime) -> Alert | None:
    grace = alerts.alert_after(job_id)
    with transaction.atomic():
        # Looked at again under the lock: a success may have closed the window meanwhile.
        health = alerts.locked_health(job_id)
        due_since = health and health.due_since
        if due_since is None or due_since + timedelta(seconds=grace) > now:
            return None
        late = int((now - due_since).total_seconds())
        return alerts.raise_for(
            health,
            event="job_overdue",
            run_time=due_since,
            message=(f"Job {job_id!r} has not succeeded since a run was due at "
                     f"{due_since:%Y-%m-%d %H:%M:%S %Z}, {late}s ago (alert after {grace}s)."),
        )
