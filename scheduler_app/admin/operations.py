"""The four things a user does to jobs (pause, resume, run now, reset), for list actions and
change-page buttons, with pluralised messages saying what happened to which job."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from django.contrib import messages
from django.http import HttpRequest

from scheduler_app import selectors, services
from scheduler_app.admin.base import actor
from scheduler_app.exceptions import SchedulerError
from scheduler_app.models import Source


@dataclass(frozen=True)
class JobOperation:
    """One service call on a job, and how to tell the user what it did to several."""

    name: str
    label: str
    call: Callable[..., bool]
    done: tuple[str, str]
    unchanged: tuple[str, str]


def _pause(**kwargs: Any) -> bool:
    return services.pause_job(**kwargs).changed


def _resume(**kwargs: Any) -> bool:
    return services.resume_job(**kwargs).changed


def _run_now(**kwargs: Any) -> bool:
    services.request_job_run(**kwargs)
    return True


def _reset(**kwargs: Any) -> bool:
    return services.reset_job(**kwargs).changed


OPERATIONS = {
    operation.name: operation
    for operation in (
        JobOperation(
            "pause", "Pause", _pause,
            done=("%(count)d job was paused: %(jobs)s.", "%(count)d jobs were paused: %(jobs)s."),
            unchanged=(
                "%(count)d job was already paused: %(jobs)s.",
                "%(count)d jobs were already paused: %(jobs)s.",
            ),
        ),
        JobOperation(
            "resume", "Resume", _resume,
            done=(
                "%(count)d job was resumed: %(jobs)s.",
                "%(count)d jobs were resumed: %(jobs)s.",
            ),
            unchanged=(
                "%(count)d job was not paused: %(jobs)s.",
                "%(count)d jobs were not paused: %(jobs)s.",
            ),
        ),
        JobOperation(
            "run", "Run now", _run_now,
            done=(
                "%(count)d job was sent to the scheduler process to run now: %(jobs)s.",
                "%(count)d jobs were sent to the scheduler process to run now: %(jobs)s.",
            ),
            unchanged=("", ""),
        ),
        JobOperation(
            "reset", "Reset to code default", _reset,
            done=(
                "%(count)d job was reset to its code default: %(jobs)s.",
                "%(count)d jobs were reset to their code defaults: %(jobs)s.",
            ),
            unchanged=(
                "%(count)d job already had its code default: %(jobs)s.",
                "%(count)d jobs already had their code defaults: %(jobs)s.",
            ),
        ),
    )
}


FAILED = (
    "%(count)d job could not be changed (%(operation)s): ",
    "%(count)d jobs could not be changed (%(operation)s): ",
)


def _plural(count: int, forms: tuple[str, str]) -> str:
    return forms[0] if count == 1 else forms[1]


def apply_operation(
    request: HttpRequest,
    operation: JobOperation,
    job_ids: Iterable[str],
    *,
    expected_version: int | None = None,
) -> None:
    """Run an operation on each job in turn and report, pluralised, what happened to which."""
    changed, unchanged, failed = [], [], []
    for job_id in job_ids:
        try:
            did_change = operation.call(
                job_id=job_id,
                actor=actor(request),
                source=Source.ADMIN,
                expected_version=expected_version,
            )
        except SchedulerError as error:
            failed.append(error.message)
        else:
            (changed if did_change else unchanged).append(job_id)
    for jobs, forms, level in (
        (changed, operation.done, messages.SUCCESS),
        (unchanged, operation.unchanged, messages.INFO),
    ):
        if jobs:
            values = {"count": len(jobs), "jobs": ", ".join(jobs)}
            messages.add_message(request, level, _plural(len(jobs), forms) % values)
    if failed:
        text = _plural(len(failed), FAILED)
        values = {"count": len(failed), "operation": operation.label.lower()}
        messages.error(request, text % values + " ".join(failed))
    if operation.name == "run" and changed and not selectors.scheduler_status().running:
        messages.warning(
            request, "No scheduler process is running: the runs start when one does."
        )
