"""
`JobStore`: django-apscheduler's `DjangoJobStore` with the row-level guarantees
this project promises.

It differs from its parent in three ways:

* it never deletes a job it cannot restore (the parent deletes such jobs, with their
  history, on any read): the job is kept, skipped for running and reported broken;
* `claim_due_jobs` claims due rows with `SELECT ... FOR NO KEY UPDATE SKIP LOCKED`
  and writes their next run time back in the same transaction, before anything
  runs, so a pause or reschedule committed meanwhile is never overwritten by the
  whole-job write-back of `BaseScheduler._process_jobs`;
* each run it claims is recorded (a `DjangoJobExecution` row, unique per job and
  run time) in the claiming transaction, so the database itself refuses to fire a
  (job, run time) twice, whoever claims it and whatever the timing;
* every job it adds gets its `JobRecord` (version) in the same transaction.

Used alone, it is a drop-in job store for any APScheduler 3 scheduler.
"""

from __future__ import annotations

import logging
import pickle
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from apscheduler import events
from apscheduler.job import Job
from apscheduler.jobstores.base import ConflictingIdError, JobLookupError
from django.db import (
    IntegrityError,
    InterfaceError,
    OperationalError,
    connection,
    transaction,
)
from django.db.models import BooleanField, ExpressionWrapper, Min, Q
from django.db.models.functions import Now
from django.utils import timezone
from django_apscheduler import util
from django_apscheduler.jobstores import DjangoJobStore
from django_apscheduler.models import DjangoJob, DjangoJobExecution

from scheduler_app import bulk, catchup, outcomes, services
from scheduler_app.conf import app_settings
from scheduler_app.models import (
    EXECUTION_QUEUED,
    ExecutionRecord,
    JobRecord,
    RunRequest,
)
from scheduler_app.state import (
    UnreadableState,
    dump_state,
    load_state,
    record_mirror,
)

logger = logging.getLogger(__name__)

# How many due jobs one claim takes; the rest are claimed by the next pass. A
# pass costs about the same few statements whatever its size, so a bigger batch lets
# a scheduler that fell behind catch up (bench.throughput: 200 kept up with fewer
# runs/s); but the claim holds the lease row, which the lease renewal waits for, and
# 1,000 rows took over a second on a loaded machine.
CLAIM_BATCH = 500


@dataclass
class ClaimedRun:
    """A job claimed for running, with the run times it was claimed for."""

    job: Job
    run_times: list[datetime]
    run_request: RunRequest | None = None
    # The state the claim wrote back (due runs): whoever starts the run later can
    # tell whether the job changed since (`launcher`).
    job_state: bytes | None = None


