"""
The only functions that change job state.

Each change is one transaction (promise 2): lock the job row with
`select_for_update`, check the caller's expected version, build and validate the
new state, write the row, bump the version, write the audit record and queue the
notification. Any exception on the way rolls every part back. The API, the admin
and the commands call these and nothing else, so the three front doors behave alike.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from apscheduler.job import Job
from apscheduler.util import ref_to_obj
from django.db import DatabaseError, IntegrityError, InterfaceError, transaction
from django.db.models import QuerySet
from django.db.models.functions import Now
from django.utils import timezone
from django_apscheduler.models import DjangoJob, DjangoJobExecution

from scheduler_app import alerts, binding, notifications, outcomes, selectors, triggers
from scheduler_app.bulk import insert_rows
from scheduler_app.conf import app_settings
from scheduler_app.definitions import JobDefinition
from scheduler_app.exceptions import (
    InvalidInput,
    JobAlreadyExists,
    JobBroken,
    JobNotFound,
    JobStateConflict,
    SchedulerError,
    VersionConflict,
)
from scheduler_app.models import (
    ExecutionRecord,
    JobChange,
    JobRecord,
    RunRequest,
    SchedulerProcess,
    Source,
)
from scheduler_app.policy import POLICY_FIELDS, policy_of, validate_policy
from scheduler_app.registry import JobDeclaration, registry
from scheduler_app.state import (
    UnreadableState,
    dump_state,
    isoformat,
    json_value,
    load_state,
    record_mirror,
)
from scheduler_app.validation import validate_name

logger = logging.getLogger(__name__)

# Who the audit trail names for what the scheduler process does by itself.
SCHEDULER_ACTOR = "scheduler"


@dataclass(frozen=True)
class ChangeOutcome:
    """The job after a change request, and whether anything changed."""

    job: selectors.JobView
    changed: bool
    message: str


@dataclass
class SyncReport:
    """What syncing the code registry into the store did."""

    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    orphaned: list[str] = field(default_factory=list)
    broken: list[str] = field(default_factory=list)


@dataclass
class _LockedJob:
    """A job row locked for update, with its record and unpickled state."""

    row: DjangoJob
    record: JobRecord
    state: dict[str, Any]
    before: dict[str, Any]


def reschedule_job(
    *,
    job_id: str,
    trigger_spec: Mapping[str, Any],
    actor: str,
    source: str,
    expected_version: int | None = None,
) -> ChangeOutcome:
    """Give a job a new schedule; a paused job stays paused."""
    with transaction.atomic():
        job, _ = _prepare_reschedule(job_id, trigger_spec, expected_version)
        return _commit(job, JobChange.Action.RESCHEDULED, actor, source, "Job rescheduled.")


@dataclass(frozen=True)
class ReschedulePreview:
    """What a reschedule would do: the job as it is, and the new schedule's trigger."""

    job: selectors.JobView
    trigger: Any


def preview_reschedule(
    *, job_id: str, trigger_spec: Mapping[str, Any], expected_version: int | None = None
) -> ReschedulePreview:
    """Check everything `reschedule_job` checks and change nothing (dry runs)."""
    with transaction.atomic():
        job, trigger = _prepare_reschedule(job_id, trigger_spec, expected_version)
        # The new state was only built in memory; the view shows the stored one.
        return ReschedulePreview(job=selectors.locked_job_view(job.row), trigger=trigger)


def _prepare_reschedule(
    job_id: str, trigger_spec: Mapping[str, Any], expected_version: int | None
) -> tuple[_LockedJob, Any]:
    """Lock and check the job, and build its new state in memory (nothing written)."""
    job = _lock_job(job_id, expected_version)
    _refuse_if_broken(job)
    trigger = triggers.build_trigger(trigger_spec, timezone=app_settings.timezone)
    _set_trigger(job, trigger)
    return job, trigger


def pause_job(
    *,
    job_id: str,
    actor: str,
    source: str,
    expected_version: int | None = None,
    reason: str | None = None,
    until: datetime | None = None,
) -> ChangeOutcome:
    """Stop a job from running: no run starts after this commits.

    `reason` is the operator's note; at `until` (a future, aware date-time) the
    scheduler resumes the job. Pausing a paused job changes nothing, unless a new
    reason or end is given: then those are updated.
    """
    reason = _pause_reason(reason)
    if until is not None:
        _check_pause_end(until)
    with transaction.atomic():
        job = _lock_job(job_id, expected_version)
        record = job.record
        if job.row.next_run_time is None:
            if (reason is None and until is None) or (
                (reason, until) == (record.paused_reason, record.paused_until)
            ):
                return _unchanged(job, "Job is already paused.")
            message = "Job was already paused; its pause reason and end were updated."
        else:
            job.state["next_run_time"] = None
            record.paused_by, record.paused_at = actor, timezone.now()
            message = "Job paused."
        record.paused_reason, record.paused_until = reason, until
        return _commit(job, JobChange.Action.PAUSED, actor, source, message)


def _pause_reason(reason: str | None) -> str | None:
    if reason is None:
        return None
    if not isinstance(reason, str):
        raise InvalidInput("must be text.", field="reason")
    reason = " ".join(reason.split())
    limit = JobRecord._meta.get_field("paused_reason").max_length
    if len(reason) > limit:
        raise InvalidInput(f"must be at most {limit} characters.", field="reason")
    return reason or None


def _check_pause_end(until: datetime) -> None:
    if until.tzinfo is None:
        raise InvalidInput("must have a time zone offset.", field="until")
    if until <= timezone.now():
        raise InvalidInput("must be in the future.", field="until")


def resume_job(
    *, job_id: str, actor: str, source: str, expected_version: int | None = None
) -> ChangeOutcome:
    """Let a paused job run again from its next fire time after now. Idempotent."""
    with transaction.atomic():
        job = _lock_job(job_id, expected_version)
        if job.row.next_run_time is not None:
            return _unchanged(job, "Job is already running on its schedule.")
        _resume(job)
        return _commit(job, JobChange.Action.RESUMED, actor, source, "Job resumed.")


