"""
How jobs, executions, audit entries, alerts, the scheduler's status and run outcomes read in a
terminal: the tables and label/value blocks the `scheduler` subcommands print.

Everything here formats what the selectors returned; nothing reads or writes the store
except `timeout_message`, which asks whether a scheduler is running to explain a wait.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from scheduler_app import selectors, triggers
from scheduler_app.cli import output
from scheduler_app.cli.output import NOTHING, Cell, Styled
from scheduler_app.cli.runs import RunOutcome
from scheduler_app.conf import app_settings
from scheduler_app.models import Alert, JobChange, RunRequest
from scheduler_app.policy import POLICY_FIELDS
from scheduler_app.selectors import ExecutionView, JobView, SchedulerStatus

STATUS_STYLES = {
    "success": "SUCCESS",
    "error": "ERROR",
    "missed": "WARNING",
    "max_instances": "WARNING",
    "expired": "WARNING",
    "running": "NOTICE",
}
RUN_FAILURES = {
    "missed": "the run started too late (after its misfire grace time) and was dropped",
    "max_instances": "the run was skipped: the job already had its maximum number of "
    "instances running",
    "lost": "the run was lost: the process running it died before recording an outcome",
    "expired": "the run expired: no task worker started it in time",
}


def jobs_table(views: Sequence[JobView], *, now: datetime, style: Any) -> list[str]:
    headers = ["ID", "SCHEDULE", f"NEXT RUN ({zone()})", "STATE", "LAST RUN"]
    rows = [
        [
            view.id,
            view.description,
            output.when(view.next_run_time, now=now),
            _state_cell(view, with_reason=True),
            _status_cell(view.last_execution),
        ]
        for view in views
    ]
    return output.table(headers, rows, style=style, flexible={"SCHEDULE"})


def job_details(view: JobView, *, now: datetime, style: Any) -> list[str]:
    broken = Styled(f"{view.func} (broken: it cannot be imported)", "ERROR")
    upcoming = [output.when(moment, now=now) for moment in view.upcoming]
    pairs: list[tuple[str, Cell]] = [
        ("id", view.id),
        ("name", view.name),
        ("function", broken if view.broken else view.func),
        ("schedule", view.description),
        ("trigger", _trigger_text(view)),
        ("state", _state_cell(view)),
        ("next run", _next_run(view, now=now)),
        *_listed("next fire times", upcoming or [NOTHING]),
        ("time zone", zone()),
        ("version", str(view.version)),
        ("default schedule", _default_schedule(view)),
        ("arguments", _arguments_text(view)),
        *pause_details(view, now=now),
        ("max instances", _optional(view.max_instances)),
        ("misfire grace", _optional(view.misfire_grace_time, unit="s", none="none (always run)")),
        ("coalesce", _optional(view.coalesce)),
        ("pause after", _failure_limit(view)),
    ]
    return output.details(pairs, style=style)


def pause_details(view: JobView, *, now: datetime) -> list[tuple[str, Cell]]:
    """Why, by whom and until when a paused job is paused (nothing for a running job)."""
    if view.enabled:
        return []
    pairs: list[tuple[str, Cell]] = [("paused reason", view.paused_reason or NOTHING)]
    if view.paused_by is not None:
        pairs.append(("paused by", f"{view.paused_by}, {output.when(view.paused_at, now=now)}"))
    until = output.when(view.paused_until, now=now) if view.paused_until else "resumed by hand"
    pairs.append(("paused until", until))
    return pairs


def policy_details(view: JobView) -> list[str]:
    """A job's run policy, after a policy change."""
    return [
        f"max instances {view.max_instances}, coalesce {_optional(view.coalesce)}, "
        f"misfire grace {_optional(view.misfire_grace_time, unit='s', none='none')}, "
        f"pause after {_failure_limit(view)}"
    ]


def _failure_limit(view: JobView) -> str:
    if view.pause_after_failures is None:
        return "never"
    return (
        f"{view.pause_after_failures} consecutive failures "
        f"({view.consecutive_failures} so far)"
    )


def change_outcome(view: JobView, *, now: datetime, style: Any) -> list[str]:
    """The schedule and next run a job has after a change, and why it is paused."""
    pairs: list[tuple[str, Cell]] = [
        ("schedule", view.description),
        ("next run", _next_run(view, now=now)),
        *pause_details(view, now=now),
    ]
    return output.details(pairs, style=style)


