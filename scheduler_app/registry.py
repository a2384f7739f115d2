"""
The registry of what code declares: jobs (`@scheduled_job`) and the functions
operators may schedule (`@job_function`).

It holds what code owns: the function, its default schedule and arguments, and
metadata (name, docstring, run limits). It never serves live state: what a job's
schedule is now is only ever read from the store. The scheduler process adds
declared jobs that are new to the store on start; `reset` restores these defaults.

Schedulable functions are the only functions a job created at runtime may call
(promise 8): operators pick one by its registered name, never by a dotted path.
A `@scheduled_job` function is schedulable too, under its job id.
"""

from __future__ import annotations

import inspect
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from apscheduler.util import obj_to_ref

from scheduler_app.exceptions import DuplicateFunctionName, DuplicateJobId
from scheduler_app.policy import validate_policy

TRIGGER_TYPES = ("cron", "interval", "date")


@dataclass(frozen=True)
class JobDeclaration:
    """One job as declared in code: the defaults it gets when it is new to the store."""

    id: str
    func: Callable[..., Any]
    func_ref: str
    trigger: str
    trigger_args: dict[str, Any]
    name: str
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)
    max_instances: int = 1
    misfire_grace_time: int | None = None
    coalesce: bool = True
    pause_after_failures: int | None = None

    @property
    def policy(self) -> dict[str, Any]:
        """The default run policy, which `reset` restores."""
        return {
            "max_instances": self.max_instances,
            "coalesce": self.coalesce,
            "misfire_grace_time": self.misfire_grace_time,
            "pause_after_failures": self.pause_after_failures,
            "alert_after": self.alert_after,
        }
    # Seconds without a successful run after one was due before the job is
    # overdue; None: SCHEDULER_APP["ALERT_AFTER"]. False `alerts` mutes the job.
    alert_after: int | None = None
    alerts: bool = True

    @property
    def trigger_spec(self) -> dict[str, Any]:
        """The default schedule in the trigger module's spec format."""
        return {"trigger": self.trigger, "trigger_args": dict(self.trigger_args)}

    @property
    def description(self) -> str:
        """The function's docstring, first paragraph."""
        return _first_paragraph(self.func)


def _first_paragraph(func: Callable[..., Any]) -> str:
    return inspect.cleandoc(func.__doc__ or "").split("\n\n")[0].strip()


@dataclass(frozen=True)
class JobFunction:
    """A function operators may schedule at runtime, by its registered name."""

    name: str
    func: Callable[..., Any]
    func_ref: str

    @property
    def description(self) -> str:
        """The function's docstring, first paragraph."""
        return _first_paragraph(self.func)

    @property
    def docstring(self) -> str:
        return inspect.cleandoc(self.func.__doc__ or "")

    @property
    def parameters(self) -> list[inspect.Parameter]:
        """The parameters a job's kwargs may set, in signature order."""
        from scheduler_app.binding import keyword_parameters

        return keyword_parameters(self.func)


class JobRegistry:
    """Job declarations by id and schedulable functions by name; filled while apps
    import their `jobs.py`."""

    def __init__(self) -> None:
        self._declarations: dict[str, JobDeclaration] = {}
        self._functions: dict[str, JobFunction] = {}
        self._lock = threading.Lock()

    def declare(self, declaration: JobDeclaration) -> None:
        """Add a declaration; a second function under the same id is an error."""
        with self._lock:
            existing = self._declarations.get(declaration.id)
            # Re-importing the same module (autoreload, tests) declares the same
            # function again: that is not a conflict.
            if existing is not None and existing.func_ref != declaration.func_ref:
                raise DuplicateJobId(declaration.id, existing.func_ref, declaration.func_ref)
            self._register_function(
                JobFunction(declaration.id, declaration.func, declaration.func_ref)
            )
            self._declarations[declaration.id] = declaration

    def register_function(self, function: JobFunction) -> None:
        """Make a function schedulable; a second function under the same name is an error."""
        with self._lock:
            self._register_function(function)

    def _register_function(self, function: JobFunction) -> None:
        existing = self._functions.get(function.name)
        if existing is not None and existing.func_ref != function.func_ref:
            raise DuplicateFunctionName(function.name, existing.func_ref, function.func_ref)
        self._functions[function.name] = function

    def get_function(self, name: str) -> JobFunction | None:
        return self._functions.get(name)

    def functions(self) -> list[JobFunction]:
        """Every schedulable function, by name."""
        return sorted(self._functions.values(), key=lambda function: function.name)

    def function_named_for(self, func_ref: str) -> JobFunction | None:
        """The schedulable function a stored function reference points at, if any."""
        return next((f for f in self._functions.values() if f.func_ref == func_ref), None)

    def get(self, job_id: str) -> JobDeclaration | None:
        return self._declarations.get(job_id)

    def __contains__(self, job_id: object) -> bool:
        return job_id in self._declarations

    def __iter__(self) -> Iterator[JobDeclaration]:
        return iter(sorted(self._declarations.values(), key=lambda d: d.id))

    def __len__(self) -> int:
        return len(self._declarations)

    def remove(self, job_id: str) -> None:
        """Forget a declaration or function (tests that declare their own clean up with this)."""
        with self._lock:
            self._declarations.pop(job_id, None)
            self._functions.pop(job_id, None)