class JobStore(DjangoJobStore):
    """A `DjangoJobStore` that keeps broken jobs and claims due jobs under row locks.

    With `dispatch`, each claimed run is handed over inside the claiming transaction
    (to Django's Tasks framework, see `scheduler_app.tasks`) and recorded as queued,
    instead of being returned for the scheduler's own executor. With
    `record_events=False` the store leaves the recording of outcomes to its scheduler
    (ours uses `scheduler_app.recorder`); a stock APScheduler scheduler gets
    django-apscheduler's listeners.
    """

    def __init__(
        self,
        pickle_protocol: int = pickle.HIGHEST_PROTOCOL,
        *,
        dispatch: Callable[[str, datetime], None] | None = None,
        record_events: bool = True,
    ) -> None:
        super().__init__(pickle_protocol)
        self.dispatch = dispatch
        self.record_events = record_events
        # Whether the last claim left backfilled runs waiting for room.
        self.backfills_waiting = False

    def register_event_listeners(self) -> None:
        if not self.record_events:
            # The scheduler records its runs itself, in batches
            # (`scheduler_app.recorder`); the parent's listeners would write each
            # run twice more, one transaction at a time.
            return
        # The parent's listeners write execution records from the scheduler and
        # worker threads; a connection that died with a database restart would
        # make every later record fail, so retry once on a fresh connection.
        add_listener = self._scheduler.add_listener
        add_listener(
            util.retry_on_db_operational_error(self.handle_submission_event),
            events.EVENT_JOB_SUBMITTED | events.EVENT_JOB_MAX_INSTANCES,
        )
        add_listener(
            util.retry_on_db_operational_error(self.record_outcome),
            events.EVENT_JOB_EXECUTED | events.EVENT_JOB_ERROR | events.EVENT_JOB_MISSED,
        )

    def record_outcome(self, event: events.JobExecutionEvent) -> None:
        """Record a run's outcome and count it toward the job's `pause_after_failures`,
        in one transaction: the failure that pauses a job and the pause commit together.

        django-apscheduler's handlers take `lock` (an RLock), then open their
        transaction: take them in that order here too, or a thread holding SQLite's
        write lock waits for `lock` held by one waiting for the write lock.
        """
        with self.lock, transaction.atomic():
            if event.code == events.EVENT_JOB_EXECUTED:
                execution_id = self.handle_execution_event(event)
            else:
                execution_id = self.handle_error_event(event)
            # The run counters and alerts (`outcomes`), in the same transaction.
            if execution_id is not None:
                outcomes.record_outcomes(execution_ids=[execution_id])
            if event.code != events.EVENT_JOB_MISSED:
                services.record_run_outcome(
                    job_id=event.job_id, failed=event.code == events.EVENT_JOB_ERROR
                )

    def handle_submission_event(self, event: events.JobSubmissionEvent) -> int | None:
        """django-apscheduler's handler; a skipped run (max instances) is an outcome too."""
        with self.lock, transaction.atomic():
            execution_id = super().handle_submission_event(event)
            if execution_id is not None and event.code == events.EVENT_JOB_MAX_INSTANCES:
                outcomes.record_outcomes(execution_ids=[execution_id])
        return execution_id

    @util.retry_on_db_operational_error
    def lookup_job(self, job_id: str) -> Job | None:
        job_state = DjangoJob.objects.filter(id=job_id).values_list("job_state", flat=True).first()
        if job_state is None:
            return None
        return self._restore_or_none(job_id, job_state)

    @util.retry_on_db_operational_error
    def add_job(self, job: Job) -> DjangoJob:
        state = job.__getstate__()
        with transaction.atomic():
            try:
                row = DjangoJob.objects.create(
                    id=job.id,
                    next_run_time=util.get_django_internal_datetime(job.next_run_time),
                    job_state=dump_state(state),
                )
            except IntegrityError:
                raise ConflictingIdError(job.id) from None
            JobRecord.objects.create(job=row, version=1, name=job.name, **record_mirror(state))
        return row

    @util.retry_on_db_operational_error
    def update_job(self, job: Job) -> None:
        """The parent's update (a stock scheduler's write-back), keeping what our record
        mirrors of the state in step: the name, and `state.record_mirror`'s fields that
        the broken-job count and the metrics read."""
        state = job.__getstate__()
        with transaction.atomic():
            updated = DjangoJob.objects.filter(id=job.id).update(
                next_run_time=util.get_django_internal_datetime(job.next_run_time),
                job_state=dump_state(state),
            )
            if not updated:
                raise JobLookupError(job.id)
            JobRecord.objects.filter(job_id=job.id).update(name=job.name, **record_mirror(state))

    @util.retry_on_db_operational_error
    def _get_jobs(self, **filters: Any) -> list[Job]:
        rows = DjangoJob.objects.filter(**filters).values_list("id", "job_state")
        restored = (self._restore_or_none(job_id, job_state) for job_id, job_state in rows)
        return [job for job in restored if job is not None]

    @util.retry_on_db_operational_error
    def get_next_run_time(self) -> datetime | None:
        """The earliest next run time of a job `get_due_jobs` would return.

        The parent returns the earliest of all rows: with a broken job due, a stock
        APScheduler scheduler is told to wake up now, gets nothing due, and asks
        again at once, forever (a busy loop). Broken jobs are skipped here as they
        are in `get_due_jobs`; usually the first row is the answer.
        """
        rows = (
            DjangoJob.objects.filter(next_run_time__isnull=False)
            .order_by("next_run_time", "id")
            .values_list("job_state", "next_run_time")
        )
        for job_state, next_run_time in rows.iterator(chunk_size=50):
            if self._can_restore(job_state):
                return util.get_apscheduler_datetime(next_run_time, self._scheduler)
        return None

    @util.retry_on_db_operational_error
    def earliest_next_run_time(self) -> datetime | None:
        """The earliest next run time of any job, broken ones included: our scheduler's
        wake-up time (one index read; no state unpickled).

        Unlike a stock scheduler, ours claims a due broken job like any other: the claim
        records its missed run and moves its next run time on, so it cannot spin.
        """
        return DjangoJob.objects.aggregate(earliest=Min("next_run_time"))["earliest"]

    def _can_restore(self, job_state: bytes) -> bool:
        try:
            self._reconstitute_job(job_state)
        except Exception:  # unpickling and importing can raise anything
            return False
        return True

    def _restore_or_none(self, job_id: str, job_state: bytes) -> Job | None:
        try:
            return self._reconstitute_job(job_state)
        except Exception as error:  # unpickling and importing can raise anything
            logger.warning("Job %r is broken and is skipped (kept in the store): %s", job_id, error)
            return None

    @util.retry_on_db_operational_error
    def claim_due_jobs(
        self,
        now: datetime,
        *,
        fence: Callable[[], None] | None = None,
        before_write_back: Callable[[list[str]], None] | None = None,
    ) -> list[ClaimedRun]:
        """Claim the jobs due at `now` and advance their next run times, in one transaction.

        Rows another transaction holds (a web request changing the job) are
        skipped, not waited for: they are claimed by the next pass, with their new
        state. `no_key` keeps execution-record inserts, which reference the row,
        from waiting on the claim. `before_write_back` runs between the claim and
        the write-back (tests use it to commit a change in that window). `fence`
        runs first in the transaction and raises if this process may not claim.

        The work is batched: one statement claims up to CLAIM_BATCH rows, one writes
        their next run times back, two insert the claimed runs' records, whatever
        the batch's size (a run's cost was a dozen statements and savepoints).
        """
        with transaction.atomic():
            if fence is not None:
                fence()
            return self._claim_due_jobs(now, before_write_back)

    @util.retry_on_db_operational_error
    def claim(
        self, now: datetime, *, fence: Callable[[], None] | None = None,
        ahead: timedelta = timedelta(0),
    ) -> list[ClaimedRun]:
        """A scheduler pass's claims in one transaction: run-now requests, the backfilled
        runs there is room for, then the jobs due within `ahead` of `now` (the caller
        starts those still ahead at their time, see `launcher`).

        One transaction, so the lease is checked once per pass, not once per kind; and
        one query says which kinds of request are pending (usually none).
        """
        with transaction.atomic():
            if fence is not None:
                fence()
            pending = set(
                RunRequest.objects.filter(status=RunRequest.Status.PENDING)
                .values_list("cause", flat=True).distinct()
            )
            self.backfills_waiting = False
            claimed = []
            if ExecutionRecord.Cause.RUN_NOW in pending:
                claimed += self._claim_run_requests(now)
            if ExecutionRecord.Cause.BACKFILL in pending:
                claimed += self._claim_backfills(now)
            return claimed + self._claim_due_jobs(now + ahead)

    def _claim_due_jobs(
        self, now: datetime, before_write_back: Callable[[list[str]], None] | None = None
    ) -> list[ClaimedRun]:
        rows = list(
            DjangoJob.objects.select_for_update(skip_locked=True, no_key=True)
            .filter(next_run_time__lte=util.get_django_internal_datetime(now))
            .order_by("next_run_time")
            .values_list("id", "job_state")[:CLAIM_BATCH]
        )
        if before_write_back is not None:
            before_write_back([job_id for job_id, _ in rows])
        advanced = [claim for job_id, job_state in rows
                    if (claim := self._advance(job_id, job_state, now)) is not None]
        _write_next_run_times(advanced)
        claimed = []
        for claim in advanced:
            if claim.job is None:
                _record_broken_runs(claim.job_id, claim.state["func"], claim.run_times)
            elif claim.run_times:
                claimed.append(ClaimedRun(job=claim.job, run_times=claim.run_times,
                                          job_state=claim.job_state))
        claimed = self._record_claimed_runs(claimed)
        _record_skipped_runs([claim for claim in advanced if claim.skipped and claim.job])
        return claimed

    def _advance(self, job_id: str, job_state: bytes, now: datetime) -> _Advance | None:
        """A claimed row's due run times and its state with the next run time after them.

        A job the scheduler cannot schedule (unreadable state, a trigger that fails)
        is paused by the scheduler through an audited change, and the pass goes on.
        """
        try:
            state = load_state(job_state)
        except UnreadableState as error:
            # Without a readable trigger there is no next run time to compute;
            # stop selecting the row rather than spinning on it every pass.
            self._set_aside(job_id, f"its stored state cannot be read ({error})")
            return None
        try:
            due = catchup.due_runs(
                state["trigger"], state.get("next_run_time"), now,
                coalesce=bool(state.get("coalesce")), limit=app_settings.MAX_CATCH_UP_RUNS,
            )
            state["next_run_time"] = due.next_run_time
            new_state = dump_state(state)
        except Exception as error:  # a foreign trigger class can raise anything
            self._set_aside(job_id, f"its trigger failed: {type(error).__name__}: {error}")
            return None
        if due.skipped:
            logger.warning("Job %r was behind: %d missed run(s) skipped, %d run now",
                           job_id, due.skipped, len(due.run_times))
        return _Advance(job_id, state, new_state, due.run_times, self.job_from_state(state),
                        skipped=due.skipped)

    def _set_aside(self, job_id: str, reason: str) -> None:
        """Pause a job the scheduler cannot even schedule, audited, and record why."""
        logger.error("Job %r is paused by the scheduler: %s", job_id, reason)
        next_run_time = DjangoJob.objects.filter(id=job_id).values_list(
            "next_run_time", flat=True).first()
        services.pause_unschedulable_job(job_id=job_id, reason=reason)
        if next_run_time is not None:
            DjangoJobExecution.objects.get_or_create(
                job_id=job_id,
                run_time=next_run_time,
                defaults={"status": DjangoJobExecution.ERROR,
                          "exception": f"Not run, job paused: {reason}"[:1000]},
            )

    def job_from_state(self, state: dict[str, Any]) -> Job | None:
        # As the parent's _reconstitute_job, from the state already unpickled for
        # the claim instead of unpickling it a second time.
        job = Job.__new__(Job)
        try:
            job.__setstate__(dict(state))
        except Exception as error:  # importing the function can raise anything
            logger.warning("Job %r is broken and is skipped (kept in the store): %s",
                           state.get("id"), error)
            return None
        job._scheduler = self._scheduler
        job._jobstore_alias = self._alias
        return job

    @util.retry_on_db_operational_error
    def claim_run_requests(
        self, now: datetime, *, fence: Callable[[], None] | None = None
    ) -> list[ClaimedRun]:
        """Claim pending run-now requests, each with its own run time for its record, and
        the backfilled runs the jobs' max_instances leave room for."""
        with transaction.atomic():
            if fence is not None:
                fence()
            return self._claim_run_requests(now) + self._claim_backfills(now)

    def _claim_backfills(self, now: datetime) -> list[ClaimedRun]:
        """Claim queued backfill runs, oldest scheduled time first, as many per job as its
        max_instances leaves room for beside the runs in flight; the rest wait their
        turn (`backfills_waiting` tells the scheduler to look again soon), never skipped.

        Runs in flight are counted from the executions table, which marks a run
        finished only after the executor has let go of it: the count is never below
        the executor's own, so a claimed backfill run is never refused by it. In tasks
        mode a queued scheduled run is not counted: it yields to the backfilled runs
        queued before it when a worker starts it (`scheduler_app.tasks`).
        """
        pending = RunRequest.objects.filter(
            status=RunRequest.Status.PENDING, cause=ExecutionRecord.Cause.BACKFILL
        )
        self.backfills_waiting = False
        claimed = []
        for job_id in pending.values_list("job_id", flat=True).distinct().order_by("job_id"):
            try:
                state = load_state(DjangoJob.objects.get(id=job_id).job_state)
            except UnreadableState as error:
                # One job nobody can read must not stop every other job's backfill.
                pending.filter(job_id=job_id).update(
                    status=RunRequest.Status.SKIPPED, claimed_at=now,
                    detail=f"The job's state cannot be read: {error}"[:255],
                )
                continue
            in_flight = DjangoJobExecution.objects.filter(
                Q(status=DjangoJobExecution.SENT)
                | Q(status=EXECUTION_QUEUED, record__cause__in=_QUEUED_AHEAD_OF_BACKFILLS),
                job_id=job_id,
            ).count()
            room = max(state.get("max_instances") or 1, 1) - in_flight
            batch = list(
                pending.filter(job_id=job_id)
                .select_for_update(skip_locked=True, of=("self",))
                .select_related("job")
                .order_by("run_time")[:max(room, 0) + 1]
            )
            self.backfills_waiting |= len(batch) > room
            for request in batch[:max(room, 0)]:
                claimed += self._claim_backfill(request, now)
        return claimed

    def _claim_backfill(self, request: RunRequest, now: datetime) -> list[ClaimedRun]:
        job = self._restore_or_none(request.job_id, request.job.job_state)
        request.claimed_at = now
        claimed = []
        if job is None:
            request.status = RunRequest.Status.SKIPPED
            request.detail = "The job's function cannot be imported."
        elif self._record_claimed_run(
            request.job_id, request.run_time, ExecutionRecord.Cause.BACKFILL
        ):
            request.status = RunRequest.Status.SUBMITTED
            # A backfilled run is late by design: its misfire grace time does not apply.
            job.misfire_grace_time = None
            claimed.append(ClaimedRun(job, [request.run_time], request))
        else:
            request.status = RunRequest.Status.SKIPPED
            request.detail = "That run time already ran."
        request.save(update_fields=["claimed_at", "status", "detail"])
        return claimed

    def _claim_run_requests(self, now: datetime) -> list[ClaimedRun]:
        """Claim pending run-now requests, inside the caller's claim transaction.

        A request older than RUN_REQUEST_TIMEOUT (by the database's clock: web hosts
        wrote `requested_at`) ends as expired instead: after a scheduler outage, an
        operator's "run now" of hours ago must not fire as if it were now.
        """
        timeout = app_settings.RUN_REQUEST_TIMEOUT
        requests = list(
            RunRequest.objects.select_for_update(skip_locked=True, of=("self",))
            .filter(status=RunRequest.Status.PENDING, cause=ExecutionRecord.Cause.RUN_NOW)
            .annotate(stale=ExpressionWrapper(
                Q(requested_at__lt=Now() - timedelta(seconds=timeout)),
                output_field=BooleanField(),
            ))
            .select_related("job")
            .order_by("id")
        )
        claimed = []
        for offset, request in enumerate(requests):
            request.claimed_at = now
            if request.stale:
                logger.warning("Run-now request #%d for %r expired unclaimed",
                               request.id, request.job_id)
                request.status = RunRequest.Status.EXPIRED
                request.detail = (
                    f"Expired: no scheduler claimed it within {timeout:g}s of the request."
                )
                request.save(update_fields=["claimed_at", "status", "detail"])
                continue
            job = self._restore_or_none(request.job_id, request.job.job_state)
            if job is None:
                request.status = RunRequest.Status.SKIPPED
                request.detail = "The job's function cannot be imported."
            else:
                # Executions are unique per (job, run time): requests claimed in
                # one pass get distinct run times a microsecond apart.
                request.run_time = now + timedelta(microseconds=offset)
                request.status = RunRequest.Status.SUBMITTED
                # This run's arguments, on top of the job's: this Job object is
                # restored for this run only.
                job.kwargs = {**job.kwargs, **(request.kwargs or {})}
                if self._record_claimed_run(
                    request.job_id, request.run_time, ExecutionRecord.Cause.RUN_NOW,
                    kwargs=request.kwargs,
                ):
                    claimed.append(ClaimedRun(job, [request.run_time], request))
            request.save(update_fields=["claimed_at", "run_time", "status", "detail"])
        return claimed

    def _record_claimed_runs(
        self, claimed: list[ClaimedRun], cause: str = ExecutionRecord.Cause.SCHEDULED
    ) -> list[ClaimedRun]:
        """Record (and, with `dispatch`, hand over) claimed runs in bulk; returns the
        claimed runs without the (job, run time) pairs that were already fired."""
        status = EXECUTION_QUEUED if self.dispatch else DjangoJobExecution.SENT
        runs = [(run.job.id, util.get_django_internal_datetime(run_time))
                for run in claimed for run_time in run.run_times]
        try:
            with transaction.atomic():
                _insert_executions(runs, status=status, cause=cause)
                outcomes.record_runs_due(runs)
        except IntegrityError:
            # Some (job, run time) was fired already (another scheduler's stale
            # claim): find which, one run at a time.
            for run in claimed:
                run.run_times = [time for time in run.run_times
                                 if self._record_claimed_run(run.job.id, time, cause)]
            return [run for run in claimed if run.run_times]
        if self.dispatch is not None:
            _hand_over(self.dispatch, [(run.job.id, run_time)
                                       for run in claimed for run_time in run.run_times])
        return claimed

    def _record_claimed_run(
        self,
        job_id: str,
        run_time: datetime,
        cause: str = ExecutionRecord.Cause.SCHEDULED,
        *,
        kwargs: dict[str, Any] | None = None,
    ) -> bool:
        """Record (and, with `dispatch`, hand over) a claimed run; False if that
        (job, run time) was already fired."""
        try:
            with transaction.atomic():
                execution = DjangoJobExecution.objects.create(
                    job_id=job_id,
                    run_time=util.get_django_internal_datetime(run_time),
                    status=EXECUTION_QUEUED if self.dispatch else DjangoJobExecution.SENT,
                )
                ExecutionRecord.objects.create(execution=execution, cause=cause, kwargs=kwargs)
                outcomes.record_runs_due([(job_id, run_time)])
        except IntegrityError:
            logger.warning("Run of %r at %s was already fired; not firing it again",
                           job_id, run_time)
            return False
        if self.dispatch is not None:
            _hand_over(self.dispatch, [(job_id, run_time)])
        return True


