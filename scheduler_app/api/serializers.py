"""
Serializers for the scheduler API.

Output serializers turn the selectors' views (`JobView`, `ExecutionView`,
`SchedulerStatus`) and the audit and run-request rows into JSON. The management
commands reuse them for `--json`, so the API and the command line print the same
field names. `ScheduleSerializer` describes the body of a schedule change; the
trigger module, through the service, validates its content.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, tzinfo
from functools import cached_property, lru_cache
from typing import Any

from django.conf import settings
from django.utils import timezone
from rest_framework import ISO_8601, serializers
from rest_framework.settings import api_settings

from scheduler_app import triggers
from scheduler_app.api.openapi import extend_schema_field
from scheduler_app.models import Alert, JobChange, RunRequest
from scheduler_app.selectors import JOB_STATES, ExecutionView, JobView

# The views of jobs and runs are read-only and plain: their serializers build the JSON
# directly instead of DRF's walk over every declared field, which spent about 0.4 ms a
# job (most of a list page's time), much of it looking the time zone up for each of
# a job's eight date-times. The declared fields still document the output (OpenAPI,
# browsable API); tests check that both paths give the same JSON.


def datetime_formatter() -> Callable[[datetime | None], str | None]:
    """DRF's rendering of date-times (DATETIME_FORMAT, in the current time zone)."""
    zone = timezone.get_current_timezone() if settings.USE_TZ else None
    return _datetime_formatter(zone, api_settings.DATETIME_FORMAT)


@lru_cache(maxsize=64)
def _datetime_formatter(
    zone: tzinfo | None, output_format: str | None
) -> Callable[[datetime | None], str | None]:
    drf_format = serializers.DateTimeField(default_timezone=zone).to_representation
    if zone is None or output_format is None or output_format.lower() != ISO_8601:
        return drf_format

    def iso_8601(value: datetime | None) -> str | None:
        # DRF's own steps for an aware date-time, without its per-call settings lookups.
        if value is None or value.tzinfo is None:
            return drf_format(value)
        text = value.astimezone(zone).isoformat()
        return text[:-6] + "Z" if text.endswith("+00:00") else text

    return iso_8601


class ExecutionSerializer(serializers.Serializer):
    """One recorded run of a job (`selectors.ExecutionView`)."""

    id = serializers.IntegerField(read_only=True)
    job = serializers.CharField(source="job_id", read_only=True)
    status = serializers.CharField(
        read_only=True, help_text="running, success, error, missed or max_instances."
    )
    run_time = serializers.DateTimeField(read_only=True, help_text="When the run was due.")
    started = serializers.DateTimeField(
        read_only=True, allow_null=True, help_text="When the run really started; null until then."
    )
    lateness = serializers.FloatField(
        read_only=True, allow_null=True, help_text="Seconds from run_time to started."
    )
    finished = serializers.DateTimeField(read_only=True, allow_null=True)
    duration = serializers.FloatField(
        read_only=True, allow_null=True, help_text="Seconds the run took."
    )
    exception = serializers.CharField(read_only=True, allow_null=True)
    skipped_runs = serializers.IntegerField(
        read_only=True,
        help_text="Missed runs skipped before this one: the job was behind (a downtime) and "
        "gets at most SCHEDULER_APP['MAX_CATCH_UP_RUNS'] catch-up runs, one if it coalesces.",
    )
    traceback = serializers.CharField(read_only=True, allow_null=True)
    cause = serializers.CharField(
        read_only=True, allow_null=True, help_text="scheduled, run_now or backfill."
    )
    kwargs = serializers.DictField(
        read_only=True,
        allow_null=True,
        help_text="Keyword arguments given for this run only (run now), on top of the job's.",
    )

    def to_representation(self, run: ExecutionView) -> dict[str, Any]:
        return _run_representation(run, datetime_formatter(), whole=True)


class LastExecutionSerializer(ExecutionSerializer):
    """The newest run of a job, as a job shows it: without the job id and traceback."""

    job = None
    traceback = None
    cause = None
    kwargs = None

    def to_representation(self, run: ExecutionView) -> dict[str, Any]:
        return _run_representation(run, datetime_formatter(), whole=False)