registry = JobRegistry()


def scheduled_job(
    trigger: str,
    *,
    id: str | None = None,  # noqa: A002 - the public name APScheduler uses too
    name: str | None = None,
    args: tuple[Any, ...] | list[Any] = (),
    kwargs: dict[str, Any] | None = None,
    max_instances: int = 1,
    misfire_grace_time: int | None = None,
    coalesce: bool = True,
    pause_after_failures: int | None = None,
    alert_after: int | None = None,
    alerts: bool = True,
    **trigger_args: Any,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Declare the decorated function as a scheduled job with a default schedule.

    `trigger` is "cron", "interval" or "date"; the other keyword arguments that are
    not job options are the trigger's arguments, as APScheduler takes them. The
    default schedule and run policy are validated now, so a typo fails at startup,
    not at 3 a.m. `pause_after_failures=N` pauses the job when N runs in a row fail.
    `alert_after` is the job's grace in seconds before it counts as overdue;
    `alerts=False` raises no alert for it.
    """
    if trigger not in TRIGGER_TYPES:
        raise ValueError(f"trigger must be one of {', '.join(TRIGGER_TYPES)}, not {trigger!r}")
    if alert_after is not None and (
        isinstance(alert_after, bool) or not isinstance(alert_after, int) or alert_after < 1
    ):
        raise ValueError(f"alert_after must be a whole number of seconds >= 1, not {alert_after!r}")

    def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
        from scheduler_app.conf import app_settings
        from scheduler_app.triggers import build_trigger

        func_ref = _function_reference(func, "@scheduled_job")
        declaration = JobDeclaration(
            id=id or f"{func.__module__}.{func.__name__}",
            func=func,
            func_ref=func_ref,
            trigger=trigger,
            trigger_args=dict(trigger_args),
            name=name or func.__name__.replace("_", " ").capitalize(),
            args=tuple(args),
            kwargs=dict(kwargs or {}),
            max_instances=max_instances,
            misfire_grace_time=(
                misfire_grace_time
                if misfire_grace_time is not None
                else app_settings.MISFIRE_GRACE_TIME
            ),
            coalesce=coalesce,
            pause_after_failures=pause_after_failures,
            alert_after=alert_after,
            alerts=bool(alerts),
        )
        validate_policy(declaration.policy)
        # allow_past: a one-off date job whose date has gone by must not stop startup.
        build_trigger(declaration.trigger_spec, timezone=app_settings.timezone, allow_past=True)
        registry.declare(declaration)
        return func

    return decorate


def job_function(name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register the decorated function as schedulable under `name`, without a schedule.

    Operators then create any number of jobs that call it, each with a schedule and
    keyword arguments of its own (`POST /api/scheduler/jobs/`, the admin's "Add job",
    `manage.py scheduler create`).
    """
    from scheduler_app.validation import validate_identifier

    validate_identifier(name, field="function")

    def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
        func_ref = _function_reference(func, "@job_function")
        registry.register_function(JobFunction(name=name, func=func, func_ref=func_ref))
        return func

    return decorate


def _function_reference(func: Callable[..., Any], decorator: str) -> str:
    try:
        return obj_to_ref(func)
    except ValueError as error:
        # The store keeps a textual reference, so the function must be importable.
        raise ValueError(
            f"{decorator} needs a module-level function, not {func!r}: {error}"
        ) from None
