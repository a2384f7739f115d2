"""
`RunRecorder`: writes when runs start and how they end, many runs per transaction.

The scheduler's thread pool reports each run's start and outcome here instead of
writing them itself. Before, django-apscheduler's listeners wrote each run twice
("submitted" by the scheduler thread, "executed" by the worker), each time in a
transaction of its own taken under one process-wide lock
(`DjangoResultStoreMixin.lock`): the scheduler spent most of its time waiting for
that lock, not running jobs. Now one recorder thread drains a queue and writes
everything that arrived meanwhile in one transaction: the `DjangoJobExecution`
status, finish time, duration and error, and `ExecutionRecord.started_at`.

A run's execution row exists before it starts (the claim inserts it, see
`JobStore.claim_due_jobs`), so recording is an update keyed by the unique
(job, run time) pair and can be retried: on a database error the recorder keeps
the batch, backs off, reconnects and writes it again. Nothing is recorded twice
and nothing is lost while the process lives. An outcome is written only over a
run still running: a run the scheduler gave up on (lost: no heartbeat for
LOST_RUN_TIMEOUT) stays lost, counted once.

Outcome-dependent logic (failure counts, auto-pause, alerts) plugs in as a batch
hook: `RunRecorder(hooks=[...])` calls each hook with the batch's finished
outcomes, in the order the runs ended, inside the transaction that records them,
so whatever a hook writes commits, or rolls back, with the outcomes it was decided
from. `count_toward_auto_pause` is the scheduler's (`pause_after_failures`).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from django.db import DatabaseError, connection, connections, transaction
from django_apscheduler.models import DjangoJobExecution

from scheduler_app import services
from scheduler_app.conf import app_settings
from scheduler_app.models import ExecutionRecord

logger = logging.getLogger(__name__)

# Most runs one transaction records; a bigger backlog takes several.
MAX_BATCH = 1000
# Seconds a batch waits for more reports after its first. A short run's start and
# outcome then land in one batch and one commit: at 100 runs/s the recorder
# committed twice per run, each commit waiting for PostgreSQL's WAL flush.
LINGER = 0.05


@dataclass(frozen=True)
class RunReport:
    """What the recorder learnt about one run: its start, its outcome, or both.

    `status` is None while the run is only known to have started.
    """

    job_id: str
    run_time: datetime
    started_at: datetime | None = None
    status: str | None = None
    finished_at: datetime | None = None
    duration: float | None = None
    exception: str | None = None
    traceback: str | None = None

    def merged(self, later: RunReport) -> RunReport:
        """This report with what a later report of the same run adds."""
        return replace(
            later, started_at=later.started_at or self.started_at,
            **({} if later.status else {
                "status": self.status, "finished_at": self.finished_at,
                "duration": self.duration, "exception": self.exception,
                "traceback": self.traceback,
            }),
        )


BatchHook = Callable[[Sequence[RunReport]], None]


def count_toward_auto_pause(outcomes: Sequence[RunReport]) -> None:
    """Batch hook: count successes and failures toward each job's `pause_after_failures`
    (a run that was missed or refused for max instances counts neither way)."""
    services.record_run_outcomes(outcomes=[
        (report.job_id, report.status == DjangoJobExecution.ERROR)
        for report in outcomes
        if report.status in (DjangoJobExecution.SUCCESS, DjangoJobExecution.ERROR)
    ])

_STOP = object()


class RunRecorder:
    """A queue of run reports and the thread that writes them in batches."""

    def __init__(
        self, *, hooks: Iterable[BatchHook] = (), max_batch: int = MAX_BATCH,
        linger: float = LINGER,
    ) -> None:
        self.hooks = list(hooks)
        self.max_batch = max_batch
        self.linger = linger
        self._queue: queue.SimpleQueue[RunReport | object] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="scheduler-recorder", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float | None = 30) -> None:
        """Write what is queued, then end the thread."""
        if self._thread.is_alive():
            self._queue.put(_STOP)
            self._thread.join(timeout)

    def report(self, report: RunReport) -> None:
        """Queue a report; it is written with the next batch (never blocks)."""
        self._queue.put(report)

    def _run(self) -> None:
        stopping = False
        while not stopping:
            batch, stopping = self._next_batch()
            delay = 0.0
            while batch:
                try:
                    record_reports(batch, hooks=self.hooks)
                except DatabaseError as error:
                    # The server restarted or the connection died: keep the batch,
                    # reconnect and write it again (the writes are idempotent).
                    delay = min(max(delay * 2, 0.5), app_settings.MAX_RETRY_DELAY)
                    logger.warning("Could not record %d run(s) (%s); retrying in %.1fs",
                                   len(batch), error, delay)
                    connections.close_all()
                    time.sleep(delay)
                    continue
                except Exception:
                    # A hook's bug must not stop every later run from being recorded.
                    logger.exception("Recording %d run(s) failed; they are dropped", len(batch))
                batch = []
        connections.close_all()

    def _next_batch(self) -> tuple[list[RunReport], bool]:
        """The reports that arrive within `linger` of the first (waiting for the first);
        whether to stop after them."""
        items = [self._queue.get()]
        deadline = time.monotonic() + self.linger
        while len(items) < self.max_batch and items[-1] is not _STOP:
            try:
                items.append(self._queue.get(timeout=max(deadline - time.monotonic(), 0)))
            except queue.Empty:
                break
        stopping = _STOP in items
        return [item for item in items if item is not _STOP], stopping


def record_reports(reports: Sequence[RunReport], *, hooks: Iterable[BatchHook] = ()) -> None:
    """Write a batch of run reports (and run the batch hooks) in one transaction."""
    by_run: dict[tuple[str, datetime], RunReport] = {}
    for report in reports:
        key = (report.job_id, report.run_time)
        by_run[key] = by_run[key].merged(report) if key in by_run else report
    merged = list(by_run.values())
    with transaction.atomic():
        if connection.vendor == "postgresql":
            _update_postgresql(merged)
        else:
            _update_each(merged)
        finished = [report for report in merged if report.status is not None]
        for hook in hooks:
            hook(finished)


def _update_postgresql(reports: Sequence[RunReport]) -> None:
    # One statement for the whole batch: a VALUES list joined to the executions by
    # their unique (job, run time), whose updated ids then update the records.
    # Django's bulk_update would build a CASE expression per row and field.
    execution = DjangoJobExecution._meta.db_table
    record = ExecutionRecord._meta.db_table
    values = ", ".join(["(%s, %s::timestamptz, %s::timestamptz, %s, %s::timestamptz, "
                        "%s::numeric, %s, %s)"] * len(reports))
    params: list[object] = []
    for report in reports:
        params += [report.job_id, report.run_time, report.started_at, report.status,
                   report.finished_at, report.duration, report.exception, report.traceback]
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            WITH report (job_id, run_time, started_at, status, finished_at, duration,
                         exception, traceback) AS (VALUES {values}),
            updated AS (
                UPDATE {execution} AS execution SET
                    status = coalesce(report.status, execution.status),
                    finished = coalesce(extract(epoch FROM report.finished_at)::numeric(15, 2),
                                        execution.finished),
                    duration = coalesce(report.duration, execution.duration),
                    exception = CASE WHEN report.status IS NULL THEN execution.exception
                                     ELSE report.exception END,
                    traceback = CASE WHEN report.status IS NULL THEN execution.traceback
                                     ELSE report.traceback END
                FROM report
                WHERE execution.job_id = report.job_id AND execution.run_time = report.run_time
                    AND (report.status IS NULL OR execution.status = %s)
                RETURNING execution.id, report.started_at
            )
            UPDATE {record} AS record SET started_at = updated.started_at
            FROM updated
            WHERE record.execution_id = updated.id AND updated.started_at IS NOT NULL
            """,
            [*params, DjangoJobExecution.SENT],
        )


def _update_each(reports: Sequence[RunReport]) -> None:
    # SQLite (the embedded default, one writer at a time anyway): two updates a run.
    for report in reports:
        executions = DjangoJobExecution.objects.filter(
            job_id=report.job_id, run_time=report.run_time
        )
        if report.status is not None:
            executions.filter(status=DjangoJobExecution.SENT).update(
                status=report.status,
                finished=report.finished_at and round(report.finished_at.timestamp(), 2),
                duration=report.duration,
                exception=report.exception,
                traceback=report.traceback,
            )
        if report.started_at is not None:
            ExecutionRecord.objects.filter(
                execution__job_id=report.job_id, execution__run_time=report.run_time
            ).update(started_at=report.started_at)