# Queued runs a backfill waits behind, in tasks mode: run-now runs take their turn at
# once, as in the scheduler's own executor; scheduled runs yield to backfilled ones.
_QUEUED_AHEAD_OF_BACKFILLS = (ExecutionRecord.Cause.BACKFILL, ExecutionRecord.Cause.RUN_NOW)


def _hand_over(dispatch: Callable[[str, datetime], None], runs: list[tuple[str, datetime]]) -> None:
    """Dispatch claimed runs, inside the claim; a run the task backend refuses is
    recorded as an error with the reason, and the others go.

    All at once in one savepoint first; on an error, one savepoint per run, to
    find which. A lost connection is the pass's error, not the runs': it is raised,
    and the pass is retried. A backend outside the database may have taken a run
    before the error: it is dispatched again, and its worker finds it started.
    """
    if not runs:
        return
    try:
        with transaction.atomic():
            for job_id, run_time in runs:
                dispatch(job_id, run_time)
        return
    except (OperationalError, InterfaceError):
        raise
    except Exception as error:
        logger.warning("The task backend refused a run (%s); dispatching one run at a time",
                       error)
    refused = []
    for job_id, run_time in runs:
        try:
            with transaction.atomic():
                dispatch(job_id, run_time)
        except (OperationalError, InterfaceError):
            raise
        except Exception as error:
            logger.exception("The task backend refused the run of job %r at %s", job_id, run_time)
            execution = DjangoJobExecution.objects.filter(
                job_id=job_id, run_time=util.get_django_internal_datetime(run_time)
            )
            refused += execution.values_list("id", flat=True)
            execution.update(
                status=DjangoJobExecution.ERROR,
                finished=timezone.now().timestamp(),
                exception=f"Not queued: the task backend refused it: "
                f"{type(error).__name__}: {error}"[:1000],
            )
    outcomes.record_outcomes(execution_ids=refused)


