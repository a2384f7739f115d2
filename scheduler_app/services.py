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
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from apscheduler.job import Job
from django.db import IntegrityError, transaction
from django.utils import timezone
from django_apscheduler.models import DjangoJob, DjangoJobExecution

from scheduler_app import notifications, selectors, triggers
from scheduler_app.conf import app_settings
from scheduler_app.exceptions import (
    JobBroken,
    JobNotFound,
    JobStateConflict,
    VersionConflict,
)
from scheduler_app.models import JobChange, JobRecord, RunRequest
from scheduler_app.registry import JobDeclaration, registry
from scheduler_app.state import (
    UnreadableState,
    dump_state,
    isoformat,
    load_state,
    trigger_type_name,
)

logger = logging.getLogger(__name__)


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
    *, job_id: str, actor: str, source: str, expected_version: int | None = None
) -> ChangeOutcome:
    """Stop a job from running: no run starts after this commits. Idempotent."""
    with transaction.atomic():
        job = _lock_job(job_id, expected_version)
        if job.row.next_run_time is None:
            return _unchanged(job, "Job is already paused.")
        job.state["next_run_time"] = None
        return _commit(job, JobChange.Action.PAUSED, actor, source, "Job paused.")


def resume_job(
    *, job_id: str, actor: str, source: str, expected_version: int | None = None
) -> ChangeOutcome:
    """Let a paused job run again from its next fire time after now. Idempotent."""
    with transaction.atomic():
        job = _lock_job(job_id, expected_version)
        if job.row.next_run_time is not None:
            return _unchanged(job, "Job is already running on its schedule.")
        _refuse_if_broken(job)
        next_run_time = _first_fire_time(job.state["trigger"])
        if next_run_time is None:
            raise JobStateConflict(
                f"Job {job_id!r} cannot be resumed: its schedule has no future run "
                "(reschedule it first)."
            )
        job.state["next_run_time"] = next_run_time
        return _commit(job, JobChange.Action.RESUMED, actor, source, "Job resumed.")


def reset_job(
    *, job_id: str, actor: str, source: str, expected_version: int | None = None
) -> ChangeOutcome:
    """Put a job's schedule and arguments back to its code default; paused stays paused."""
    with transaction.atomic():
        job = _lock_job(job_id, expected_version)
        declaration = registry.get(job_id)
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
        )
        if not arguments_changed and triggers.is_same_schedule(
            job.state["trigger"], declaration.trigger_spec, timezone=app_settings.timezone
        ):
            return _unchanged(job, "Job already has its code default schedule.")
        job.state["args"] = tuple(declaration.args)
        job.state["kwargs"] = dict(declaration.kwargs)
        _set_trigger(job, trigger)
        return _commit(job, JobChange.Action.RESET, actor, source, "Job reset to its code default.")


def request_job_run(
    *, job_id: str, actor: str, source: str, expected_version: int | None = None
) -> RunRequest:
    """Ask the scheduler process to run a job once, now.

    The schedule and the paused state do not move, so the version does not either;
    the request is in the audit trail.
    """
    with transaction.atomic():
        job = _lock_job(job_id, expected_version)
        _refuse_if_broken(job)
        run_request = RunRequest.objects.create(job=job.row, requested_by=actor, source=source)
        JobChange.objects.create(
            job_id=job_id,
            version=job.record.version,
            action=JobChange.Action.RUN_REQUESTED,
            actor=actor,
            source=source,
            before=job.before,
            after={**job.before, "run_request": run_request.id},
        )
        notifications.notify_change(job_id)
        return run_request


def sync_jobs_from_code(
    *, declarations: Iterable[JobDeclaration] | None = None, actor: str = "scheduler"
) -> SyncReport:
    """Bring the store in line with code, the way a scheduler start does.

    Adds declared jobs that are new; for known jobs, updates only code-owned
    metadata and keeps the operator's schedule, arguments and paused state. Jobs
    no longer declared are reported as orphaned, never deleted.
    """
    declarations = list(registry if declarations is None else declarations)
    report = SyncReport()
    for declaration in declarations:
        outcome = _sync_declaration(declaration, actor)
        getattr(report, outcome).append(declaration.id)
    declared = {declaration.id for declaration in registry}
    stored = DjangoJob.objects.order_by("id").values_list("id", flat=True)
    report.orphaned.extend(job_id for job_id in stored if job_id not in declared)
    report.broken.extend(selectors.broken_job_ids())
    return report


