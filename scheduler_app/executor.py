"""
How the scheduler's thread pool runs a claimed run ("threads" execution mode).

`RecordingExecutor` is APScheduler's `ThreadPoolExecutor` with three changes:

* each run reports its real start, then its outcome, to the `RunRecorder`, which
  writes them in batches (django-apscheduler's listeners wrote each run twice, in
  transactions of their own under one process-wide lock), and its heartbeat while it
  executes (`liveness`);
* each run time goes to APScheduler's `run_job` alone, with the job's function
  wrapped to note the start: that is the only moment a run is known to start
  (`run_job` skips the run times past their misfire grace time);
* worker threads keep their database connections across runs. django-apscheduler's
  `close_old_connections` wrapper closed them around every run (with Django's default
  `CONN_MAX_AGE = 0`), so every run of a job that uses the database opened a new
  PostgreSQL session. A kept connection is health-checked by Django before the first
  query of each run (a PostgreSQL restart or `pg_terminate_backend` left it dead) and
  closed after a run that broke it or left a transaction open.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_EXECUTED, JobExecutionEvent
from apscheduler.executors.base import run_job
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.job import Job
from django.db import connections
from django_apscheduler.models import DjangoJobExecution

from scheduler_app import binding
from scheduler_app.liveness import heartbeats
from scheduler_app.recorder import RunRecorder, RunReport


class RecordingExecutor(ThreadPoolExecutor):
    """A thread pool whose runs report their start and outcome to a `RunRecorder`."""

    def __init__(self, *, recorder: RunRecorder, max_workers: int) -> None:
        super().__init__(max_workers=max_workers)
        self.recorder = recorder

    def _do_submit_job(self, job: Job, run_times: list[datetime]) -> None:
        # As BasePoolExecutor._do_submit_job, with our run function.
        def callback(future: Any) -> None:
            error = future.exception()
            if error is not None:
                self._run_job_error(job.id, error, error.__traceback__)
            else:
                self._run_job_success(job.id, future.result())

        future = self._pool.submit(
            run_and_report, job, run_times, self._logger.name, self.recorder.report
        )
        future.add_done_callback(callback)


def run_and_report(
    job: Job, run_times: list[datetime], logger_name: str, report: Callable[[RunReport], None]
) -> list[JobExecutionEvent]:
    """Run a job's claimed run times one after the other, reporting each; returns the
    APScheduler events of the runs for the scheduler's listeners."""
    func = job.func
    events = []
    try:
        for run_time in run_times:
            started: list[datetime] = []
            job.func = _noting_start(func, job.id, run_time, report, started)
            try:
                [event] = run_job(job, job._jobstore_alias, [run_time], logger_name)
            finally:
                _release_connections()
            events.append(event)
            report(_report_from_event(event, started[0] if started else None))
    finally:
        job.func = func
    return events


def _noting_start(
    func: Callable[..., Any], job_id: str, run_time: datetime,
    report: Callable[[RunReport], None], started: list[datetime],
) -> Callable[..., Any]:
    """`func`, reporting (and appending to `started`) the moment it is called."""
    def started_then_run(*args: Any, **kwargs: Any) -> Any:
        _prepare_connections()
        started.append(datetime.now(UTC))
        report(RunReport(job_id=job_id, run_time=run_time, started_at=started[0]))
        kwargs = binding.run_kwargs(func, kwargs, run_kwargs=None, scheduled_time=run_time)
        with heartbeats.beating(job_id, run_time):
            return func(*args, **kwargs)

    return started_then_run


def _report_from_event(event: JobExecutionEvent, started_at: datetime | None) -> RunReport:
    finished_at = datetime.now(UTC)
    if event.code == EVENT_JOB_EXECUTED:
        status, exception, traceback = DjangoJobExecution.SUCCESS, None, None
    elif event.code == EVENT_JOB_ERROR:
        status = DjangoJobExecution.ERROR
        exception = (str(event.exception) or type(event.exception).__name__)[:1000]
        traceback = event.traceback
    else:  # EVENT_JOB_MISSED: past its misfire grace time, not started
        status, traceback = DjangoJobExecution.MISSED, None
        exception = f"Run time of job {event.job_id!r} was missed by " \
                    f"{finished_at - event.scheduled_run_time}."
    return RunReport(
        job_id=event.job_id,
        run_time=event.scheduled_run_time,
        started_at=started_at,
        status=status,
        finished_at=finished_at,
        duration=round((finished_at - started_at).total_seconds(), 2) if started_at else None,
        exception=exception,
        traceback=traceback,
    )


def _prepare_connections() -> None:
    # Django health-checks a connection (SELECT 1, reconnecting if it is dead) before
    # its first query after this, as at the start of a request with CONN_HEALTH_CHECKS.
    for connection in connections.all(initialized_only=True):
        if connection.connection is not None:
            connection.health_check_enabled = True
            connection.health_check_done = False


def _release_connections() -> None:
    # What Django's request_finished does, except closing a healthy connection for
    # its age: the next run of this thread reuses it.
    for connection in connections.all(initialized_only=True):
        if connection.connection is None:
            continue
        left_open = connection.in_atomic_block or (
            connection.get_autocommit() != connection.settings_dict["AUTOCOMMIT"]
        )
        if left_open or (connection.errors_occurred and not connection.is_usable()):
            connection.close()
        connection.errors_occurred = False