def schedule_preview(
    view: JobView, trigger: Any, fire_times: Sequence[datetime], *, now: datetime, style: Any
) -> list[str]:
    """What a dry-run reschedule would do."""
    pairs: list[tuple[str, Cell]] = [
        ("job", f"{view.id} (version {view.version})"),
        ("current schedule", view.description),
        ("new schedule", triggers.describe_trigger(trigger)),
        *_listed("next fire times", [output.when(moment, now=now) for moment in fire_times]),
    ]
    if not view.enabled:
        pairs.append(("note", Styled("the job is paused and would stay paused", "WARNING")))
    return output.details(pairs, style=style)


def executions_table(
    executions: Sequence[ExecutionView], *, job_id: str | None, now: datetime, style: Any
) -> list[str]:
    headers = [
        "ID", "JOB", "STATUS", f"RUN TIME ({zone()})", "LATENESS", "DURATION", "SKIPPED BEFORE",
        "EXCEPTION",
    ]
    rows = [
        [
            str(execution.id),
            execution.job_id,
            _status_cell(execution),
            output.when(execution.run_time, now=now),
            output.seconds(execution.lateness),
            output.seconds(execution.duration),
            str(execution.skipped_runs) if execution.skipped_runs else "",
            execution.exception or "",
        ]
        for execution in executions
    ]
    # Skipped runs are rare (catch-up after a downtime): no column when there are none.
    omit = _job_column(job_id)
    if not any(execution.skipped_runs for execution in executions):
        omit.add("SKIPPED BEFORE")
    return output.table(headers, rows, style=style, flexible={"EXCEPTION"}, omit=omit)


def changes_table(changes: Sequence[JobChange], *, job_id: str | None, style: Any) -> list[str]:
    headers = [f"WHEN ({zone()})", "JOB", "ACTION", "VERSION", "BY", "VIA", "WHAT CHANGED"]
    rows = [
        [
            output.local_time(change.created_at),
            change.job_id,
            change.action,
            str(change.version),
            change.actor,
            change.source,
            _what_changed(change),
        ]
        for change in changes
    ]
    return output.table(
        headers, rows, style=style, flexible={"WHAT CHANGED"}, omit=_job_column(job_id)
    )


DELIVERY_STYLES = {"delivered": "SUCCESS", "failed": "ERROR", "pending": "NOTICE"}


def alerts_table(alerts: Sequence[Alert], *, job_id: str | None, style: Any) -> list[str]:
    headers = [f"WHEN ({zone()})", "JOB", "EVENT", "DELIVERY", "MESSAGE"]
    rows = [
        [
            output.local_time(alert.occurred_at),
            alert.job_id,
            alert.event,
            Styled(alert.delivery, DELIVERY_STYLES.get(alert.delivery, "")),
            alert.message if alert.delivery != "failed"
            else f"{alert.message} [{alert.delivery_detail}]",
        ]
        for alert in alerts
    ]
    return output.table(headers, rows, style=style, flexible={"MESSAGE"}, omit=_job_column(job_id))


def status_details(status: SchedulerStatus, *, now: datetime, style: Any) -> list[str]:
    running = Styled("running", "SUCCESS") if status.running else Styled("not running", "ERROR")
    process = (
        f"pid {status.pid} on {status.host}" if status.pid
        else "no scheduler process has ever reported"
    )
    pairs: list[tuple[str, Cell]] = [
        ("scheduler", running),
        ("process", process),
        ("started", output.when(status.started_at, now=now)),
        ("last heartbeat", output.when(status.last_heartbeat, now=now)),
        ("notifications", status.notification_mode or NOTHING),
        ("jobs", str(status.jobs_total)),
        ("paused", str(status.jobs_paused)),
        ("broken", Styled(str(status.jobs_broken), "ERROR" if status.jobs_broken else "")),
    ]
    pairs += [
        (
            "instance",
            f"{instance.role} pid {instance.pid} on {instance.host}"
            + (f", lease epoch {instance.epoch}" if instance.epoch is not None else "")
            + f", heartbeat {output.when(instance.last_heartbeat, now=now)}",
        )
        for instance in status.instances
    ]
    return output.details(pairs, style=style)


def run_failure(execution: ExecutionView) -> str:
    """Why a finished run did not succeed."""
    return RUN_FAILURES.get(execution.status, f"the run failed: {execution.exception}")