def _resume(job: _LockedJob) -> None:
    """Re-arm a locked, paused job and clear its pause note (nothing written yet)."""
    _refuse_if_broken(job)
    next_run_time = _first_fire_time(job.state["trigger"])
    if next_run_time is None:
        raise JobStateConflict(
            f"Job {job.row.id!r} cannot be resumed: its schedule has no future run "
            "(reschedule it first)."
        )
    job.state["next_run_time"] = next_run_time
    _clear_pause(job.record)


def _clear_pause(record: JobRecord) -> None:
    record.paused_reason = record.paused_by = record.paused_at = record.paused_until = None


def resume_jobs_due(*, now: datetime | None = None) -> list[str]:
    """Resume the paused jobs whose `paused_until` has come (the scheduler calls this).

    A job that cannot run again (broken, or a schedule with no future run) stays
    paused; its end is cleared, with the reason why, so it is not retried every pass.
    Returns the ids of the jobs resumed.
    """
    now = now or timezone.now()
    resumed = []
    for job_id in selectors.jobs_due_to_resume(now=now):
        with transaction.atomic():
            try:
                job = _lock_job(job_id, None)
            except (JobNotFound, JobBroken):
                continue  # deleted meanwhile, or unreadable: nothing to resume
            record = job.record
            if job.row.next_run_time is not None or record.paused_until is None:
                continue  # resumed or re-paused by someone else meanwhile
            if record.paused_until > now:
                continue
            try:
                _resume(job)
            except JobStateConflict as error:
                record.paused_reason = _pause_reason(
                    f"Not resumed at {record.paused_until.isoformat()}: {error.message}"
                )
                record.paused_until = None
                _commit(job, JobChange.Action.PAUSED, SCHEDULER_ACTOR, Source.SCHEDULER,
                        record.paused_reason)
                logger.warning("Job %r stays paused: %s", job_id, error.message)
                continue
            _commit(job, JobChange.Action.RESUMED, SCHEDULER_ACTOR, Source.SCHEDULER,
                    "Job resumed.")
            resumed.append(job_id)
    return resumed


def set_job_policy(
    *,
    job_id: str,
    policy: Mapping[str, Any],
    actor: str,
    source: str,
    expected_version: int | None = None,
) -> ChangeOutcome:
    """Change any of a job's run policy fields (`scheduler_app.policy`)."""
    changes = validate_policy(policy)
    with transaction.atomic():
        job = _lock_job(job_id, expected_version)
        if all(_policy(job)[name] == value for name, value in changes.items()):
            return _unchanged(job, "Run policy unchanged.")
        _apply_policy(job, changes)
        return _commit(
            job, JobChange.Action.POLICY_CHANGED, actor, source, "Run policy changed."
        )


def _policy(job: _LockedJob) -> dict[str, Any]:
    return policy_of(
        job.state,
        pause_after_failures=job.record.pause_after_failures,
        alert_after=job.record.alert_after,
    )


def _apply_policy(job: _LockedJob, policy: Mapping[str, Any]) -> None:
    for name, value in policy.items():
        if name in ("pause_after_failures", "alert_after"):
            setattr(job.record, name, value)
        else:
            job.state[name] = value


def revert_job(
    *,
    job_id: str,
    version: int,
    actor: str,
    source: str,
    expected_version: int | None = None,
) -> ChangeOutcome:
    """Give a job back the schedule, run policy and paused state it had right after
    `version`, as read from the audit trail; the result is a new version."""
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise InvalidInput("must be a version number of at least 1.", field="version")
    with transaction.atomic():
        job = _lock_job(job_id, expected_version)
        _refuse_if_broken(job)
        target = (
            JobChange.objects.filter(job_id=job_id, version=version, after__isnull=False)
            .exclude(action=JobChange.Action.RUN_REQUESTED)
            .order_by("-id")
            .values_list("after", flat=True)
            .first()
        )
        if target is None:
            raise JobStateConflict(
                f"The audit trail of job {job_id!r} no longer holds version {version}: "
                "there is nothing to revert to."
            )
        _restore(job, target, actor=actor)
        message = f"Reverted to version {version}"
        return _commit(job, JobChange.Action.REVERTED, actor, source, message)


def _restore(job: _LockedJob, summary: Mapping[str, Any], *, actor: str) -> None:
    """Put a locked job in the state an audit summary describes (nothing written yet).

    Summaries written before run policies and pause notes existed hold only the
    schedule and the paused state: the rest is left as it is.
    """
    trigger = triggers.build_trigger(
        {"trigger": summary["trigger"], "trigger_args": summary["trigger_args"]},
        timezone=app_settings.timezone,
        allow_past=True,
    )
    job.state["trigger"] = trigger
    _apply_policy(job, {name: summary[name] for name in POLICY_FIELDS if name in summary})
    record = job.record
    if summary.get("enabled"):
        next_run_time = _first_fire_time(trigger)
        if next_run_time is None:
            raise JobStateConflict(
                f"Job {job.row.id!r} ran on that schedule, which has no future run now: "
                "reschedule it instead."
            )
        job.state["next_run_time"] = next_run_time
        _clear_pause(record)
        return
    if job.row.next_run_time is not None:
        # Running now: the revert is what pauses it.
        record.paused_by, record.paused_at = actor, timezone.now()
    job.state["next_run_time"] = None
    record.paused_reason = summary.get("paused_reason")
    until = summary.get("paused_until")
    record.paused_until = datetime.fromisoformat(until) if until else None


def record_run_outcome(*, job_id: str, failed: bool) -> None:
    """Count a finished run toward `pause_after_failures`, in the transaction that
    records its outcome.

    A success resets the count. The failure that reaches the job's limit pauses it,
    in this same transaction: the scheduler never starts a run that a recorded
    failure should have prevented.
    """
    record_run_outcomes(outcomes=[(job_id, failed)])