def _sync_declaration(declaration: JobDeclaration, actor: str) -> str:
    """Add or update one declared job; returns "added", "updated" or "unchanged"."""
    try:
        with transaction.atomic():
            if not DjangoJob.objects.filter(id=declaration.id).exists():
                _add_declared_job(declaration, actor)
                return "added"
    except IntegrityError:
        # Another process added it between our look and our insert: update instead.
        pass
    with transaction.atomic():
        job = _lock_job(declaration.id, None)
        wanted = _code_owned_state(declaration)
        if all(job.state.get(key) == value for key, value in wanted.items()):
            return "unchanged"
        job.state.update(wanted)
        _commit(job, JobChange.Action.UPDATED_FROM_CODE, actor, "code", "")
        return "updated"


def _add_declared_job(declaration: JobDeclaration, actor: str) -> None:
    trigger = triggers.build_trigger(
        declaration.trigger_spec, timezone=app_settings.timezone, allow_past=True
    )
    job = Job(
        None,
        id=declaration.id,
        func=declaration.func,
        trigger=trigger,
        executor="default",
        args=declaration.args,
        kwargs=declaration.kwargs,
        name=declaration.name,
        misfire_grace_time=declaration.misfire_grace_time,
        coalesce=declaration.coalesce,
        max_instances=declaration.max_instances,
    )
    # Set directly, not through Job(): its conversion needs a running scheduler.
    job.next_run_time = _first_fire_time(trigger)
    state = job.__getstate__()
    row = DjangoJob.objects.create(
        id=declaration.id, next_run_time=state["next_run_time"], job_state=dump_state(state)
    )
    JobRecord.objects.create(
        job=row, version=1, name=declaration.name, trigger_type=trigger_type_name(trigger)
    )
    JobChange.objects.create(
        job_id=declaration.id,
        version=1,
        action=JobChange.Action.CREATED,
        actor=actor,
        source="code",
        before=None,
        after=_summary(state),
    )
    notifications.notify_change(declaration.id)


def _code_owned_state(declaration: JobDeclaration) -> dict[str, Any]:
    """The state code owns: a restart brings it in line with the declaration.

    Trigger, arguments and paused state are the operator's and are never touched.
    """
    return {
        "func": declaration.func_ref,
        "name": declaration.name,
        "max_instances": declaration.max_instances,
        "misfire_grace_time": declaration.misfire_grace_time,
        "coalesce": declaration.coalesce,
    }


def _lock_job(job_id: str, expected_version: int | None) -> _LockedJob:
    """Lock a job's row for the rest of the transaction.

    Every writer locks the job row first, so that lock alone serializes changes to
    the job and its record. The record is read by its own statement after the lock
    is granted: joined into the locking query, PostgreSQL would recheck only the
    locked row after waiting and hand back the record as it was before the wait (a
    lost version bump, caught by tests/test_concurrency.py).
    """
    row = DjangoJob.objects.select_for_update().filter(id=job_id).first()
    if row is None:
        raise JobNotFound(job_id)
    try:
        state = load_state(row.job_state)
    except UnreadableState:
        raise JobBroken(job_id, "<unreadable job state>") from None
    record, _ = JobRecord.objects.get_or_create(
        job=row,
        defaults={"name": state["name"], "trigger_type": trigger_type_name(state["trigger"])},
    )
    row.record = record
    if expected_version is not None and expected_version != record.version:
        raise VersionConflict(job_id, expected=expected_version, current=record.version)
    return _LockedJob(row=row, record=record, state=state, before=_summary(state))


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
    job.row.job_state = dump_state(job.state)
    job.row.next_run_time = job.state["next_run_time"]
    job.row.save(update_fields=["job_state", "next_run_time"])
    job.record.version += 1
    job.record.name = job.state["name"]
    job.record.trigger_type = trigger_type_name(job.state["trigger"])
    job.record.updated_at = timezone.now()
    job.record.save()
    JobChange.objects.create(
        job_id=job.row.id,
        version=job.record.version,
        action=action,
        actor=actor,
        source=source,
        before=job.before,
        after=_summary(job.state),
    )
    notifications.notify_change(job.row.id)
    return ChangeOutcome(job=selectors.locked_job_view(job.row), changed=True, message=message)


def _unchanged(job: _LockedJob, message: str) -> ChangeOutcome:
    return ChangeOutcome(job=selectors.locked_job_view(job.row), changed=False, message=message)


def _summary(state: dict[str, Any]) -> dict[str, Any]:
    """The part of a job's state the audit trail shows before and after a change."""
    fields = triggers.trigger_fields(state["trigger"])
    return {
        **fields,
        "enabled": state["next_run_time"] is not None,
        "next_run_time": isoformat(state["next_run_time"]),
    }


def _first_fire_time(trigger: Any) -> datetime | None:
    """The trigger's next fire time from now, or None when it will not fire again.

    `DateTrigger.get_next_fire_time(None, now)` returns its run date even when that
    date has passed: a one-off job that already ran must not fire again.
    """
    now = _now()
    fire_time = trigger.get_next_fire_time(None, now)
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
