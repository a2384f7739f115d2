"""
The one exception family for scheduler operations.

Services, selectors and the trigger module raise these; the API maps them to HTTP
status codes in one place (`scheduler_app.api.exceptions`) and the management
commands map them to `CommandError` in one place.
"""

from __future__ import annotations


class SchedulerError(Exception):
    """Base class: a scheduler operation was refused and nothing was changed."""

    default_message = "The scheduler operation failed."

    def __init__(self, message: str | None = None) -> None:
        self.message = message or self.default_message
        super().__init__(self.message)


class JobNotFound(SchedulerError):
    """No job with that id is in the store."""

    def __init__(self, job_id: str) -> None:
        self.job_id = job_id
        super().__init__(f"No job with id {job_id!r}.")


class InvalidInput(SchedulerError):
    """A value the caller sent is refused; `field` names it (the API's 400)."""

    code = "invalid"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        self.field = field
        super().__init__(f"{field}: {message}" if field else message)
        self.detail = message


class InvalidTrigger(InvalidInput):
    """A trigger spec is malformed or describes a schedule that cannot work."""

    code = "invalid_trigger"


class InvalidPolicy(InvalidInput):
    """A run policy value is out of range or of the wrong type."""

    code = "invalid_policy"


class InvalidArguments(InvalidInput):
    """Keyword arguments for a run do not fit the job function's signature."""

    code = "invalid_arguments"


class VersionConflict(SchedulerError):
    """The caller's expected version is not the job's current version."""

    def __init__(self, job_id: str, *, expected: int, current: int) -> None:
        self.job_id = job_id
        self.expected = expected
        self.current = current
        super().__init__(
            f"Job {job_id!r} is at version {current}, not {expected}: "
            "someone else changed it; reload and try again."
        )


class JobStateConflict(SchedulerError):
    """The operation does not fit the job's current state."""


class JobBroken(JobStateConflict):
    """The job's function cannot be imported, so it cannot run or be re-armed."""

    def __init__(self, job_id: str, func_ref: str) -> None:
        self.job_id = job_id
        self.func_ref = func_ref
        super().__init__(
            f"Job {job_id!r} is broken: its function {func_ref!r} cannot be imported."
        )


class DuplicateJobId(SchedulerError):
    """Two declarations in code use the same job id."""

    def __init__(self, job_id: str, first: str, second: str) -> None:
        self.job_id = job_id
        super().__init__(
            f"Job id {job_id!r} is declared twice: by {first} and by {second}. "
            "Give one of them another id."
        )


class DuplicateFunctionName(SchedulerError):
    """Two functions in code are registered as schedulable under the same name."""

    def __init__(self, name: str, first: str, second: str) -> None:
        self.name = name
        super().__init__(
            f"Job function {name!r} is registered twice: by {first} and by {second}. "
            "Give one of them another name."
        )


class UnknownFunction(InvalidInput):
    """A job definition names a function that is not registered as schedulable."""

    code = "unknown_function"


class JobAlreadyExists(JobStateConflict):
    """A job with that id is already in the store (or declared in code)."""

    def __init__(self, job_id: str, reason: str = "a job with that id already exists") -> None:
        self.job_id = job_id
        super().__init__(f"Job {job_id!r} cannot be created: {reason}.")