def record_run_outcomes(*, outcomes: Sequence[tuple[str, bool]]) -> None:
    """`record_run_outcome` for a batch of (job id, failed) in the order the runs ended.

    The scheduler's recorder writes many outcomes per transaction: the jobs whose
    runs in the batch all succeeded are reset in one statement; a job with a failure
    among them has its runs counted one by one, in order, as if recorded singly.
    """
    failing = {job_id for job_id, failed in outcomes if failed}
    succeeded_only = {job_id for job_id, _ in outcomes} - failing
    if succeeded_only:
        # One statement, a no-op for the usual job that did not fail last time.
        JobRecord.objects.filter(job_id__in=succeeded_only, consecutive_failures__gt=0).update(
            consecutive_failures=0
        )
    for job_id, failed in outcomes:
        if job_id in failing:
            _count_run_outcome(job_id, failed)


def _count_run_outcome(job_id: str, failed: bool) -> None:
    if not failed:
        # One statement, a no-op for the usual job that did not fail last time.
        JobRecord.objects.filter(job_id=job_id, consecutive_failures__gt=0).update(
            consecutive_failures=0
        )
        return
    try:
        job = _lock_job(job_id, None)
    except (JobNotFound, JobBroken):
        return  # deleted meanwhile, or a state nobody can read: nothing to count on
    record = job.record
    record.consecutive_failures += 1
    limit = record.pause_after_failures
    if limit is None or record.consecutive_failures < limit or job.row.next_run_time is None:
        record.save(update_fields=["consecutive_failures"])
        return
    _auto_pause(job, limit)


def _auto_pause(job: _LockedJob, limit: int) -> None:
    """Pause a job whose `limit`-th run in a row just failed (the one place it happens)."""
    job.state["next_run_time"] = None
    record = job.record
    record.paused_reason = f"Paused after {limit} consecutive failures"
    record.paused_by, record.paused_at, record.paused_until = (
        SCHEDULER_ACTOR, timezone.now(), None,
    )
    _commit(job, JobChange.Action.PAUSED, SCHEDULER_ACTOR, Source.SCHEDULER,
            record.paused_reason)
    logger.warning("Job %r: %s", job.row.id, record.paused_reason)
    alerts.raise_alert(
        event="job_auto_paused",
        job_id=job.row.id,
        message=f"Job {job.row.id!r} was paused after {limit} consecutive failed runs; "
        "resume it once the cause is fixed.",
    )


def reset_job(
    *, job_id: str, actor: str, source: str, expected_version: int | None = None
) -> ChangeOutcome:
    """Put a job's schedule, arguments and run policy back to its code default; paused
    stays paused."""
    with transaction.atomic():
        job = _lock_job(job_id, expected_version)
        declaration = registry.get(job_id)
        if job.record.origin == JobRecord.Origin.RUNTIME:
            raise JobStateConflict(
                f"Job {job_id!r} was created at runtime: it has no code default to reset to."
            )
        if declaration is None:
            raise JobStateConflict(
                f"Job {job_id!r} is no longer declared in code: it has no default to reset to."
            )
        trigger = triggers.build_trigger(
            declaration.trigger_spec, timezone=app_settings.timezone, allow_past=True
        )
        arguments_changed = (
            list(job.state["args"]) != list(declaration.args)
            or dict(job.state["kwargs"]) != declaration.kwargs
            or _policy(job) != declaration.policy
        )
        if not arguments_changed and triggers.is_same_schedule(
            job.state["trigger"], declaration.trigger_spec, timezone=app_settings.timezone
        ):
            return _unchanged(job, "Job already has its code default schedule.")
        job.state["args"] = tuple(declaration.args)
        job.state["kwargs"] = dict(declaration.kwargs)
        _apply_policy(job, declaration.policy)
        _set_trigger(job, trigger)
        return _commit(job, JobChange.Action.RESET, actor, source, "Job reset to its code default.")


def pause_unschedulable_job(*, job_id: str, reason: str) -> bool:
    """The scheduler's own pause of a job it cannot schedule (its state cannot be read,
    its trigger fails); False if the job is gone or already paused.

    Audited like any pause (actor "scheduler", the reason in the record) and it bumps
    the version, so a client holding the old version cannot undo it unknowingly.
    Called inside the scheduler's claim transaction, which already holds the row.
    """
    with transaction.atomic():
        row = DjangoJob.objects.select_for_update().filter(id=job_id).first()
        if row is None or row.next_run_time is None:
            return False
        try:
            state = load_state(row.job_state)
        except UnreadableState:
            state = None
        record, _ = JobRecord.objects.get_or_create(
            job=row, defaults={"name": _text_or_id(state, job_id)}
        )
        before = {"enabled": True, "next_run_time": isoformat(row.next_run_time)}
        if state is not None:
            try:
                before = _summary(state, record)
                state["next_run_time"] = None
                row.job_state = dump_state(state)
            except Exception:  # a state that fails anywhere: the row's column alone pauses it
                pass
        row.next_run_time = None
        row.save(update_fields=["job_state", "next_run_time"])
        record.version += 1
        record.updated_at = record.paused_at = timezone.now()
        record.paused_reason = f"Paused by the scheduler: {reason}"[:500]
        record.paused_by, record.paused_until = SCHEDULER_ACTOR, None
        # A state the scheduler could not use: readers judge it by reading it.
        record.func_ref = record.schedule = None
        record.save(update_fields=[
            "version", "updated_at", "paused_reason", "paused_by", "paused_at", "paused_until",
            "func_ref", "schedule",
        ])
        JobChange.objects.create(
            job_id=job_id,
            version=record.version,
            action=JobChange.Action.PAUSED,
            actor=SCHEDULER_ACTOR,
            source=Source.SCHEDULER,
            before=before,
            after={**before, "enabled": False, "next_run_time": None, "reason": reason[:500]},
        )
        notifications.notify_change(job_id)
        return True


def _text_or_id(state: dict[str, Any] | None, job_id: str) -> str:
    name = state.get("name") if state else None
    return name[:255] if isinstance(name, str) and name else job_id[:255]