def _run_representation(
    run: ExecutionView, moment: Callable[[datetime | None], str | None], *, whole: bool
) -> dict[str, Any]:
    """A run's JSON in the declared field order; not `whole`: without job id and traceback."""
    representation: dict[str, Any] = {"id": run.id}
    if whole:
        representation["job"] = run.job_id
    representation.update(
        status=run.status,
        run_time=moment(run.run_time),
        started=moment(run.started),
        lateness=run.lateness,
        finished=moment(run.finished),
        duration=run.duration,
        exception=run.exception,
        skipped_runs=run.skipped_runs,
    )
    if whole:
        representation.update(traceback=run.traceback, cause=run.cause, kwargs=run.kwargs)
    return representation


class JobSerializer(serializers.Serializer):
    """A job as read from the store (`selectors.JobView`)."""

    id = serializers.CharField(read_only=True)
    name = serializers.CharField(read_only=True)
    func = serializers.CharField(
        read_only=True, help_text="The registered function reference; never writable."
    )
    trigger = serializers.CharField(
        read_only=True, allow_null=True, help_text="cron, interval or date."
    )
    trigger_args = serializers.DictField(
        read_only=True, help_text="The trigger's canonical fields, as stored."
    )
    description = serializers.CharField(read_only=True, help_text="The schedule in words.")
    enabled = serializers.BooleanField(read_only=True, help_text="False when paused.")
    state = serializers.ChoiceField(
        choices=JOB_STATES,
        read_only=True,
        help_text="scheduled (will run), paused, finished (a one-off job that ran, or an "
        "ended schedule: no run left), broken (its function cannot be imported).",
    )
    next_run_time = serializers.DateTimeField(read_only=True, allow_null=True)
    upcoming = serializers.ListField(
        child=serializers.DateTimeField(),
        read_only=True,
        help_text="The next fire times; empty when paused.",
    )
    version = serializers.IntegerField(
        read_only=True, help_text="Bumped by every change; sent back in If-Match."
    )
    is_default_schedule = serializers.BooleanField(read_only=True)
    default_schedule = serializers.DictField(
        read_only=True,
        allow_null=True,
        help_text="The trigger spec code declares, which reset restores; null if orphaned.",
    )
    broken = serializers.BooleanField(
        read_only=True, help_text="The job's function cannot be imported."
    )
    orphaned = serializers.BooleanField(
        read_only=True, help_text="The job is in the store but no longer declared in code."
    )
    max_instances = serializers.IntegerField(
        read_only=True, allow_null=True, help_text="Runs of this job that may overlap."
    )
    misfire_grace_time = serializers.IntegerField(
        read_only=True,
        allow_null=True,
        help_text="Seconds a run may start late; null: late runs always run.",
    )
    coalesce = serializers.BooleanField(
        read_only=True, allow_null=True, help_text="Several missed runs run once."
    )
    pause_after_failures = serializers.IntegerField(
        read_only=True,
        allow_null=True,
        help_text="The scheduler pauses the job when this many runs in a row fail; "
        "null: never.",
    )
    alert_after = serializers.IntegerField(
        read_only=True,
        allow_null=True,
        help_text="Seconds the job may go without a successful run after one was due "
        "before job_overdue is raised; null: the job's code default, else "
        "SCHEDULER_APP['ALERT_AFTER'].",
    )
    consecutive_failures = serializers.IntegerField(
        read_only=True, help_text="Runs in a row that failed, up to now."
    )
    paused_reason = serializers.CharField(
        read_only=True, allow_null=True, help_text="Why the job is paused; null while it runs."
    )
    paused_by = serializers.CharField(
        read_only=True,
        allow_null=True,
        help_text='Who paused it ("scheduler" for an automatic pause); null while it runs.',
    )
    paused_at = serializers.DateTimeField(read_only=True, allow_null=True)
    paused_until = serializers.DateTimeField(
        read_only=True,
        allow_null=True,
        help_text="When the scheduler resumes the job by itself; null: paused until resumed.",
    )
    origin = serializers.ChoiceField(
        choices=["code", "runtime"],
        read_only=True,
        help_text="code: declared with @scheduled_job; runtime: created through a front door.",
    )
    function = serializers.CharField(
        read_only=True,
        help_text="The registered job function it calls (a code job's is its own id).",
    )
    kwargs = serializers.DictField(read_only=True, help_text="Keyword arguments of every run.")
    last_execution = LastExecutionSerializer(read_only=True, allow_null=True)

    @cached_property
    def _datetime_formatter(self) -> Callable[[datetime | None], str | None]:
        # A list's one child serializer renders every job of the page: the time zone
        # is looked up once for them all.
        return datetime_formatter()

    def to_representation(self, job: JobView) -> dict[str, Any]:
        moment = self._datetime_formatter
        last_run = job.last_execution
        return {
            "id": job.id,
            "name": job.name,
            "func": job.func,
            "trigger": job.trigger,
            "trigger_args": dict(job.trigger_args),
            "description": job.description,
            "enabled": job.enabled,
            "state": job.state,
            "next_run_time": moment(job.next_run_time),
            "upcoming": [moment(fire_time) for fire_time in job.upcoming],
            "version": job.version,
            "is_default_schedule": job.is_default_schedule,
            "default_schedule": job.default_schedule,
            "broken": job.broken,
            "orphaned": job.orphaned,
            "max_instances": job.max_instances,
            "misfire_grace_time": job.misfire_grace_time,
            "coalesce": job.coalesce,
            "pause_after_failures": job.pause_after_failures,
            "alert_after": job.alert_after,
            "consecutive_failures": job.consecutive_failures,
            "paused_reason": job.paused_reason,
            "paused_by": job.paused_by,
            "paused_at": moment(job.paused_at),
            "paused_until": moment(job.paused_until),
            "origin": job.origin,
            "function": job.function,
            "kwargs": job.kwargs,
            "last_execution": last_run and _run_representation(last_run, moment, whole=False),
        }


