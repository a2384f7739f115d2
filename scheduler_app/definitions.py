"""
A runtime job's definition: the JSON object every front door creates a job from.

`POST /api/scheduler/jobs/`, the admin's "Add job", `manage.py scheduler create` and
each line of `scheduler import` / `scheduler export` are the same object::

    {"id": "reports.customer.42", "function": "reports.customer_report",
     "name": "Report for ACME", "trigger": "cron", "trigger_args": {"hour": 7},
     "kwargs": {"customer_id": 42}, "max_instances": 1, "coalesce": true,
     "misfire_grace_time": 300, "pause_after_failures": 3}

`JobDefinition.from_json` checks its shape and every value that does not need the
database: the id and name are printable text, the function is a registered name
(never a dotted path or a pickle), the kwargs bind to its signature, the trigger
and run policy are valid. The services then store it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from apscheduler.triggers.base import BaseTrigger

from scheduler_app import triggers
from scheduler_app.binding import bind_kwargs
from scheduler_app.conf import app_settings
from scheduler_app.exceptions import InvalidInput, UnknownFunction
from scheduler_app.policy import POLICY_FIELDS, validate_policy
from scheduler_app.registry import JobFunction, registry
from scheduler_app.selectors import JobView
from scheduler_app.validation import validate_identifier, validate_name

REQUIRED_KEYS = ("id", "function", "trigger")
KEYS = ("id", "function", "name", "trigger", "trigger_args", "kwargs", *POLICY_FIELDS)


@dataclass(frozen=True)
class JobDefinition:
    """A checked job definition; `trigger` is the built APScheduler trigger, and
    `first_run_time` its first fire time from when it was checked."""

    id: str
    function: JobFunction
    name: str
    trigger_spec: dict[str, Any]
    trigger: BaseTrigger
    first_run_time: datetime | None
    kwargs: dict[str, Any]
    max_instances: int
    coalesce: bool
    misfire_grace_time: int | None
    pause_after_failures: int | None

    @classmethod
    def from_json(
        cls, data: object, *, trigger_builder: triggers.TriggerBuilder | None = None
    ) -> JobDefinition:
        """Check a definition object; raises `InvalidInput` or `InvalidTrigger` naming the key.

        Definitions checked in a row (an import) share a `trigger_builder`, which
        builds each distinct schedule once.
        """
        if not isinstance(data, Mapping):
            raise InvalidInput("must be a JSON object.", field="body")
        unknown = sorted(str(key) for key in data if key not in KEYS)
        if unknown:
            raise InvalidInput(f"unknown key; a job has {', '.join(KEYS)}.", field=unknown[0])
        for key in REQUIRED_KEYS:
            if key not in data:
                raise InvalidInput("this field is required.", field=key)
        job_id = validate_identifier(data["id"], field="id")
        function = function_named(data["function"])
        name = validate_name(data["name"]) if data.get("name") is not None else job_id
        trigger_spec = {"trigger": data["trigger"], "trigger_args": data.get("trigger_args", {})}
        builder = trigger_builder or triggers.TriggerBuilder(timezone=app_settings.timezone)
        trigger, first_run_time = builder.build(trigger_spec)
        policy = run_policy(data)
        return cls(
            id=job_id,
            function=function,
            name=name,
            trigger_spec=trigger_spec,
            trigger=trigger,
            first_run_time=first_run_time,
            kwargs=bind_kwargs(function.func, data.get("kwargs", {})),
            **policy,
        )


def definition_of(job: JobView) -> dict[str, Any]:
    """The definition a stored runtime job is made of: what `scheduler export` prints."""
    return {
        "id": job.id,
        "function": job.function,
        "name": job.name,
        "trigger": job.trigger,
        "trigger_args": {key: value for key, value in job.trigger_args.items()
                         if value is not None},
        "kwargs": job.kwargs,
        "max_instances": job.max_instances,
        "coalesce": job.coalesce,
        "misfire_grace_time": job.misfire_grace_time,
        "pause_after_failures": job.pause_after_failures,
    }


def function_named(name: object) -> JobFunction:
    """The schedulable function registered under `name`; anything else is refused."""
    if not isinstance(name, str):
        raise InvalidInput("must be the name of a registered job function.", field="function")
    function = registry.get_function(name)
    if function is None:
        known = ", ".join(f.name for f in registry.functions()[:20]) or "none"
        raise UnknownFunction(
            f"{name[:100]!r} is not a registered job function (registered: {known}). "
            "Register one with @job_function in a jobs.py; dotted paths are not accepted.",
            field="function",
        )
    return function


def run_policy(data: Mapping[str, Any]) -> dict[str, Any]:
    """The run policy in `data`, checked as `PUT .../policy/` checks it, with defaults
    (those of `@scheduled_job`) for what it leaves out."""
    defaults = {
        "max_instances": 1,
        "coalesce": True,
        "misfire_grace_time": app_settings.MISFIRE_GRACE_TIME,
        "pause_after_failures": None,
    }
    given = {name: data[name] for name in POLICY_FIELDS if name in data}
    return {**defaults, **(validate_policy(given) if given else {})}