def request_job_run(
    *,
    job_id: str,
    actor: str,
    source: str,
    expected_version: int | None = None,
    kwargs: Mapping[str, Any] | None = None,
) -> RunRequest:
    """Ask the scheduler process to run a job once, now.

    `kwargs` are keyword arguments for this run only, on top of the job's own: JSON
    values, bound against the function's signature here, before anything is stored.
    The schedule, the stored arguments and the paused state do not move, so the
    version does not either; the request is in the audit trail.
    """
    with transaction.atomic():
        job = _lock_job(job_id, expected_version)
        _refuse_if_broken(job)
        if kwargs is not None:
            kwargs = binding.bind_kwargs(
                ref_to_obj(job.state["func"]),
                kwargs,
                args=job.state["args"],
                defaults=job.state["kwargs"],
            )
        run_request = RunRequest.objects.create(
            job=job.row, requested_by=actor, source=source, kwargs=kwargs or None
        )
        after = {**job.before, "run_request": run_request.id}
        if kwargs:
            after["run_kwargs"] = kwargs
        JobChange.objects.create(
            job_id=job_id,
            version=job.record.version,
            action=JobChange.Action.RUN_REQUESTED,
            actor=actor,
            source=source,
            before=job.before,
            after=after,
        )
        notifications.notify_change(job_id)
        return run_request


@dataclass(frozen=True)
class BackfillOutcome:
    """What a backfill queued: the runs new to the job, and those it already had."""

    job_id: str
    start: datetime
    end: datetime
    queued: list[datetime]
    already_there: list[datetime]
    dry_run: bool


def backfill_job(
    *,
    job_id: str,
    start: datetime,
    end: datetime,
    actor: str,
    source: str,
    expected_version: int | None = None,
    dry_run: bool = False,
) -> BackfillOutcome:
    """Queue, for the scheduler, every run the job's current schedule would have made
    from `start` to `end` (inclusive).

    Each run is recorded under its scheduled time, and a (job, run time) is recorded
    once: a time that already ran, or that another backfill queued, is counted as
    already there, not queued again. Works on a paused job, which stays paused; the
    version does not move (the schedule does not), the request is in the audit trail.
    """
    for name, moment in (("start", start), ("end", end)):
        if moment.tzinfo is None:
            raise InvalidInput("must have a time zone offset.", field=name)
    if end < start:
        raise InvalidInput("must not be before start.", field="end")
    if end > timezone.now():
        raise InvalidInput(
            "must not be in the future: a backfill makes up for runs that did not happen.",
            field="end",
        )
    limit = app_settings.BACKFILL_LIMIT
    with transaction.atomic():
        job = _lock_job(job_id, expected_version)
        _refuse_if_broken(job)
        run_times = triggers.fire_times_between(
            job.state["trigger"], start=start, end=end, limit=limit
        )
        if len(run_times) > limit:
            raise InvalidInput(
                f"the range holds more than {limit} runs (SCHEDULER_APP['BACKFILL_LIMIT']): "
                "backfill a shorter one.",
                field="end",
            )
        taken = _recorded_or_queued(job_id, run_times)
        queued = [moment for moment in run_times if moment not in taken]
        outcome = BackfillOutcome(
            job_id=job_id, start=start, end=end, queued=queued,
            already_there=[moment for moment in run_times if moment in taken], dry_run=dry_run,
        )
        if dry_run:
            return outcome
        RunRequest.objects.bulk_create(
            RunRequest(job=job.row, requested_by=actor, source=source, run_time=moment,
                       cause=ExecutionRecord.Cause.BACKFILL)
            for moment in queued
        )
        JobChange.objects.create(
            job_id=job_id,
            version=job.record.version,
            action=JobChange.Action.BACKFILL_REQUESTED,
            actor=actor,
            source=source,
            before=job.before,
            after={**job.before, "backfill": {
                "start": start.isoformat(), "end": end.isoformat(),
                "queued": len(queued), "already_there": len(outcome.already_there),
            }},
            message=f"Backfill of {len(queued)} run(s) from {start.isoformat()} to "
            f"{end.isoformat()}"[:255],
        )
        notifications.notify_change(job_id)
        return outcome


def _recorded_or_queued(job_id: str, run_times: list[datetime]) -> set[datetime]:
    """The run times of a job that ran already or that a backfill has queued."""
    recorded = DjangoJobExecution.objects.filter(job_id=job_id, run_time__in=run_times)
    queued = RunRequest.objects.filter(
        job_id=job_id,
        cause=ExecutionRecord.Cause.BACKFILL,
        run_time__in=run_times,
    ).exclude(status=RunRequest.Status.SKIPPED)
    return {
        *recorded.values_list("run_time", flat=True),
        *queued.values_list("run_time", flat=True),
    }


def create_job(*, definition: Mapping[str, Any], actor: str, source: str) -> ChangeOutcome:
    """Create a job at runtime from a definition (`scheduler_app.definitions`).

    Its function must be registered with `@job_function` (or be a declared job's);
    an id in the store or declared in code is a `JobAlreadyExists`. The id of a
    deleted job may be used again: the new job continues its history.
    """
    job = JobDefinition.from_json(definition)
    with transaction.atomic():
        tombstones = _lock_for_creation([job.id])
        _store_new_jobs([_NewJob.of_definition(job)], actor=actor, source=source,
                        tombstones=tombstones)
        row = DjangoJob.objects.select_related("record").get(id=job.id)
        return ChangeOutcome(job=selectors.locked_job_view(row), changed=True,
                             message="Job created.")


def update_job(
    *,
    job_id: str,
    changes: Mapping[str, Any],
    actor: str,
    source: str,
    expected_version: int | None = None,
) -> ChangeOutcome:
    """Change the `name` and `kwargs` of a job created at runtime.

    Schedule and run policy have their own services; a job declared in code owns
    its name and arguments in code.
    """
    unknown = sorted(str(key) for key in changes if key not in ("name", "kwargs"))
    if unknown:
        raise InvalidInput("only name and kwargs can be changed here (the schedule has "
                           "its own endpoint).", field=unknown[0])
    with transaction.atomic():
        job = _lock_job(job_id, expected_version)
        _refuse_if_declared_in_code(job, "its name and arguments are set in jobs.py")
        if "name" in changes:
            job.state["name"] = validate_name(changes["name"])
        if "kwargs" in changes:
            function = registry.get_function(job.record.function)
            if function is None:
                raise JobBroken(job_id, job.state["func"])
            job.state["kwargs"] = binding.bind_kwargs(function.func, changes["kwargs"])
        if _summary(job.state, job.record) == job.before:
            return _unchanged(job, "Job already has that name and those arguments.")
        return _commit(job, JobChange.Action.UPDATED, actor, source, "Job updated.")


