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

from django.db import connection, transaction
from django.db.models import Min, QuerySet
from django.utils import timezone
from django_apscheduler.models import DjangoJob, DjangoJobExecution

from scheduler_app import alerts, bulk
from scheduler_app.models import EXECUTION_EXPIRED, EXECUTION_LOST, Alert, JobHealth, JobRecord

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
    # Queued, and no task worker started it in time: a missed run.
    EXECUTION_EXPIRED: ("runs_missed", "run_missed"),
}


def record_runs_due(runs: Iterable[tuple[str, datetime]]) -> None:
    """Note, in the claiming transaction, that these (job id, run time) runs are due.

    Only the first run due since a job's last success counts: the job is overdue
    (`overdue_at`) when none has succeeded `alert_after` seconds after it. Two
    statements per claim, whatever the number of runs: the jobs' own `alert_after`,
    then an upsert that makes the health rows a job lacks and opens the window of
    each job that has none open.
    """
    first: dict[str, datetime] = {}
    for job_id, run_time in runs:
        first[job_id] = min(first.get(job_id, run_time), run_time)
    if not first:
        return
    chosen = dict(JobRecord.objects.filter(job_id__in=first).values_list("job_id", "alert_after"))
    adapt = connection.ops.adapt_datetimefield_value
    due = []
    for job_id, run_time in first.items():
        grace = alerts.effective_alert_after(job_id, chosen.get(job_id))
        due += [job_id, adapt(run_time), adapt(run_time + timedelta(seconds=grace))]
    table = JobHealth._meta.db_table
    columns, defaults = bulk.column_defaults(
        JobHealth, besides=("job_id", "due_since", "overdue_at")
    )
    with connection.cursor() as cursor:
        # The same statement on PostgreSQL and SQLite; `WHERE true` is SQLite's way to
        # tell an upsert's SELECT from a join's ON.
        cursor.execute(
            f"""
            INSERT INTO {table} (job_id, due_since, overdue_at, {columns})
            SELECT due.column1, due.column2, due.column3, {", ".join(["%s"] * len(defaults))}
            FROM (VALUES {", ".join(["(%s, %s, %s)"] * len(first))}) AS due
            WHERE true
            ON CONFLICT (job_id) DO UPDATE
            SET due_since = excluded.due_since, overdue_at = excluded.overdue_at
            WHERE {table}.due_since IS NULL
            """,
            [*defaults, *due],
        )


def forget_runs_due(runs: Iterable[tuple[str, datetime]]) -> None:
    """Undo `record_runs_due` for runs given back before they started: the overdue
    window a run opened (it was the first due since a success) closes again."""
    for job_id, run_time in runs:
        JobHealth.objects.filter(job_id=job_id, due_since=run_time).update(
            due_since=None, overdue_at=None
        )


def move_overdue_deadline(job_id: str) -> None:
    """After a job's `alert_after` changed: an open window ends by the new grace."""
    health = JobHealth.objects.filter(job_id=job_id, due_since__isnull=False).first()
    if health is not None:
        health.overdue_at = health.due_since + timedelta(seconds=alerts.alert_after(job_id))
        health.save(update_fields=["overdue_at"])


def record_outcomes(*, execution_ids: Iterable[int]) -> None:
    """Count the outcomes just written to these executions and raise their alerts.

    Call it in the transaction that wrote the outcomes, after writing them.
    """
    _count_outcomes(
        DjangoJobExecution.objects.filter(id__in=list(execution_ids), status__in=OUTCOMES)
    )


def record_reported_outcomes(reports: Sequence[RunReport]) -> None:
    """`RunRecorder` batch hook: `record_outcomes` for the runs a batch finished."""
    reported = {(report.job_id, report.run_time): report.status
                for report in reports if report.status}
    if not reported:
        return
    rows = DjangoJobExecution.objects.filter(
        job_id__in={job_id for job_id, _ in reported},
        run_time__in={run_time for _, run_time in reported},
        status__in=OUTCOMES,
    )
    _count_outcomes(rows, only=reported)


