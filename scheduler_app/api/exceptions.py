"""
Errors of the scheduler API, as JSON, in one place.

`exception_handler` is the one mapping from the `SchedulerError` family to HTTP:
`JobNotFound` 404, `InvalidInput` (`InvalidTrigger`, `InvalidPolicy`, ...) 400
naming the field, `VersionConflict` 412 with the current version,
`JobStateConflict` (and `JobBroken`, `JobAlreadyExists`) 409. It also gives DRF's
own errors the same shape, so a client reads every error alike:

    {"detail": "trigger_args.minutes: must be above 0.", "code": "invalid_trigger",
     "errors": {"trigger_args.minutes": ["must be above 0."]}}

`detail` and `code` are always there; `errors` (field -> messages, "body" for the
body as a whole) comes with every 400; a 412 adds `current_version`.
"""

from __future__ import annotations

from typing import Any

from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler
from rest_framework.views import set_rollback

from scheduler_app.exceptions import (
    InvalidInput,
    JobAlreadyExists,
    JobBroken,
    JobNotFound,
    JobStateConflict,
    SchedulerError,
    VersionConflict,
)

BODY = "body"


class BadRequest(exceptions.APIException):
    """A 400 that names the field or header at fault."""

    status_code = status.HTTP_400_BAD_REQUEST
    default_code = "invalid"

    def __init__(self, message: str, *, field: str, code: str = "invalid") -> None:
        super().__init__({field: [message]}, code=code)
        self.code = code


def exception_handler(error: Exception, context: dict[str, Any]) -> Response | None:
    """DRF's `EXCEPTION_HANDLER`: scheduler errors mapped to HTTP, every error in one shape."""
    if isinstance(error, SchedulerError):
        set_rollback()
        return scheduler_error_response(error)
    response = drf_exception_handler(error, context)
    if response is not None:
        detail = response.data
        if isinstance(detail, dict) and set(detail) == {"detail"}:
            detail = detail["detail"]
            per_field = response.status_code == status.HTTP_400_BAD_REQUEST
        else:
            per_field = True
        response.data = _error_body(detail, _error_code(error), per_field=per_field)
    return response


def scheduler_error_response(error: SchedulerError) -> Response:
    """The HTTP response for a refused scheduler operation."""
    if isinstance(error, JobNotFound):
        return _response(status.HTTP_404_NOT_FOUND, error.message, "job_not_found")
    if isinstance(error, InvalidInput):
        body = _error_body({error.field or BODY: [error.detail]}, error.code)
        return Response(body, status=status.HTTP_400_BAD_REQUEST)
    if isinstance(error, VersionConflict):
        return _response(
            status.HTTP_412_PRECONDITION_FAILED,
            error.message,
            "version_conflict",
            current_version=error.current,
            headers={"ETag": f'"{error.current}"'},
        )
    if isinstance(error, JobBroken):
        return _response(status.HTTP_409_CONFLICT, error.message, "job_broken")
    if isinstance(error, JobAlreadyExists):
        return _response(status.HTTP_409_CONFLICT, error.message, "job_exists")
    if isinstance(error, JobStateConflict):
        return _response(status.HTTP_409_CONFLICT, error.message, "job_state_conflict")
    # Any other refusal: nothing changed, and the message says why.
    return _response(status.HTTP_409_CONFLICT, error.message, "refused")


def _response(
    status_code: int,
    message: str,
    code: str,
    *,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> Response:
    return Response({"detail": message, "code": code, **extra}, status=status_code, headers=headers)


def _error_code(error: Exception) -> str:
    if isinstance(error, BadRequest):
        return error.code
    if isinstance(error, exceptions.APIException):
        return error.default_code
    return "not_found" if isinstance(error, Http404) else "permission_denied"


def _error_body(detail: Any, code: str, *, per_field: bool = True) -> dict[str, Any]:
    """`detail` and `code`, plus `errors` by field for a bad request."""
    if not per_field:
        return {"detail": str(detail), "code": code}
    errors = _messages_by_field(detail) or {BODY: ["Invalid input."]}
    field, messages = next(iter(errors.items()))
    summary = messages[0] if field == BODY else f"{field}: {messages[0]}"
    return {"detail": summary, "code": code, "errors": errors}


def _messages_by_field(detail: Any, prefix: str = "") -> dict[str, list[str]]:
    """Flatten DRF's nested error detail into dotted field names."""
    if isinstance(detail, dict):
        errors: dict[str, list[str]] = {}
        for key, value in detail.items():
            name = BODY if key == "non_field_errors" else str(key)
            for field, messages in _messages_by_field(
                value, f"{prefix}.{name}" if prefix else name
            ).items():
                errors.setdefault(field, []).extend(messages)
        return errors
    messages = detail if isinstance(detail, list) else [detail]
    return {prefix or BODY: [str(message) for message in messages]}
