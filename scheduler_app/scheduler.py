"""
The scheduler process: an APScheduler 3 `BlockingScheduler` that treats the store
as the truth and survives its database.

It replaces `BaseScheduler._process_jobs` (APScheduler 3.11), whose unlocked read
and whole-job write-back undo a pause committed in between, with a pass that:

1. claims pending run-now requests and due jobs under row locks, advancing their
   next run times in the same transaction (`JobStore.claim_due_jobs`), then commits;
2. only then submits the claimed runs to the executor (at most once per run time);
3. sleeps until the store's next run time, at most MAX_SLEEP, or until the change
   listener wakes it (LISTEN/NOTIFY or polling);
4. on a database error, logs, drops the connection and retries with back-off
   instead of letting the exception end the loop.

A heartbeat thread records that the process is alive for the status endpoint.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from datetime import datetime

from apscheduler.events import EVENT_JOB_MAX_INSTANCES, EVENT_JOB_SUBMITTED, JobSubmissionEvent
from apscheduler.executors.base import MaxInstancesReachedError
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.base import STATE_PAUSED, STATE_STOPPED
from apscheduler.schedulers.blocking import BlockingScheduler
from django.db import DatabaseError, connections
from django.utils import timezone

from scheduler_app.conf import app_settings
from scheduler_app.jobstore import ClaimedRun, JobStore
from scheduler_app.models import SchedulerProcess
from scheduler_app.notifications import make_listener

logger = logging.getLogger(__name__)

JOBSTORE_ALIAS = "default"


class Scheduler(BlockingScheduler):
    """A BlockingScheduler whose passes claim work from the store under row locks."""

    def __init__(self, **options: object) -> None:
        self.jobstore = JobStore()
        self.stop_requested = threading.Event()
        self.retry_delay = 0.0
        super().__init__(
            jobstores={JOBSTORE_ALIAS: self.jobstore},
            executors={"default": ThreadPoolExecutor(max_workers=app_settings.THREADS)},
            timezone=app_settings.timezone,
            **options,
        )

    def request_stop(self) -> None:
        """Ask the loop to stop after the current pass (safe from a signal handler)."""
        self.stop_requested.set()
        self.wakeup()

    def _main_loop(self) -> None:
        wait_seconds: float | None = 0
        while self.state != STATE_STOPPED and not self.stop_requested.is_set():
            self._event.wait(wait_seconds)
            self._event.clear()
            if self.stop_requested.is_set():
                break
            wait_seconds = self._process_jobs()

    def _process_jobs(self) -> float | None:
        if self.state == STATE_PAUSED:
            return None
        now = datetime.now(self.timezone)
        try:
            with self._jobstores_lock:
                claimed = self.jobstore.claim_run_requests(now)
                claimed += self.jobstore.claim_due_jobs(now)
            for run in claimed:
                self._submit(run)
            next_run_time = self.jobstore.get_next_run_time()
        except DatabaseError as error:
            return self._back_off(error)
        self.retry_delay = 0.0
        wait_seconds = app_settings.MAX_SLEEP
        if next_run_time is not None:
            until_next = next_run_time.timestamp() - datetime.now(self.timezone).timestamp()
            wait_seconds = min(max(until_next, 0), wait_seconds)
        return wait_seconds

    def _submit(self, run: ClaimedRun) -> None:
        executor = self._lookup_executor(run.job.executor)
        try:
            executor.submit_job(run.job, run.run_times)
        except MaxInstancesReachedError:
            logger.warning("Run of job %r skipped: %d instance(s) already running",
                           run.job.id, run.job.max_instances)
            code = EVENT_JOB_MAX_INSTANCES
        else:
            code = EVENT_JOB_SUBMITTED
        self._dispatch_event(JobSubmissionEvent(code, run.job.id, JOBSTORE_ALIAS, run.run_times))

    def _back_off(self, error: DatabaseError) -> float:
        self.retry_delay = min(max(self.retry_delay * 2, 0.5), app_settings.MAX_RETRY_DELAY)
        logger.warning("Database error in the scheduler pass (%s); retrying in %.1fs",
                       error, self.retry_delay)
        # The connection may be dead (server restart, pg_terminate_backend): a new
        # one is opened by the next query.
        connections.close_all()
        return self.retry_delay


class Heartbeat(threading.Thread):
    """Records every HEARTBEAT_INTERVAL seconds that this scheduler process is alive."""

    def __init__(self, notification_mode: str) -> None:
        super().__init__(name="scheduler-heartbeat", daemon=True)
        self.stopping = threading.Event()
        self.notification_mode = notification_mode
        self.process_id: int | None = None

    def run(self) -> None:
        while True:
            try:
                self.beat()
            except DatabaseError as error:
                logger.warning("Heartbeat failed (%s); will try again", error)
                connections.close_all()
            if self.stopping.wait(app_settings.HEARTBEAT_INTERVAL):
                break
        self.mark_stopped()
        connections.close_all()

    def beat(self) -> None:
        now = timezone.now()
        if self.process_id is None:
            self.process_id = SchedulerProcess.objects.create(
                host=socket.gethostname(),
                pid=os.getpid(),
                started_at=now,
                last_heartbeat=now,
                notification_mode=self.notification_mode,
            ).id
        else:
            SchedulerProcess.objects.filter(id=self.process_id).update(last_heartbeat=now)

    def mark_stopped(self) -> None:
        if self.process_id is None:
            return
        try:
            SchedulerProcess.objects.filter(id=self.process_id).update(stopped_at=timezone.now())
        except DatabaseError as error:
            logger.warning("Could not record the scheduler's stop: %s", error)


def run_scheduler(scheduler: Scheduler) -> None:
    """Run the scheduler in this thread until `request_stop()`; running jobs finish first."""
    listener = make_listener(scheduler.wakeup)
    heartbeat = Heartbeat(listener.mode)
    listener.start()
    heartbeat.start()
    try:
        scheduler.start()
    finally:
        listener.stop()
        if scheduler.state != STATE_STOPPED:
            logger.info("Scheduler stopping: waiting for running jobs to finish")
            scheduler.shutdown(wait=True)
        heartbeat.stopping.set()
        heartbeat.join(timeout=10)
        connections.close_all()