def _count_outcomes(
    executions: QuerySet[DjangoJobExecution],
    *,
    only: dict[tuple[str, datetime], str] | None = None,
) -> None:
    """Count executions' outcomes in their jobs' health rows, a few statements a batch.

    The health rows are locked together, in job order (so two processes recording
    outcomes of the same jobs cannot deadlock), counted in memory in run order, and
    written back in one statement; only an incident that opens or closes costs a
    statement of its own (`alerts.raise_for`).
    """
    # With `only`, the (job, run time) -> status just written: a run whose row holds
    # another status (it was marked lost before its outcome came) is not counted again.
    rows = [row for row in executions.select_related("record").order_by("job_id", "run_time")
            if only is None or only.get((row.job_id, row.run_time)) == row.status]
    if not rows:
        return
    with transaction.atomic():
        healths = _locked_healths({row.job_id for row in rows})
        for row in rows:
            health = healths.get(row.job_id)
            if health is not None:
                _count(health, row)
        bulk.update_rows(JobHealth, COUNTED_FIELDS, (
            [health.job_id, *(getattr(health, name) for name in COUNTED_FIELDS)]
            for health in healths.values()
        ))


def _locked_healths(job_ids: set[str]) -> dict[str, JobHealth]:
    """The jobs' health rows, locked for this transaction; made for jobs that lack one
    (a job deleted meanwhile has none and is left out)."""
    locked = JobHealth.objects.select_for_update().order_by("job_id")
    healths = {health.job_id: health for health in locked.filter(job_id__in=job_ids)}
    missing = job_ids - healths.keys()
    if missing:
        existing = DjangoJob.objects.filter(id__in=missing).values_list("id", flat=True)
        JobHealth.objects.bulk_create([JobHealth(job_id=job_id) for job_id in existing],
                                      ignore_conflicts=True)
        healths.update((health.job_id, health) for health in locked.filter(job_id__in=missing))
    return healths


# What counting an outcome changes in a health row (`incident` is saved by
# `alerts.raise_for` when it changes).
COUNTED_FIELDS = [
    "runs_success", "runs_error", "runs_lost", "runs_missed", "runs_skipped", "last_run_time",
    "last_lateness", "last_duration", "last_success_at", "due_since", "overdue_at",
]


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
        health.due_since = health.overdue_at = None
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
    if row.status == EXECUTION_EXPIRED:
        return f"Run of job {row.job_id!r} due at {when} was not run: {row.exception}"
    what = "was lost" if row.status == EXECUTION_LOST else "failed"
    return f"Run of job {row.job_id!r} due at {when} {what}: {row.exception or 'no detail'}"


def raise_overdue_alerts(now: datetime) -> int:
    """Raise `job_overdue` for running jobs with no success within their window; how many.

    A job's window is its first run due since its last success plus its
    `alert_after`, written as `overdue_at` when the window opened; paused jobs are
    never overdue. One indexed query, whatever the number of runs in flight.
    """
    candidates = JobHealth.objects.filter(
        overdue_at__lte=now, job__next_run_time__isnull=False
    ).values_list("job_id", "incident")
    raised = 0
    for job_id, incident in candidates:
        if "job_overdue" not in incident:
            raised += _raise_if_overdue(job_id, now) is not None
    return raised


def next_overdue_deadline(now: datetime) -> datetime | None:
    """When the next running job goes overdue if no run of it succeeds (one index read)."""
    return JobHealth.objects.filter(
        overdue_at__gt=now, job__next_run_time__isnull=False
    ).aggregate(deadline=Min("overdue_at"))["deadline"]


def _raise_if_overdue(job_id: str, now: datetime) -> Alert | None:
    with transaction.atomic():
        # Looked at again under the lock: a success may have closed the window meanwhile.
        health = alerts.locked_health(job_id)
        if health is None or health.overdue_at is None or health.overdue_at > now:
            return None
        late = int((now - health.due_since).total_seconds())
        grace = int((health.overdue_at - health.due_since).total_seconds())
        return alerts.raise_for(
            health,
            event="job_overdue",
            run_time=health.due_since,
            message=(f"Job {job_id!r} has not succeeded since a run was due at "
                     f"{health.due_since:%Y-%m-%d %H:%M:%S %Z}, {late}s ago "
                     f"(alert after {grace}s)."),
        )
