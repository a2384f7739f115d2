"""
The scheduler process: an APScheduler 3 `BlockingScheduler` that treats the store
as the truth, shares the work with standby processes safely and survives its
database.

It replaces `BaseScheduler._process_jobs` (APScheduler 3.11), whose unlocked read
and whole-job write-back undo a pause committed in between, with a pass that:

1. does nothing unless this process holds the leadership lease (`leadership`);
2. resumes the paused jobs whose `paused_until` has come (`services.resume_jobs_due`);
3. claims pending run-now requests and the jobs due within CLAIM_AHEAD seconds
   under row locks, fenced by the lease, advancing next run times and recording
   each claimed run in the same transaction (`JobStore.claim`), then commits;
4. only then submits the claimed runs that are due to the executor (at most once
   per run time), and hands those still ahead to the `RunLauncher`, which starts
   each at its time unless its job was paused or rescheduled meanwhile;
5. sleeps until CLAIM_AHEAD before the store's next run time, or until the next
   pause end, at most MAX_SLEEP, or until the change listener wakes it
   (LISTEN/NOTIFY or polling);
6. on a database error, logs, drops the connection and retries with back-off
   instead of letting the exception end the loop;
7. at most once a second, raises `job_overdue` for jobs with no successful run
   within their window (`outcomes.raise_overdue_alerts`), waking up for the next
   such deadline;
8. marks lost the runs whose heartbeat stopped and expires queued runs no task
   worker started (`liveness`).

A coordinator thread renews the lease and writes the heartbeat the status
endpoint reads.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from apscheduler.events import EVENT_JOB_MAX_INSTANCES, EVENT_JOB_SUBMITTED, JobSubmissionEvent
from apscheduler.executors.base import MaxInstancesReachedError
from apscheduler.schedulers.base import STATE_PAUSED, STATE_STOPPED
from apscheduler.schedulers.blocking import BlockingScheduler
from django.db import DatabaseError, InterfaceError, connections, transaction
from django.utils import timezone
from django_apscheduler.models import DjangoJobExecution

from scheduler_app import alerts, liveness, outcomes, selectors, services
from scheduler_app.conf import app_settings
from scheduler_app.executor import RecordingExecutor
from scheduler_app.jobstore import ClaimedRun, JobStore
from scheduler_app.launcher import RunLauncher
from scheduler_app.leadership import (
    Leadership,
    LeadershipLost,
    database_now,
    new_instance_name,
)
from scheduler_app.models import SchedulerProcess
from scheduler_app.notifications import make_listener, uses_listen_notify
from scheduler_app.recorder import RunRecorder, RunReport, count_toward_auto_pause

logger = logging.getLogger(__name__)

JOBSTORE_ALIAS = "default"
# Seconds between two prunings of old history by the active scheduler; a backlog
# is pruned one batch per kind per pass until it is gone.
HOUSEKEEPING_INTERVAL = 3600.0

# Seconds before the coordinator tries again after a failed lease refresh.
RENEWAL_RETRY = 0.25
# Seconds between two looks for overdue jobs: an overdue alert is this late at most.
OVERDUE_SWEEP_INTERVAL = 1.0
# Seconds a stopping scheduler gives queued alerts to be delivered.
ALERT_DELIVERY_GRACE = 5.0


class Scheduler(BlockingScheduler):
    """A BlockingScheduler whose passes claim work from the store under row locks."""

    def __init__(self, **options: object) -> None:
        # Alerts first: a run's failure is told before the auto-pause it causes.
        self.recorder = RunRecorder(
            hooks=[outcomes.record_reported_outcomes, count_toward_auto_pause]
        )
        self.jobstore = JobStore(dispatch=_task_dispatcher(), record_events=False)
        # Task workers start runs when they get to them: only our own threads can
        # start a run claimed ahead at its time.
        self.claim_ahead = timedelta(
            seconds=app_settings.CLAIM_AHEAD if self.jobstore.dispatch is None else 0
        )
        self.launcher = RunLauncher(start_run=self._submit_isolated,
                                    job_from_state=self.jobstore.job_from_state)
        self.leadership = Leadership(instance=new_instance_name(), ttl=app_settings.LEASE_TTL)
        self.stop_requested = threading.Event()
        self.retry_delay = 0.0
        self.next_unfinished_run_sweep = 0.0
        self.next_housekeeping = 0.0
        self.next_overdue_sweep = 0.0
        # The soonest pause end the last pass saw (at first: look): there is a job to
        # resume only once it has come. A pause with an end committed since then wakes
        # the loop, and the pass that follows sees it.
        self.next_pause_end: datetime | None = datetime.min.replace(tzinfo=UTC)
        super().__init__(
            jobstores={JOBSTORE_ALIAS: self.jobstore},
            executors={"default": RecordingExecutor(
                recorder=self.recorder, max_workers=app_settings.THREADS)},
            timezone=app_settings.timezone,
            **options,
        )

    def start(self, *args: object, **kwargs: object) -> None:
        self.recorder.start()
        self.launcher.start()
        super().start(*args, **kwargs)

    def shutdown(self, wait: bool = True) -> None:
        # The runs claimed ahead start at their times (a few hundredths of a second
        # from now), before the executor stops taking runs.
        self.launcher.stop()
        super().shutdown(wait)
        # After the executor: the runs that were still going are recorded too.
        self.recorder.stop()

    def wakeup(self) -> None:
        # Listener and coordinator threads start before `start()` creates the event;
        # a wake-up that early is not needed: the first pass runs at once.
        if self._event is not None:
            self._event.set()

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
        if not self.leadership.is_active:
            # Standing by: the coordinator wakes us when we take the lease over.
            return self.leadership.ttl / 3
        now = datetime.now(self.timezone)
        fence = self.leadership.fence
        try:
            with self._jobstores_lock:
                if self.next_pause_end is not None and self.next_pause_end <= now:
                    services.resume_jobs_due(now=now)
                claimed = self.jobstore.claim(now, fence=fence, ahead=self.claim_ahead)
            if self.jobstore.dispatch is None:  # else the claim handed them to task workers
                for run in claimed:
                    self._start_or_hold(run)
            self._sweep_unfinished_runs()
            self._prune_history()
            self._sweep_overdue_jobs()
            self.next_pause_end = selectors.next_pause_end()
            # A pass claims the runs due within CLAIM_AHEAD: it starts that much earlier.
            next_run_time = self.jobstore.earliest_next_run_time()
            wake_at = _earliest(next_run_time and next_run_time - self.claim_ahead,
                                self.next_pause_end)
            overdue_at = outcomes.next_overdue_deadline(now)
        except LeadershipLost as reason:
            logger.warning("Not claiming: %s; standing by", reason)
            return self.leadership.ttl / 3
        except (DatabaseError, InterfaceError) as error:
            return self._back_off(error)
        except Exception as error:
            # A bug must not end the loop (APScheduler's `_main_loop` would let it):
            # the pass is retried with back-off, as after a database error.
            logger.exception("Unexpected error in the scheduler pass")
            return self._back_off(error)
        self.retry_delay = 0.0
        wait_seconds = app_settings.MAX_SLEEP
        if self.jobstore.backfills_waiting:
            # Their turn comes when a run of their job ends: look again soon.
            wait_seconds = app_settings.POLL_INTERVAL
        if wake_at is not None:
            until_next = wake_at.timestamp() - time.time()
            wait_seconds = min(max(until_next, 0), wait_seconds)
        if overdue_at is not None:
            # Awake for the next job to go overdue, so its alert is not late by up to
            # MAX_SLEEP; but sweeps stay at most one a second.
            until_overdue = max(overdue_at.timestamp() - time.time(),
                                self.next_overdue_sweep - time.monotonic())
            wait_seconds = min(max(until_overdue, 0), wait_seconds)
        return wait_seconds

    def _start_or_hold(self, run: ClaimedRun) -> None:
        """Start a claimed run's due run times now, and hold those still ahead."""
        now = datetime.now(self.timezone)
        due = [run_time for run_time in run.run_times if run_time <= now]
        if due:
            self._submit_isolated(replace(run, run_times=due))
        for run_time in run.run_times[len(due):]:
            self.launcher.hold(replace(run, run_times=[run_time]))

    def _submit_isolated(self, run: ClaimedRun) -> None:
        """Submit one claimed run; whatever goes wrong fails that run only.

        The claim has committed: a run that cannot be submitted (a job stored with
        an executor this scheduler lacks, say) is recorded as an error, and the
        other claimed runs still start.
        """
        try:
            self._submit(run)
        except Exception as error:
            logger.exception("Could not start the run of job %r", run.job.id)
            _record_not_started(run, f"Not started: {type(error).__name__}: {error}",
                                status=DjangoJobExecution.ERROR)

    def _submit(self, run: ClaimedRun) -> None:
        if not self.leadership.is_active:
            # We stalled between the claim and now, long enough that another process
            # may lead: starting the run could break "at most once" for its record.
            _record_not_started(run, "not started: this scheduler lost its lease")
            return
        executor = self._lookup_executor(run.job.executor)
        try:
            executor.submit_job(run.job, run.run_times)
        except MaxInstancesReachedError:
            logger.warning("Run of job %r skipped: %d instance(s) already running",
                           run.job.id, run.job.max_instances)
            for run_time in run.run_times:
                self.recorder.report(RunReport(
                    job_id=run.job.id, run_time=run_time,
                    status=DjangoJobExecution.MAX_INSTANCES, finished_at=timezone.now(),
                    exception=f"Execution of job {run.job.id!r} skipped: "
                              f"{run.job.max_instances} instance(s) already running.",
                ))
            code = EVENT_JOB_MAX_INSTANCES
        else:
            code = EVENT_JOB_SUBMITTED
        self._dispatch_event(JobSubmissionEvent(code, run.job.id, JOBSTORE_ALIAS, run.run_times))

    def _sweep_unfinished_runs(self) -> None:
        """Mark lost the runs whose heartbeat stopped, expire queued runs nobody started."""
        if time.monotonic() < self.next_unfinished_run_sweep:
            return
        lost = liveness.mark_lost_runs()
        if lost:
            logger.warning("Marked %d run(s) lost: no heartbeat for %gs",
                           lost, app_settings.LOST_RUN_TIMEOUT)
        liveness.expire_queued_runs()
        shortest = min(app_settings.LOST_RUN_TIMEOUT, app_settings.QUEUED_RUN_TIMEOUT)
        self.next_unfinished_run_sweep = time.monotonic() + min(shortest / 4, 60)

    def _prune_history(self) -> None:
        if time.monotonic() < self.next_housekeeping:
            return
        report = services.prune_history(max_batches=1)
        if report.total:
            logger.info(
                "Pruned old history: %d run(s), %d run request(s), %d change(s), "
                "%d scheduler process row(s)", report.executions, report.run_requests,
                report.changes, report.scheduler_processes,
            )
        # What is left of a backlog goes in the next pass.
        pause = HOUSEKEEPING_INTERVAL if report.complete else 0.0
        self.next_housekeeping = time.monotonic() + pause

    def _sweep_overdue_jobs(self) -> None:
        if time.monotonic() < self.next_overdue_sweep:
            return
        outcomes.raise_overdue_alerts(timezone.now())
        self.next_overdue_sweep = time.monotonic() + OVERDUE_SWEEP_INTERVAL

    def _back_off(self, error: Exception) -> float:
        self.retry_delay = min(max(self.retry_delay * 2, 0.5), app_settings.MAX_RETRY_DELAY)
        logger.warning("Database error in the scheduler pass (%s); retrying in %.1fs",
                       error, self.retry_delay)
        # The connection may be dead (server restart, pg_terminate_backend): a new
        # one is opened by the next query.
        connections.close_all()
        return self.retry_delay