class JobChangeSerializer(serializers.ModelSerializer):
    """One entry of a job's audit trail."""

    job = serializers.CharField(source="job_id", read_only=True)

    class Meta:
        model = JobChange
        fields = [
            "id", "job", "version", "action", "actor", "source", "before", "after", "message",
            "created_at",
        ]
        read_only_fields = fields


class AlertSerializer(serializers.ModelSerializer):
    """One alert raised about a job, with what became of its delivery."""

    job = serializers.CharField(source="job_id", read_only=True)

    class Meta:
        model = Alert
        fields = [
            "id", "event", "job", "run_time", "message", "occurred_at", "delivery",
            "delivery_detail",
        ]
        read_only_fields = fields


class RunRequestSerializer(serializers.ModelSerializer):
    """A request to run a job once, now, which the scheduler process claims."""

    job = serializers.CharField(source="job_id", read_only=True)

    class Meta:
        model = RunRequest
        fields = [
            "id", "job", "status", "requested_at", "requested_by", "source", "claimed_at",
            "run_time", "detail", "kwargs",
        ]
        read_only_fields = fields


class SchedulerInstanceSerializer(serializers.Serializer):
    """One live scheduler process (`selectors.SchedulerInstance`)."""

    host = serializers.CharField(read_only=True)
    pid = serializers.IntegerField(read_only=True)
    role = serializers.CharField(read_only=True, help_text="active or standby.")
    epoch = serializers.IntegerField(
        read_only=True, allow_null=True, help_text="The active process's lease epoch."
    )
    started_at = serializers.DateTimeField(read_only=True)
    last_heartbeat = serializers.DateTimeField(read_only=True)


class SchedulerStatusSerializer(serializers.Serializer):
    """The scheduler process by its heartbeat, and job counts (`selectors.SchedulerStatus`)."""

    running = serializers.BooleanField(
        read_only=True,
        help_text="The active scheduler process (the lease holder) has a fresh heartbeat.",
    )
    pid = serializers.IntegerField(read_only=True, allow_null=True)
    host = serializers.CharField(read_only=True, allow_null=True)
    started_at = serializers.DateTimeField(read_only=True, allow_null=True)
    last_heartbeat = serializers.DateTimeField(read_only=True, allow_null=True)
    notification_mode = serializers.CharField(read_only=True, allow_null=True)
    jobs_total = serializers.IntegerField(read_only=True)
    jobs_paused = serializers.IntegerField(read_only=True)
    jobs_broken = serializers.IntegerField(read_only=True)
    instances = SchedulerInstanceSerializer(
        many=True, read_only=True, help_text="Live scheduler processes, the active one first."
    )