def delete_job(
    *, job_id: str, actor: str, source: str, expected_version: int | None = None
) -> ChangeOutcome:
    """Delete a job created at runtime (or one no longer declared in code).

    The row stays as a paused tombstone, so the job's execution history (which
    references it) and its audit trail stay readable; every read but history
    treats it as gone, and no run starts after this commits. Pending run-now
    requests are skipped.
    """
    with transaction.atomic():
        job = _lock_job(job_id, expected_version)
        _refuse_if_declared_in_code(job, "remove it from jobs.py")
        job.state["next_run_time"] = None
        job.record.deleted_at = timezone.now()
        RunRequest.objects.filter(job_id=job_id, status=RunRequest.Status.PENDING).update(
            status=RunRequest.Status.SKIPPED, detail="The job was deleted."
        )
        return _commit(job, JobChange.Action.DELETED, actor, source, "Job deleted.")


@dataclass
class ImportReport:
    """What importing job definitions did, by job id."""

    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)


class InvalidImportLine(SchedulerError):
    """One definition of an import batch is refused: nothing of its batch was written."""

    def __init__(self, line: int, error: SchedulerError) -> None:
        self.line = line
        self.error = error
        super().__init__(f"line {line}: {error.message}")


def import_jobs(
    *,
    definitions: list[tuple[int, Mapping[str, Any]]],
    actor: str,
    source: str,
    trigger_builder: triggers.TriggerBuilder | None = None,
) -> ImportReport:
    """Create or update runtime jobs from (line number, definition) pairs, in one transaction.

    Idempotent by id: a new id is created, a runtime job with a different
    definition is updated (schedule, arguments, name and policy, as one audited
    change), an identical one is left alone. Any refused definition raises
    `InvalidImportLine` with its line number, and nothing of the batch is written.
    The batches of one import share a `trigger_builder` (each distinct schedule
    is then built once).
    """
    report = ImportReport()
    checked: dict[str, tuple[int, JobDefinition]] = {}
    trigger_builder = trigger_builder or triggers.TriggerBuilder(timezone=app_settings.timezone)
    for line, data in definitions:
        try:
            job = JobDefinition.from_json(data, trigger_builder=trigger_builder)
        except SchedulerError as error:
            raise InvalidImportLine(line, error) from None
        if job.id in checked:
            raise InvalidImportLine(line, JobAlreadyExists(
                job.id, f"line {checked[job.id][0]} defines it already"))
        checked[job.id] = (line, job)
    with transaction.atomic():
        existing = {
            row.id: row for row in DjangoJob.objects.select_for_update()
            .filter(id__in=list(checked)).order_by("id")
        }
        records = {record.job_id: record
                   for record in JobRecord.objects.filter(job_id__in=list(existing))}
        new, tombstones = [], {}
        for job_id, (line, job) in checked.items():
            row, record = existing.get(job_id), records.get(job_id)
            if row is None or (record is not None and record.deleted_at is not None):
                if registry.get(job_id) is not None:
                    declared = JobAlreadyExists(job_id, "it is declared in code")
                    raise InvalidImportLine(line, declared)
                if row is not None:
                    tombstones[job_id] = row
                new.append(_NewJob.of_definition(job))
                report.created.append(job_id)
                continue
            try:
                changed = _update_from_definition(row, record, job, actor, source)
            except SchedulerError as error:
                raise InvalidImportLine(line, error) from None
            (report.updated if changed else report.unchanged).append(job_id)
        _store_new_jobs(new, actor=actor, source=source, tombstones=tombstones)
    return report


def _update_from_definition(
    row: DjangoJob, record: JobRecord | None, job: JobDefinition, actor: str, source: str
) -> bool:
    """Bring a stored runtime job in line with a definition; whether anything changed."""
    row.record = record
    if record is None or record.origin != JobRecord.Origin.RUNTIME:
        raise JobAlreadyExists(job.id, "it is declared in code")
    try:
        state = load_state(row.job_state)
    except UnreadableState:
        raise JobBroken(job.id, "<unreadable job state>") from None
    wanted = {
        "func": job.function.func_ref,
        "name": job.name,
        "kwargs": job.kwargs,
        "max_instances": job.max_instances,
        "coalesce": job.coalesce,
        "misfire_grace_time": job.misfire_grace_time,
    }
    same_schedule = triggers.is_same_schedule(
        state["trigger"], job.trigger_spec, timezone=app_settings.timezone, built=job.trigger
    )
    if (
        same_schedule
        and record.function == job.function.name
        and record.pause_after_failures == job.pause_after_failures
        and all(state.get(key) == value for key, value in wanted.items())
    ):
        return False
    # The audit's "before", worked out only for a job that changes (most lines of a
    # re-import change nothing).
    locked = _LockedJob(row=row, record=record, state=state, before=_summary(state, record))
    state.update(wanted)
    record.function = job.function.name
    record.pause_after_failures = job.pause_after_failures
    if not same_schedule:
        _set_trigger(locked, job.trigger)
    _write(locked, JobChange.Action.UPDATED, actor, source, "Job updated by an import.")
    return True


def _lock_for_creation(job_ids: list[str]) -> dict[str, DjangoJob]:
    """Refuse ids in use or declared in code; lock and return the rows of deleted jobs."""
    tombstones = {}
    for job_id in job_ids:
        if registry.get(job_id) is not None:
            raise JobAlreadyExists(job_id, "it is declared in code")
        tombstone = _lock_deleted_job(job_id, refuse_live=True)
        if tombstone is not None:
            tombstones[job_id] = tombstone
    return tombstones