def _earliest(*moments: datetime | None) -> datetime | None:
    return min((moment for moment in moments if moment is not None), default=None)


def _task_dispatcher() -> Callable[[str, datetime], None] | None:
    """In "tasks" mode, the function that enqueues a claimed run on a task backend."""
    if app_settings.EXECUTION != "tasks":
        return None
    from scheduler_app.tasks import enqueue_run  # imports the Tasks framework

    return enqueue_run


def _record_not_started(
    run: ClaimedRun, reason: str, *, status: str = DjangoJobExecution.MISSED
) -> None:
    try:
        with transaction.atomic():
            executions = DjangoJobExecution.objects.filter(
                job_id=run.job.id, run_time__in=run.run_times
            )
            ids = list(executions.values_list("id", flat=True))
            executions.update(status=status, exception=reason[:1000])
            outcomes.record_outcomes(execution_ids=ids)
    except (DatabaseError, InterfaceError) as error:
        logger.warning("Could not record that %r was not started: %s", run.job.id, error)


class Coordinator(threading.Thread):
    """Renews (or takes over) the leadership lease and writes this process's heartbeat."""

    def __init__(self, scheduler: Scheduler, notification_mode: str) -> None:
        super().__init__(name="scheduler-coordinator", daemon=True)
        self.scheduler = scheduler
        self.leadership = scheduler.leadership
        self.notification_mode = notification_mode
        self.stopping = threading.Event()
        self.refresh_requested = threading.Event()
        self.process_id: int | None = None
        self.interval = min(app_settings.HEARTBEAT_INTERVAL, self.leadership.ttl / 3)

    def run(self) -> None:
        was_active: bool | None = None  # say which role we start in, too
        while True:
            active = self.leadership.refresh()
            if active != was_active:
                self._announce(active)
                was_active = active
            try:
                self.beat(active)
            except (DatabaseError, InterfaceError) as error:
                logger.warning("Heartbeat failed (%s); will try again", error)
                connections.close_all()
            except Exception:
                # This thread must outlive any surprise, or the lease lapses.
                logger.exception("Unexpected error in the scheduler coordinator")
            # One missed renewal would otherwise let the lease's validity (TTL/2) run
            # out before the next one (TTL/3 later): the active scheduler would stop
            # starting runs, as seen under load when a renewal timed out behind a claim.
            self.refresh_requested.wait(
                min(self.interval, RENEWAL_RETRY) if self.leadership.refresh_failed
                else self.interval
            )
            self.refresh_requested.clear()
            if self.stopping.is_set():
                break
        self.leadership.release()
        self.mark_stopped()
        connections.close_all()

    def refresh_soon(self) -> None:
        """Refresh the lease now (the active scheduler just released it)."""
        self.refresh_requested.set()

    def stop(self) -> None:
        self.stopping.set()
        self.refresh_requested.set()

    def _announce(self, active: bool) -> None:
        if active:
            logger.info("Active scheduler (lease epoch %s)", self.leadership.epoch)
            self.scheduler.wakeup()
        else:
            logger.info("Standing by: another scheduler holds the lease")

    def beat(self, active: bool) -> None:
        now = database_now()  # the clock the status endpoint compares with
        role = SchedulerProcess.Role.ACTIVE if active else SchedulerProcess.Role.STANDBY
        fields = {"last_heartbeat": now, "role": role, "epoch": self.leadership.epoch}
        if self.process_id is None:
            self.process_id = SchedulerProcess.objects.create(
                instance=self.leadership.instance,
                host=socket.gethostname(),
                pid=os.getpid(),
                started_at=now,
                notification_mode=self.notification_mode,
                **fields,
            ).id
        else:
            SchedulerProcess.objects.filter(id=self.process_id).update(**fields)

    def mark_stopped(self) -> None:
        if self.process_id is None:
            return
        try:
            SchedulerProcess.objects.filter(id=self.process_id).update(
                stopped_at=database_now(), role=SchedulerProcess.Role.STANDBY, epoch=None
            )
        except (DatabaseError, InterfaceError) as error:
            logger.warning("Could not record the scheduler's stop: %s", error)


def run_scheduler(scheduler: Scheduler) -> None:
    """Run the scheduler in this thread until `request_stop()`; running jobs finish first."""
    coordinator = Coordinator(scheduler, "notify" if uses_listen_notify() else "poll")
    listener = make_listener(scheduler.wakeup, on_lease_released=coordinator.refresh_soon)
    listener.start()
    coordinator.start()
    try:
        scheduler.start()
    finally:
        listener.stop()
        if scheduler.state != STATE_STOPPED:
            logger.info("Scheduler stopping: waiting for running jobs to finish")
            scheduler.shutdown(wait=True)
        coordinator.stop()
        coordinator.join(timeout=10)
        if not alerts.wait_for_deliveries(timeout=ALERT_DELIVERY_GRACE):
            logger.warning("Stopping with alerts not delivered yet (see the alert log)")
        connections.close_all()