def _trigger_args_schema() -> dict[str, Any]:
    """The OpenAPI schema of `trigger_args`, from the trigger module's own tables."""
    moment = {"type": "string", "format": "date-time", "nullable": True}
    cron_value = {"oneOf": [{"type": "string"}, {"type": "integer"}]}
    kinds = {
        **{name: cron_value for name in triggers.CRON_FIELDS},
        "crontab": {"type": "string", "example": "*/5 * * * *"},
        **{unit: {"type": "number", "minimum": 0} for unit in triggers.INTERVAL_UNITS},
        "start_date": moment,
        "end_date": moment,
        "run_date": {"type": "string", "format": "date-time"},
        "timezone": {"type": "string", "nullable": True, "example": "Europe/Paris"},
        "jitter": {
            "type": "integer", "minimum": 0, "maximum": triggers.MAX_JITTER, "nullable": True,
        },
    }
    names = dict.fromkeys(name for args in triggers.ALLOWED_ARGS.values() for name in args)
    return {
        "type": "object",
        "description": (
            "cron: year, month, week, day, day_of_week, hour, minute, second, or "
            '"crontab": "*/5 * * * *" (standard numbering, 0 = Sunday); interval: weeks, '
            "days, hours, minutes, seconds; date: run_date. Also start_date, end_date, "
            "timezone and jitter (cron, interval) and timezone (date)."
        ),
        "properties": {name: kinds[name] for name in names},
        "additionalProperties": False,
    }


@extend_schema_field(_trigger_args_schema())
class TriggerArgsField(serializers.DictField):
    """A trigger's arguments; the trigger module validates them against the trigger type."""


class ScheduleSerializer(serializers.Serializer):
    """The body of a schedule change: a trigger spec."""

    trigger = serializers.ChoiceField(choices=sorted(triggers.ALLOWED_ARGS))
    trigger_args = TriggerArgsField(required=False)

    def to_internal_value(self, data: Any) -> dict[str, Any]:
        # Refused rather than dropped: a misspelt key must not silently lose its value.
        if isinstance(data, dict):
            unknown = sorted(str(key) for key in data if key not in self.fields)
            if unknown:
                raise serializers.ValidationError(
                    {key: ["Unknown key; a trigger spec has only trigger and trigger_args."]
                     for key in unknown}
                )
        return super().to_internal_value(data)


class StrictBodySerializer(serializers.Serializer):
    """A request body whose unknown keys are refused, not dropped: a misspelt key must
    not silently lose its value."""

    def to_internal_value(self, data: Any) -> dict[str, Any]:
        if isinstance(data, dict):
            unknown = sorted(str(key) for key in data if key not in self.fields)
            if unknown:
                known = ", ".join(self.fields)
                raise serializers.ValidationError(
                    {key: [f"Unknown key; this body has only {known}."] for key in unknown}
                )
        return super().to_internal_value(data)