def _lock_deleted_job(job_id: str, *, refuse_live: bool) -> DjangoJob | None:
    """The locked row of a deleted job under this id; None when there is no row (or a
    live one and not `refuse_live`)."""
    row = DjangoJob.objects.select_for_update().filter(id=job_id).first()
    if row is None:
        return None
    if JobRecord.objects.filter(job_id=job_id, deleted_at__isnull=False).exists():
        return row
    if refuse_live:
        raise JobAlreadyExists(job_id)
    return None


def _refuse_if_declared_in_code(job: _LockedJob, remedy: str) -> None:
    if job.record.origin != JobRecord.Origin.RUNTIME and registry.get(job.row.id) is not None:
        raise JobStateConflict(f"Job {job.row.id!r} is declared in code: {remedy}.")


def sync_jobs_from_code(
    *, declarations: Iterable[JobDeclaration] | None = None, actor: str = SCHEDULER_ACTOR
) -> SyncReport:
    """Bring the store in line with code, the way a scheduler start does.

    Adds declared jobs that are new; for known jobs, updates only code-owned
    metadata and keeps the operator's schedule, arguments and paused state. Jobs
    no longer declared are reported as orphaned, never deleted.
    """
    declarations = list(registry if declarations is None else declarations)
    report = SyncReport()
    stored = _stored_states([declaration.id for declaration in declarations])
    for declaration in declarations:
        if _matches_code(stored.get(declaration.id), declaration):
            # Nothing to write: no transaction, no lock (a restart with 10,000
            # unchanged declared jobs took one transaction each, 24 s).
            report.unchanged.append(declaration.id)
            continue
        try:
            outcome = _sync_declaration(declaration, actor)
        except (DatabaseError, InterfaceError):
            raise  # the caller retries the whole sync
        except Exception as error:
            # A stored state this version cannot read (or use) must not stop the
            # scheduler from starting: the job is reported broken, the others run.
            logger.error("Not syncing job %r from code: %s", declaration.id, error)
            # Whatever its record says, readers must read this state to judge it.
            JobRecord.objects.filter(job_id=declaration.id).update(func_ref=None, schedule=None)
            outcome = "broken"
        getattr(report, outcome).append(declaration.id)
    declared = {declaration.id for declaration in registry}
    stored = selectors.code_job_ids()
    report.orphaned.extend(job_id for job_id in stored if job_id not in declared)
    report.broken.extend(
        job_id for job_id in selectors.broken_job_ids() if job_id not in report.broken
    )
    return report


def _stored_states(job_ids: list[str], chunk: int = 1000) -> dict[str, bytes]:
    """The stored states of these jobs, read in a few queries (SQLite caps parameters)."""
    states: dict[str, bytes] = {}
    for start in range(0, len(job_ids), chunk):
        states.update(DjangoJob.objects.filter(id__in=job_ids[start:start + chunk])
                      .values_list("id", "job_state"))
    return states


def _matches_code(job_state: bytes | None, declaration: JobDeclaration) -> bool:
    """Whether a stored job already has what its declaration owns (read without a lock:
    a job that looks changed is compared again under its row lock before any write)."""
    if job_state is None:
        return False
    try:
        state = load_state(job_state)
    except UnreadableState:
        return False
    return _has_code_owned_state(state, declaration)


def _has_code_owned_state(state: dict[str, Any], declaration: JobDeclaration) -> bool:
    return all(state.get(key) == value for key, value in _code_owned_state(declaration).items())


def _sync_declaration(declaration: JobDeclaration, actor: str) -> str:
    """Add or update one declared job; returns "added", "updated" or "unchanged".

    A job created at runtime under a declared id (before the declaration was
    deployed) stays the operator's: sync never touches runtime jobs.
    """
    try:
        with transaction.atomic():
            if not DjangoJob.objects.filter(id=declaration.id).exists():
                _add_declared_job(declaration, actor)
                return "added"
    except IntegrityError:
        # Another process added it between our look and our insert: update instead.
        pass
    with transaction.atomic():
        tombstone = _lock_deleted_job(declaration.id, refuse_live=False)
        if tombstone is not None:
            _add_declared_job(declaration, actor, tombstone=tombstone)
            return "added"
        job = _lock_job(declaration.id, None)
        if job.record.origin == JobRecord.Origin.RUNTIME:
            logger.warning("Job %r was created at runtime; its declaration in code is ignored",
                           declaration.id)
            return "unchanged"
        if _has_code_owned_state(job.state, declaration):
            return "unchanged"
        job.state.update(_code_owned_state(declaration))
        _commit(job, JobChange.Action.UPDATED_FROM_CODE, actor, "code", "")
        return "updated"


def _add_declared_job(
    declaration: JobDeclaration, actor: str, *, tombstone: DjangoJob | None = None
) -> None:
    trigger = triggers.build_trigger(
        declaration.trigger_spec, timezone=app_settings.timezone, allow_past=True
    )
    new = _NewJob(
        id=declaration.id,
        func=declaration.func,
        trigger=trigger,
        args=declaration.args,
        kwargs=dict(declaration.kwargs),
        name=declaration.name,
        misfire_grace_time=declaration.misfire_grace_time,
        coalesce=declaration.coalesce,
        max_instances=declaration.max_instances,
        pause_after_failures=declaration.pause_after_failures,
        alert_after=declaration.alert_after,
        origin=JobRecord.Origin.CODE,
        function="",
    )
    _store_new_jobs([new], actor=actor, source="code", tombstones={declaration.id: tombstone}
                    if tombstone is not None else {})