@dataclass
class _Advance:
    """One claimed row: its new state and the runs it is due for (`job` None: broken)."""

    job_id: str
    state: dict[str, Any]
    job_state: bytes
    run_times: list[datetime]
    job: Job | None
    # Missed runs skipped before the first of `run_times` (catch-up after a downtime).
    skipped: int = 0


def _record_skipped_runs(advanced: list[_Advance]) -> None:
    """Say on each job's first catch-up run how many missed runs were skipped before it.

    A statement per job that was behind (rare: after a downtime); the bulk insert of
    the runs writes every record with the model defaults.
    """
    for claim in advanced:
        ExecutionRecord.objects.filter(
            execution__job_id=claim.job_id,
            execution__run_time=util.get_django_internal_datetime(claim.run_times[0]),
        ).update(skipped_runs=claim.skipped)


def _write_next_run_times(advanced: list[_Advance]) -> None:
    """Write the claimed rows' new states back, in one statement on PostgreSQL."""
    bulk.update_rows(DjangoJob, ["job_state", "next_run_time"], (
        [claim.job_id, claim.job_state,
         util.get_django_internal_datetime(claim.state["next_run_time"])]
        for claim in advanced
    ))


def _insert_executions(runs: list[tuple[str, datetime]], *, status: str, cause: str) -> None:
    """Insert an execution and its `ExecutionRecord` for each (job id, run time).

    Raises IntegrityError, inserting nothing, if any of them was fired already.
    """
    if not runs:
        return
    if connection.vendor != "postgresql":
        executions = [DjangoJobExecution(job_id=job_id, run_time=run_time, status=status)
                      for job_id, run_time in runs]
        DjangoJobExecution.objects.bulk_create(executions)
        ExecutionRecord.objects.bulk_create(
            ExecutionRecord(execution=execution, cause=cause) for execution in executions
        )
        return
    # One statement for both tables (bulk_create built two model instances and
    # compiled every value of each run); every other record column gets its default.
    columns, defaults = bulk.column_defaults(ExecutionRecord, besides=("execution_id", "cause"))
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            WITH inserted AS (
                INSERT INTO {DjangoJobExecution._meta.db_table} (job_id, run_time, status)
                SELECT job_id, run_time, %s
                FROM unnest(%s::text[], %s::timestamptz[]) AS run (job_id, run_time)
                RETURNING id
            )
            INSERT INTO {ExecutionRecord._meta.db_table} (execution_id, cause, {columns})
            SELECT id, %s, {", ".join(["%s"] * len(defaults))} FROM inserted
            """,
            [status, [job_id for job_id, _ in runs], [run_time for _, run_time in runs],
             cause, *defaults],
        )


def give_back_claimed_runs(runs: list[tuple[str, datetime]]) -> None:
    """Undo the claims of (job id, run time) runs that never started, as if they had
    not been claimed: their records go, and so does the overdue window they opened.
    A job due again at such a time is claimed again by the next pass."""
    with transaction.atomic():
        for job_id, run_time in runs:
            DjangoJobExecution.objects.filter(
                job_id=job_id, run_time=util.get_django_internal_datetime(run_time),
                status=DjangoJobExecution.SENT,
            ).delete()
        outcomes.forget_runs_due(runs)


def _record_broken_runs(job_id: str, func_ref: str, run_times: list[datetime]) -> None:
    """Record the runs a broken job missed, so its history shows why nothing ran."""
    recorded = []
    for run_time in run_times:
        execution, created = DjangoJobExecution.objects.get_or_create(
            job_id=job_id,
            run_time=util.get_django_internal_datetime(run_time),
            defaults={
                "status": DjangoJobExecution.ERROR,
                "exception": f"Not run: the function {func_ref!r} cannot be imported.",
            },
        )
        if created:
            recorded.append(execution.id)
    outcomes.record_outcomes(execution_ids=recorded)