@extend_schema_field({"type": "integer", "minimum": 1})
class _PolicyCount(serializers.JSONField):
    """A policy value, passed on as sent (null included): `scheduler_app.policy` checks it."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(allow_null=True, **kwargs)


@extend_schema_field({"type": "integer", "minimum": 1, "nullable": True})
class _NullablePolicyCount(_PolicyCount):
    """A policy count or null, passed on as sent."""


@extend_schema_field({"type": "boolean"})
class _PolicyFlag(_PolicyCount):
    """A policy flag, passed on as sent (DRF's BooleanField would take "yes" and 1)."""


class PolicySerializer(StrictBodySerializer):
    """The body of a run policy change: any of its four fields.

    Only the shape is checked here; `scheduler_app.policy` checks the values, so
    every front door refuses the same ones with the same words.
    """

    max_instances = _PolicyCount(
        required=False, help_text="Runs of this job that may overlap: an integer of at least 1."
    )
    coalesce = _PolicyFlag(required=False, help_text="true: several missed runs run once.")
    misfire_grace_time = _NullablePolicyCount(
        required=False,
        help_text="Seconds a run may start late (at least 1), or null: late runs always run.",
    )
    pause_after_failures = _NullablePolicyCount(
        required=False,
        help_text="Pause the job when this many runs in a row fail (at least 1), or null: never.",
    )
    alert_after = _NullablePolicyCount(
        required=False,
        help_text="Seconds without a successful run after one was due before the job is "
        "overdue (at least 1), or null: SCHEDULER_APP['ALERT_AFTER'].",
    )


class _StrictText(serializers.CharField):
    """Text only: DRF's CharField would turn a number into its digits."""

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class PauseSerializer(StrictBodySerializer):
    """The optional body of a pause: a note for other operators, and when it ends."""

    reason = _StrictText(
        required=False, allow_null=True, allow_blank=True, max_length=500, trim_whitespace=True,
        help_text="Why the job is paused, shown beside it in lists.",
    )
    until = serializers.DateTimeField(
        required=False,
        allow_null=True,
        help_text="ISO 8601, in the future: the scheduler resumes the job then.",
    )


@extend_schema_field({
    "type": "object",
    "additionalProperties": True,
    "description": "Parameter names of the job's function to JSON values.",
    "example": {"dry_run": True, "limit": 100},
})
class _RunKwargsField(serializers.JSONField):
    """Run keyword arguments, passed on as sent: `scheduler_app.binding` checks them."""


class TriggerSerializer(StrictBodySerializer):
    """The optional body of a run now: keyword arguments for this run only."""

    kwargs = _RunKwargsField(
        required=False,
        help_text="Keyword arguments for this run only, on top of the job's own; bound "
        "against the function's signature (an unknown or missing parameter is a 400).",
    )


class RevertSerializer(StrictBodySerializer):
    """The body of a revert: the version whose state to restore."""

    version = serializers.IntegerField(
        min_value=1,
        help_text="A version from the job's audit trail (`changes/`); the job gets back the "
        "schedule, run policy and paused state it had right after it.",
    )


class BackfillSerializer(StrictBodySerializer):
    """The body of a backfill: the range whose runs to make up for."""

    start = serializers.DateTimeField(help_text="ISO 8601: the first run time to consider.")
    end = serializers.DateTimeField(
        help_text="ISO 8601, not in the future: the last run time to consider (inclusive)."
    )
    dry_run = serializers.BooleanField(
        required=False, default=False, help_text="Count the runs; queue nothing."
    )


class BackfillOutcomeSerializer(serializers.Serializer):
    """What a backfill queued (`services.BackfillOutcome`)."""

    job = serializers.CharField(source="job_id", read_only=True)
    start = serializers.DateTimeField(read_only=True)
    end = serializers.DateTimeField(read_only=True)
    dry_run = serializers.BooleanField(read_only=True)
    queued = serializers.SerializerMethodField(
        help_text="How many runs were queued (with dry_run: would be)."
    )
    already_there = serializers.SerializerMethodField(
        help_text="How many run times of the range had run already or were queued already."
    )
    queued_run_times = serializers.ListField(
        child=serializers.DateTimeField(), source="queued", read_only=True,
        help_text="The scheduled times of the runs queued, oldest first.",
    )

    def get_queued(self, outcome: Any) -> int:
        return len(outcome.queued)

    def get_already_there(self, outcome: Any) -> int:
        return len(outcome.already_there)

class JobDefinitionSerializer(serializers.Serializer):
    """The body of a job creation (documentation and the browsable API's form).

    The content is checked by `scheduler_app.definitions.JobDefinition`, the one
    check every front door shares; this only describes it.
    """

    id = serializers.CharField(max_length=191, help_text="Printable, no spaces or slashes.")
    function = serializers.CharField(
        help_text="A function registered with @job_function (or a declared job's id); "
        "never a dotted path."
    )
    name = serializers.CharField(
        required=False, allow_null=True, max_length=255, help_text="Missing or null: the id."
    )
    trigger = serializers.ChoiceField(choices=sorted(triggers.ALLOWED_ARGS))
    trigger_args = TriggerArgsField(required=False)
    kwargs = serializers.DictField(
        required=False, help_text="JSON values, checked against the function's signature."
    )
    max_instances = serializers.IntegerField(required=False, min_value=1, default=1)
    coalesce = serializers.BooleanField(required=False, default=True)
    misfire_grace_time = serializers.IntegerField(
        required=False, allow_null=True, min_value=1,
        help_text="Seconds a late run may start after its time; null: however late.",
    )
    pause_after_failures = serializers.IntegerField(
        required=False, allow_null=True, min_value=1,
        help_text="Pause the job when this many runs in a row fail; null: never.",
    )


class JobUpdateSerializer(serializers.Serializer):
    """The body of a change to a runtime job: its name, its kwargs, or both."""

    name = serializers.CharField(required=False, max_length=255)
    kwargs = serializers.DictField(
        required=False, help_text="JSON values, checked against the function's signature."
    )


class ErrorSerializer(serializers.Serializer):
    """The body of every error response (documentation only)."""

    detail = serializers.CharField(help_text="What went wrong, in words.")
    code = serializers.CharField(help_text="A stable slug for programs.")
    errors = serializers.DictField(
        child=serializers.ListField(child=serializers.CharField()),
        required=False,
        help_text='400 only: messages by field ("trigger_args.minutes", "If-Match", "body").',
    )
    current_version = serializers.IntegerField(
        required=False, help_text="412 only: the job's version now."
    )