def timeout_message(outcome: RunOutcome, *, timeout: float) -> str:
    """Where a run request got to when `trigger --wait` stopped waiting, and why."""
    request = outcome.run_request
    waited = f"timed out after {timeout:g}s waiting for {request.job_id}"
    if outcome.execution is not None:
        started = output.local_time(outcome.execution.run_time)
        return f"{waited}: the run started at {started} and is still going."
    if request.status == RunRequest.Status.SUBMITTED:
        return f"{waited}: the scheduler started the run but has not recorded it yet."
    if not selectors.scheduler_status().running:
        return (
            f"{waited}: no scheduler process is running (start one with manage.py "
            f"runscheduler); request #{request.id} stays pending and runs if one starts within "
            f"{app_settings.RUN_REQUEST_TIMEOUT:g}s of the request, else it expires."
        )
    return f"{waited}: the scheduler has not picked up request #{request.id} yet."


def zone() -> str:
    """The scheduler's time zone, which every time printed here is in."""
    return str(app_settings.timezone)


def _listed(label: str, values: Sequence[str]) -> list[tuple[str, Cell]]:
    """One value per line, the label on the first."""
    return [(label if index == 0 else "", value) for index, value in enumerate(values)]


def _trigger_text(view: JobView) -> str:
    if view.trigger is None:
        return "unreadable"
    fields = " ".join(
        f"{name}={value}" for name, value in view.trigger_args.items() if value is not None
    )
    return f"{view.trigger}: {fields}"


def _default_schedule(view: JobView) -> Cell:
    if view.default_schedule is None:
        return Styled("none: the job is no longer declared in code (orphaned)", "WARNING")
    default = triggers.build_trigger(
        view.default_schedule, timezone=app_settings.timezone, allow_past=True
    )
    words = triggers.describe_trigger(default)
    return f"{words} (current)" if view.is_default_schedule else f"{words} (reset restores it)"


def _arguments_text(view: JobView) -> str:
    parts = [repr(value) for value in view.args]
    parts += [f"{name}={value!r}" for name, value in view.kwargs.items()]
    return ", ".join(parts) or "none"


def _optional(value: object, *, unit: str = "", none: str = NOTHING) -> str:
    if value is None:
        return none
    if isinstance(value, bool):
        return "yes" if value else "no"
    return f"{value}{unit}"


def _next_run(view: JobView, *, now: datetime) -> Cell:
    if view.state == "finished":
        return "none: finished"
    if not view.enabled:
        return Styled("none: paused", "WARNING")
    return output.when(view.next_run_time, now=now)


STATE_STYLES = {"scheduled": "SUCCESS", "paused": "WARNING", "finished": "", "broken": "ERROR"}


def _state_cell(view: JobView, *, with_reason: bool = False) -> Styled:
    reason = ""
    if with_reason and view.state == "paused" and view.paused_reason:
        reason = f": {view.paused_reason}"
    return Styled(f"{view.state}{reason}", STATE_STYLES[view.state])


def _status_cell(execution: ExecutionView | None) -> Cell:
    if execution is None:
        return NOTHING
    return Styled(execution.status, STATUS_STYLES.get(execution.status, ""))


def _job_column(job_id: str | None) -> set[str]:
    """Leave the job column out of a table of one job's rows."""
    return {"JOB"} if job_id is not None else set()


def _what_changed(change: JobChange) -> str:
    """The fields a change moved, e.g. "enabled True→False, minute 0→*/5"."""
    if change.action == JobChange.Action.RUN_REQUESTED:
        return f"run request #{(change.after or {}).get('run_request')}"
    if change.before is None:
        return ""
    before, after = change.before, change.after or {}
    # The next run time moves with every change; the other fields say why.
    moved = [
        (key, before.get(key), after.get(key))
        for key in ("trigger", "enabled", "paused_reason", "paused_until", *POLICY_FIELDS)
    ]
    trigger_before = before.get("trigger_args") or {}
    trigger_after = after.get("trigger_args") or {}
    # Sorted, because PostgreSQL's jsonb does not keep the keys' order.
    moved += [
        (key, trigger_before.get(key), trigger_after.get(key))
        for key in sorted({*trigger_before, *trigger_after})
    ]
    moved_text = ", ".join(f"{key} {old}→{new}" for key, old, new in moved if old != new)
    if change.action == JobChange.Action.REVERTED:
        return f"{change.message}: {moved_text}" if moved_text else change.message
    return moved_text