@dataclass(frozen=True)
class _NewJob:
    """What a new job row is made of, declared in code or created at runtime."""

    id: str
    func: Any
    trigger: Any
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    name: str
    misfire_grace_time: int | None
    coalesce: bool
    max_instances: int
    pause_after_failures: int | None
    origin: str
    function: str
    alert_after: int | None = None
    # The first run time, when worked out already (a definition's); else from now.
    first_run_time: datetime | None = None

    @classmethod
    def of_definition(cls, definition: JobDefinition) -> _NewJob:
        return cls(
            id=definition.id,
            func=definition.function.func,
            trigger=definition.trigger,
            args=(),
            kwargs=definition.kwargs,
            name=definition.name,
            misfire_grace_time=definition.misfire_grace_time,
            coalesce=definition.coalesce,
            max_instances=definition.max_instances,
            pause_after_failures=definition.pause_after_failures,
            origin=JobRecord.Origin.RUNTIME,
            function=definition.function.name,
            first_run_time=definition.first_run_time,
        )

    def state(self) -> dict[str, Any]:
        # APScheduler checks that the stored arguments fill every required parameter; a
        # `scheduled_time` parameter is filled by the scheduler at each run instead.
        placeholder = (
            {binding.SCHEDULED_TIME: None} if binding.takes_scheduled_time(self.func) else {}
        )
        job = Job(
            None,
            id=self.id,
            func=self.func,
            trigger=self.trigger,
            executor="default",
            args=self.args,
            kwargs={**self.kwargs, **placeholder},
            name=self.name,
            misfire_grace_time=self.misfire_grace_time,
            coalesce=self.coalesce,
            max_instances=self.max_instances,
        )
        job.kwargs = dict(self.kwargs)
        # Set directly, not through Job(): its conversion needs a running scheduler.
        job.next_run_time = self.first_run_time or _first_fire_time(self.trigger)
        return job.__getstate__()


def _store_new_jobs(
    jobs: list[_NewJob],
    *,
    actor: str,
    source: str,
    tombstones: Mapping[str, DjangoJob],
) -> None:
    """Insert new jobs (or refill the rows of deleted ones) with record and audit, in bulk.

    The caller holds the transaction, and the locks of the `tombstones` it refills.
    """
    rows, records, changes, refilled = [], [], [], []
    now = timezone.now()
    versions = dict(
        JobRecord.objects.filter(job_id__in=list(tombstones)).values_list("job_id", "version")
    )
    for new in jobs:
        state = new.state()
        row = DjangoJob(id=new.id, next_run_time=state["next_run_time"],
                        job_state=dump_state(state))
        version = versions.get(new.id, 0) + 1
        record = JobRecord(
            job=row, version=version, name=new.name, origin=new.origin, function=new.function,
            **record_mirror(state), updated_at=now, deleted_at=None,
            pause_after_failures=new.pause_after_failures, alert_after=new.alert_after,
        )
        (refilled if new.id in tombstones else rows).append(row)
        records.append(record)
        changes.append(JobChange(
            job_id=new.id, version=version, action=JobChange.Action.CREATED, actor=actor,
            source=source, before=None, after=_summary(state, record), created_at=now,
            message="Job created.",
        ))
    try:
        with transaction.atomic():
            insert_rows(DjangoJob, rows)
    except IntegrityError:
        # Another request created one of these ids between our look and our insert.
        ids = [row.id for row in rows]
        taken = DjangoJob.objects.filter(id__in=ids).values_list("id", flat=True).first()
        raise JobAlreadyExists(taken or ids[0]) from None
    DjangoJob.objects.bulk_update(refilled, ["next_run_time", "job_state"])
    JobRecord.objects.filter(job_id__in=list(tombstones)).delete()
    insert_rows(JobRecord, records)
    insert_rows(JobChange, changes)
    # One notification wakes the scheduler for the whole batch.
    if jobs:
        notifications.notify_change(jobs[0].id)


def _code_owned_state(declaration: JobDeclaration) -> dict[str, Any]:
    """The state code owns: a restart brings it in line with the declaration.

    Trigger, arguments, run policy and paused state are the operator's and are never
    touched (`reset` restores the code's).
    """
    return {"func": declaration.func_ref, "name": declaration.name}


def _lock_job(job_id: str, expected_version: int | None) -> _LockedJob:
    """Lock a job's row for the rest of the transaction.

    Every writer locks the job row first, so that lock alone serializes changes to
    the job and its record. The record is read by its own statement after the lock
    is granted: joined into the locking query, PostgreSQL would recheck only the
    locked row after waiting and hand back the record as it was before the wait (a
    lost version bump, caught by tests/test_concurrency.py).
    """
    row = None if selectors.impossible_job_id(job_id) else (
        DjangoJob.objects.select_for_update().filter(id=job_id).first()
    )
    if row is None:
        raise JobNotFound(job_id)
    try:
        state = load_state(row.job_state)
    except UnreadableState:
        raise JobBroken(job_id, "<unreadable job state>") from None
    record, _ = JobRecord.objects.get_or_create(
        job=row,
        defaults={"name": state["name"], **record_mirror(state)},
    )
    row.record = record
    if record.deleted_at is not None:
        raise JobNotFound(job_id)
    if expected_version is not None and expected_version != record.version:
        raise VersionConflict(job_id, expected=expected_version, current=record.version)
    return _LockedJob(row=row, record=record, state=state, before=_summary(state, record))


def _refuse_if_broken(job: _LockedJob) -> None:
    if selectors.broken_func_ref(job_state=job.row.job_state) is not None:
        raise JobBroken(job.row.id, job.state["func"])


def _set_trigger(job: _LockedJob, trigger: Any) -> None:
    """Swap the trigger; a running job's next run follows it, a paused one stays paused."""
    job.state["trigger"] = trigger
    if job.row.next_run_time is not None:
        next_run_time = _first_fire_time(trigger)
        if next_run_time is None:
            raise JobStateConflict(f"Job {job.row.id!r}: that schedule has no future run.")
        job.state["next_run_time"] = next_run_time


def _commit(
    job: _LockedJob, action: str, actor: str, source: str, message: str
) -> ChangeOutcome:
    """Write the new state, bump the version, record the change and notify."""
    _write(job, action, actor, source, message)
    return ChangeOutcome(job=selectors.locked_job_view(job.row), changed=True, message=message)


def _write(job: _LockedJob, action: str, actor: str, source: str, message: str) -> None:
    """`_commit` without reading the job back (imports write thousands at once)."""
    job.row.job_state = dump_state(job.state)
    job.row.next_run_time = job.state["next_run_time"]
    job.row.save(update_fields=["job_state", "next_run_time"])
    job.record.version += 1
    job.record.name = job.state["name"]
    for name, value in record_mirror(job.state).items():
        setattr(job.record, name, value)
    job.record.updated_at = timezone.now()
    job.record.save()
    JobChange.objects.create(
        job_id=job.row.id,
        version=job.record.version,
        action=action,
        actor=actor,
        source=source,
        before=job.before,
        after=_summary(job.state, job.record),
        message=message[:255],
    )
    if job.before.get("alert_after") != job.record.alert_after:
        outcomes.move_overdue_deadline(job.row.id)
    notifications.notify_change(job.row.id)


def _unchanged(job: _LockedJob, message: str) -> ChangeOutcome:
    return ChangeOutcome(job=selectors.locked_job_view(job.row), changed=False, message=message)


def _summary(state: dict[str, Any], record: JobRecord) -> dict[str, Any]:
    """The part of a job's state the audit trail shows before and after a change:
    schedule, paused state with its note, and run policy."""
    fields = triggers.trigger_fields(state["trigger"])
    # As JSON carries them: arguments (and what other code stored) may be any value.
    return json_value({
        **fields,
        "enabled": state["next_run_time"] is not None,
        "next_run_time": isoformat(state["next_run_time"]),
        "paused_reason": record.paused_reason,
        "paused_until": isoformat(record.paused_until),
        **policy_of(state, pause_after_failures=record.pause_after_failures,
                    alert_after=record.alert_after),
        "name": state["name"],
        "kwargs": dict(state["kwargs"]),
    })


def _first_fire_time(trigger: Any) -> datetime | None:
    """The trigger's next fire time from now, or None when it will not fire again.

    `DateTrigger.get_next_fire_time(None, now)` returns its run date even when that
    date has passed: a one-off job that already ran must not fire again.
    """
    now = _now()
    try:
        fire_time = triggers.next_fire_time(trigger, None, now)
    except Exception as error:  # another app's trigger class can fail in any way
        raise JobStateConflict(
            f"The job's trigger cannot work out its next run time ({type(error).__name__}: "
            f"{error}); give the job a new schedule."
        ) from None
    return fire_time if fire_time is not None and fire_time >= now else None


def _now() -> datetime:
    return datetime.now(app_settings.timezone)


def prune_executions(*, older_than: timedelta, dry_run: bool = False) -> int:
    """Delete execution records that ran more than `older_than` ago; return how many.

    Only history goes: jobs, their schedules and versions are never touched. With
    `dry_run`, count what would be deleted and delete nothing.
    """
    cutoff = timezone.now() - older_than
    with transaction.atomic():
        old_executions = DjangoJobExecution.objects.filter(run_time__lt=cutoff)
        if dry_run:
            return old_executions.count()
        _, deleted = old_executions.delete()
        return deleted.get(DjangoJobExecution._meta.label, 0)


# Deleted per statement by `prune_history`: months of history go in short
# transactions that never hold many locks for long.
PRUNE_BATCH = 5000


@dataclass(frozen=True)
class PruneReport:
    """How many rows of each kind `prune_history` deleted, and whether it got them all."""

    executions: int = 0
    run_requests: int = 0
    changes: int = 0
    scheduler_processes: int = 0
    complete: bool = True

    @property
    def total(self) -> int:
        return self.executions + self.run_requests + self.changes + self.scheduler_processes


def prune_history(*, max_batches: int | None = None) -> PruneReport:
    """Delete what the retention settings say is old enough; the active scheduler calls it.

    Each kind has its own retention in days (`EXECUTION_RETENTION_DAYS`, which also
    covers finished run-now requests, `CHANGE_RETENTION_DAYS`,
    `PROCESS_RETENTION_DAYS`); 0 keeps that kind forever. Ages are measured by the
    database's clock. Jobs, their schedules and versions are never touched. With
    `max_batches`, at most that many batches of PRUNE_BATCH rows go per kind (the
    scheduler prunes a little per pass, so a backlog never delays a run); `complete`
    says whether anything old is left.
    """
    retention = {
        "executions": app_settings.EXECUTION_RETENTION_DAYS,
        "run_requests": app_settings.EXECUTION_RETENTION_DAYS,
        "changes": app_settings.CHANGE_RETENTION_DAYS,
        "scheduler_processes": app_settings.PROCESS_RETENTION_DAYS,
    }
    old_rows = {
        "executions": lambda cutoff: DjangoJobExecution.objects.filter(run_time__lt=cutoff),
        "run_requests": lambda cutoff: RunRequest.objects.exclude(
            status=RunRequest.Status.PENDING
        ).filter(requested_at__lt=cutoff),
        "changes": lambda cutoff: JobChange.objects.filter(created_at__lt=cutoff),
        # A live process has a fresh heartbeat: only long-silent rows are this old.
        "scheduler_processes": lambda cutoff: SchedulerProcess.objects.filter(
            last_heartbeat__lt=cutoff
        ),
    }
    deleted: dict[str, int] = {}
    complete = True
    for kind, days in retention.items():
        if not days:
            continue
        count, done = _delete_in_batches(
            old_rows[kind](Now() - timedelta(days=days)), max_batches=max_batches
        )
        deleted[kind] = count
        complete = complete and done
    return PruneReport(**deleted, complete=complete)


def _delete_in_batches(rows: QuerySet[Any], *, max_batches: int | None) -> tuple[int, bool]:
    """Delete `rows` PRUNE_BATCH at a time, each batch its own transaction.

    Returns how many went and whether none is left.
    """
    deleted = batches = 0
    while max_batches is None or batches < max_batches:
        with transaction.atomic():
            keys = list(rows.order_by("pk").values_list("pk", flat=True)[:PRUNE_BATCH])
            if keys:
                rows.model.objects.filter(pk__in=keys).delete()
        deleted += len(keys)
        batches += 1
        if len(keys) < PRUNE_BATCH:
            return deleted, True
    return deleted, False
