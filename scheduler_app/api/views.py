"""
Views of the scheduler API.

Each handler validates the request's shape, calls one service (writes) or selector
(reads) and serializes what it returns. Job state comes from the store on every
request; errors become JSON in `scheduler_app.api.exceptions`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from rest_framework import routers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound
from rest_framework.permissions import SAFE_METHODS
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from scheduler_app import selectors, services
from scheduler_app.api.exceptions import BadRequest, exception_handler
from scheduler_app.api.filters import (
    ExecutionFilterSerializer,
    JobFilterSerializer,
    query_filters,
)
from scheduler_app.api.openapi import (
    OpenApiExample,
    OpenApiParameter,
    OpenApiResponse,
    OpenApiTypes,
    extend_schema,
)
from scheduler_app.api.pagination import SchedulerPagination
from scheduler_app.api.parsers import MAX_BODY_BYTES, StrictJSONParser
from scheduler_app.api.permissions import CanManageJobs
from scheduler_app.api.serializers import (
    BackfillOutcomeSerializer,
    BackfillSerializer,
    ErrorSerializer,
    ExecutionSerializer,
    JobChangeSerializer,
    JobDefinitionSerializer,
    JobSerializer,
    JobUpdateSerializer,
    PauseSerializer,
    PolicySerializer,
    RevertSerializer,
    RunRequestSerializer,
    SchedulerStatusSerializer,
    ScheduleSerializer,
    TriggerSerializer,
)
from scheduler_app.exceptions import JobNotFound
from scheduler_app.models import Source

MESSAGE_HEADER = "X-Scheduler-Message"
# The If-Match this API takes: one version, quoted or not ("7" or 7), or * for any.
IF_MATCH_SYNTAX = r'\s*(?:(\*)|"([0-9]{1,18})"|([0-9]{1,18}))\s*'
_IF_MATCH = re.compile(IF_MATCH_SYNTAX)

# OpenAPI documentation shared by the operations.
JOB_ID = OpenApiParameter("id", OpenApiTypes.STR, OpenApiParameter.PATH, description="Job id.")
IF_MATCH = OpenApiParameter(
    "If-Match",
    {"type": "string", "pattern": f"^{IF_MATCH_SYNTAX}$"},
    OpenApiParameter.HEADER,
    description='The version you last saw ("7" or 7); the change is refused with 412 if '
    "the job changed since. `*` or no header: any version.",
)
ETAG = OpenApiParameter(
    "ETag",
    OpenApiTypes.STR,
    OpenApiParameter.HEADER,
    response=[200, 201, 202],
    description='The job\'s version, quoted ("7").',
)
MESSAGE = OpenApiParameter(
    MESSAGE_HEADER,
    OpenApiTypes.STR,
    OpenApiParameter.HEADER,
    response=[200],
    description='What the change did, e.g. "Job paused." or "Job is already paused."',
)
SCHEDULE_EXAMPLES = [
    OpenApiExample(
        "Every 5 minutes, as a crontab",
        value={"trigger": "cron", "trigger_args": {"crontab": "*/5 * * * *"}},
        request_only=True,
    ),
    OpenApiExample(
        "Weekdays at 09:30 in Paris",
        value={
            "trigger": "cron",
            "trigger_args": {
                "day_of_week": "mon-fri", "hour": 9, "minute": 30, "timezone": "Europe/Paris",
            },
        },
        request_only=True,
    ),
    OpenApiExample(
        "Every 2 hours",
        value={"trigger": "interval", "trigger_args": {"hours": 2}},
        request_only=True,
    ),
    OpenApiExample(
        "Once",
        value={"trigger": "date", "trigger_args": {"run_date": "2099-01-31T09:00:00+01:00"}},
        request_only=True,
    ),
]
_ERROR_MEANINGS = {
    400: "Bad input: a body (over 64 KiB, malformed JSON, a value refused), query "
    "parameter or header; `errors` names the field.",
    401: "No credentials, or credentials no user holds (a `WWW-Authenticate: Basic` "
    "challenge comes with it).",
    403: "Not staff, no permission on scheduler jobs, or a session write without its CSRF "
    "token.",
    404: "No job with that id, or no such page.",
    406: "The Accept header names no type this API answers (JSON, or HTML for the "
    "browsable API).",
    409: "The operation conflicts with the job's state (e.g. the job is broken or its "
    "stored state unreadable, the id is taken, the job is declared in code).",
    412: "Stale If-Match: the job changed; `current_version` is its version now.",
    415: "The body is not application/json, the only type writes take (with HTTP Basic "
    "credentials any operation reads its body, before the password is tried).",
    429: "Too many failed logins for this username or from this address (HTTP Basic, "
    "django-axes): every login is refused, the right password included, until "
    "`Retry-After` seconds have passed.",
}
# What any operation may answer, before it looks at a job: a body over 64 KiB or not
# JSON, no or bad credentials, no permission, an Accept header it cannot satisfy, a
# locked-out login.
ANY_OPERATION = (400, 401, 403, 406, 415, 429)


def _errors(*codes: int) -> dict[int, OpenApiResponse]:
    """The error answers of an operation: those of any operation, plus `codes`."""
    return {
        code: OpenApiResponse(ErrorSerializer, description=_ERROR_MEANINGS[code])
        for code in sorted({*ANY_OPERATION, *codes})
    }


# Reads of one job, or of a page of a list (a page past the last one is a 404).
READ_ERRORS = _errors(404)
WRITE_ERRORS = _errors(404, 409, 412)
# The operations without a body that change a job and answer with it (resume, reset).
JOB_CHANGE_SCHEMA = extend_schema(
    parameters=[JOB_ID, IF_MATCH, ETAG, MESSAGE],
    request=None,
    responses={200: JobSerializer, **WRITE_ERRORS},
)


class SchedulerAPIMixin:
    """What every scheduler API view shares: who may call it, what it parses, its errors."""

    permission_classes = [CanManageJobs]
    parser_classes = [StrictJSONParser]
    pagination_class = SchedulerPagination

    def get_exception_handler(self) -> Callable[..., Response | None]:
        return exception_handler

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        # DRF's JSON parser ignores DATA_UPLOAD_MAX_MEMORY_SIZE: refuse big bodies unread.
        if _content_length(request) > MAX_BODY_BYTES:
            raise BadRequest(
                f"The request body is larger than {MAX_BODY_BYTES} bytes.",
                field="body",
                code="body_too_large",
            )
        super().initial(request, *args, **kwargs)
        if request.method not in SAFE_METHODS:
            # Parse every write's body up front, used or not: only JSON gets in (415),
            # and malformed JSON is a 400 here rather than a surprise while rendering.
            request.data  # noqa: B018


class JobViewSet(SchedulerAPIMixin, viewsets.GenericViewSet):
    """Scheduler jobs: read, create, rename, delete, reschedule, change their run policy,
    pause, resume, run now, reset."""

    lookup_field = "id"
    # Job ids are dotted ("reports.weekly"): DRF's default would stop at the dot.
    lookup_value_regex = "[^/]+"
    serializer_class = JobSerializer

    def get_serializer_class(self) -> type:
        serializer_classes = {
            "create": JobDefinitionSerializer,
            "partial_update": JobUpdateSerializer,
            "schedule": ScheduleSerializer,
            "policy": PolicySerializer,
            "pause": PauseSerializer,
            "revert": RevertSerializer,
            "backfill": BackfillSerializer,
            "trigger": TriggerSerializer,
            "executions": ExecutionSerializer,
            "changes": JobChangeSerializer,
        }
        return serializer_classes.get(self.action, JobSerializer)

    def get_serializer(self, *args: Any, **kwargs: Any) -> Any:
        if self.action == "schedule" and not args and not kwargs.get("instance"):
            # The browsable API's form for a PUT: start from the job's schedule now.
            kwargs["instance"] = self._current_schedule()
        return super().get_serializer(*args, **kwargs)

    def _current_schedule(self) -> dict[str, Any] | None:
        try:
            job = selectors.get_job(job_id=self.job_id)
        except JobNotFound:
            return None
        return {"trigger": job.trigger, "trigger_args": job.trigger_args}

    def get_queryset(self) -> Any:
        # Unfiltered: the browsable API asks for it while rendering any page of this viewset.
        return selectors.job_queryset()

    @property
    def job_id(self) -> str:
        job_id = self.kwargs["id"]
        if "\x00" in job_id:
            # No job id holds a NUL, and PostgreSQL refuses one in a query.
            raise JobNotFound(job_id)
        return job_id

    def _stored_job_id(self) -> str:
        """This job's id, after checking that the store holds it or its history (404 otherwise)."""
        if not selectors.job_exists(job_id=self.job_id, include_deleted=True):
            raise JobNotFound(self.job_id)
        return self.job_id

    def _changed_job_response(
        self,
        service: Callable[..., services.ChangeOutcome],
        request: Request,
        **arguments: Any,
    ) -> Response:
        """Call a service that changes this job; answer with the job as it is now."""
        outcome = service(job_id=self.job_id, **arguments, **_change(request))
        return _job_response(outcome.job, message=outcome.message)

    @extend_schema(
        parameters=[JobFilterSerializer], responses={200: JobSerializer, **READ_ERRORS}
    )
    def list(self, request: Request) -> Response:
        """Jobs, a page at a time; filter by `enabled`, `trigger`, `search`; `ordering`."""
        rows = selectors.job_value_rows(**query_filters(JobFilterSerializer, request))
        views = selectors.job_views_of_values(self.paginate_queryset(rows))
        return self.get_paginated_response(JobSerializer(views, many=True).data)

    @extend_schema(
        parameters=[ETAG],
        request=JobDefinitionSerializer,
        responses={201: JobSerializer, **_errors(409)},
        examples=[OpenApiExample(
            "A report per customer, at 07:00",
            value={
                "id": "reports.customer.42", "function": "reports.customer_report",
                "name": "Report for ACME", "trigger": "cron", "trigger_args": {"hour": 7},
                "kwargs": {"customer_id": 42},
            },
            request_only=True,
        )],
    )
    def create(self, request: Request) -> Response:
        """Create a job at runtime that calls a registered job function with `kwargs`."""
        outcome = services.create_job(definition=request.data, **_author(request))
        return _job_response(outcome.job, message=outcome.message,
                             status_code=status.HTTP_201_CREATED)

    @extend_schema(
        parameters=[JOB_ID, IF_MATCH, ETAG, MESSAGE],
        request=JobUpdateSerializer,
        responses={200: JobSerializer, **WRITE_ERRORS},
    )
    def partial_update(self, request: Request, **kwargs: Any) -> Response:
        """Change the `name` and `kwargs` of a runtime job (the schedule has its own endpoint)."""
        if not isinstance(request.data, dict):
            raise BadRequest("must be a JSON object.", field="body")
        return self._changed_job_response(services.update_job, request, changes=request.data)

    @extend_schema(
        parameters=[JOB_ID, IF_MATCH], request=None, responses={204: None, **WRITE_ERRORS}
    )
    def destroy(self, request: Request, **kwargs: Any) -> Response:
        """Delete a runtime job; its runs and audit trail stay readable. Code jobs: 409."""
        services.delete_job(job_id=self.job_id, **_change(request))
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(parameters=[JOB_ID, ETAG], responses={200: JobSerializer, **READ_ERRORS})
    def retrieve(self, request: Request, **kwargs: Any) -> Response:
        """One job, read under its row lock; the `ETag` header is its version."""
        return _job_response(selectors.get_job(job_id=self.job_id))

    @extend_schema(
        parameters=[JOB_ID, IF_MATCH, ETAG, MESSAGE],
        request=ScheduleSerializer,
        responses={200: JobSerializer, **WRITE_ERRORS},
        examples=SCHEDULE_EXAMPLES,
    )
    @action(detail=True, methods=["put"])
    def schedule(self, request: Request, **kwargs: Any) -> Response:
        """Give the job a new schedule (a trigger spec); a paused job stays paused."""
        serializer = ScheduleSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        return self._changed_job_response(
            services.reschedule_job, request, trigger_spec=dict(serializer.validated_data)
        )

    @extend_schema(
        parameters=[JOB_ID, IF_MATCH, ETAG, MESSAGE],
        request=PolicySerializer,
        responses={200: JobSerializer, **WRITE_ERRORS},
        examples=[
            OpenApiExample(
                "At most 2 overlapping runs, pause after 3 failures in a row",
                value={"max_instances": 2, "pause_after_failures": 3},
                request_only=True,
            ),
            OpenApiExample(
                "Always run late runs, one by one",
                value={"misfire_grace_time": None, "coalesce": False},
                request_only=True,
            ),
        ],
    )
    @action(detail=True, methods=["put"])
    def policy(self, request: Request, **kwargs: Any) -> Response:
        """Change the job's run policy: any of max_instances, coalesce, misfire_grace_time
        and pause_after_failures; the fields left out keep their value."""
        serializer = PolicySerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        return self._changed_job_response(
            services.set_job_policy, request, policy=dict(serializer.validated_data)
        )

    @extend_schema(
        parameters=[JOB_ID, IF_MATCH, ETAG, MESSAGE],
        request=PauseSerializer,
        responses={200: JobSerializer, **WRITE_ERRORS},
        examples=[
            OpenApiExample(
                "Paused for a maintenance window",
                value={"reason": "Database maintenance", "until": "2027-01-31T06:00:00Z"},
                request_only=True,
            ),
        ],
    )
    @action(detail=True, methods=["post"])
    def pause(self, request: Request, **kwargs: Any) -> Response:
        """Pause the job: no run starts after this. The optional body gives a `reason`
        and an `until` at which the scheduler resumes it. Pausing a paused job changes
        nothing unless it gives a new reason or end."""
        serializer = PauseSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        return self._changed_job_response(
            services.pause_job, request, **serializer.validated_data
        )

    @JOB_CHANGE_SCHEMA
    @action(detail=True, methods=["post"])
    def resume(self, request: Request, **kwargs: Any) -> Response:
        """Resume the job from its next fire time. Resuming a running job changes nothing."""
        return self._changed_job_response(services.resume_job, request)

    @extend_schema(
        parameters=[JOB_ID, IF_MATCH, ETAG],
        request=TriggerSerializer,
        responses={202: RunRequestSerializer, **WRITE_ERRORS},
        examples=[
            OpenApiExample(
                "With arguments for this run", value={"kwargs": {"label": "rerun"}},
                request_only=True,
            ),
        ],
    )
    @action(detail=True, methods=["post"])
    def trigger(self, request: Request, **kwargs: Any) -> Response:
        """Ask the scheduler process to run the job once, now, optionally with `kwargs`
        for this run only; its schedule and stored arguments stay as they are."""
        serializer = TriggerSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        run_request = services.request_job_run(
            job_id=self.job_id, kwargs=serializer.validated_data.get("kwargs"), **_change(request)
        )
        return Response(
            RunRequestSerializer(run_request).data,
            status=status.HTTP_202_ACCEPTED,
            headers={"ETag": _etag(run_request.job.record.version)},
        )

    @extend_schema(
        parameters=[JOB_ID, IF_MATCH, ETAG, MESSAGE],
        request=RevertSerializer,
        responses={200: JobSerializer, **WRITE_ERRORS},
        examples=[OpenApiExample("Back to version 3", value={"version": 3}, request_only=True)],
    )
    @action(detail=True, methods=["post"])
    def revert(self, request: Request, **kwargs: Any) -> Response:
        """Restore the schedule, run policy and paused state the job had right after
        `version`, as a new version ("Reverted to version N"); 409 if the audit trail no
        longer holds that version."""
        serializer = RevertSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        return self._changed_job_response(
            services.revert_job, request, version=serializer.validated_data["version"]
        )

    @extend_schema(
        parameters=[JOB_ID, IF_MATCH],
        request=BackfillSerializer,
        responses={202: BackfillOutcomeSerializer, 200: BackfillOutcomeSerializer,
                   **WRITE_ERRORS},
        examples=[OpenApiExample(
            "Make up for a night of downtime",
            value={"start": "2027-01-30T22:00:00Z", "end": "2027-01-31T06:00:00Z"},
            request_only=True,
        )],
    )
    @action(detail=True, methods=["post"])
    def backfill(self, request: Request, **kwargs: Any) -> Response:
        """Queue, through the scheduler, every run the job's current schedule would have
        made from `start` to `end`, each recorded under its scheduled time; times that
        ran or were queued already are counted, not queued again. 202 (200 with
        `dry_run`); a paused job stays paused."""
        serializer = BackfillSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        outcome = services.backfill_job(
            job_id=self.job_id, **serializer.validated_data, **_change(request)
        )
        code = status.HTTP_200_OK if outcome.dry_run else status.HTTP_202_ACCEPTED
        return Response(BackfillOutcomeSerializer(outcome).data, status=code)

    @JOB_CHANGE_SCHEMA
    @action(detail=True, methods=["post"])
    def reset(self, request: Request, **kwargs: Any) -> Response:
        """Put the job's schedule and arguments back to its code default."""
        return self._changed_job_response(services.reset_job, request)

    @extend_schema(
        parameters=[JOB_ID], responses={200: ExecutionSerializer(many=True), **READ_ERRORS}
    )
    @action(detail=True, methods=["get"])
    def executions(self, request: Request, **kwargs: Any) -> Response:
        """The job's runs, newest first."""
        job_id = self._stored_job_id()
        return _execution_page(self, selectors.execution_queryset(job_id=job_id))

    @extend_schema(
        parameters=[JOB_ID], responses={200: JobChangeSerializer(many=True), **READ_ERRORS}
    )
    @action(detail=True, methods=["get"])
    def changes(self, request: Request, **kwargs: Any) -> Response:
        """The job's audit trail, newest first: who changed what, through which door."""
        page = self.paginate_queryset(selectors.change_queryset(job_id=self._stored_job_id()))
        return self.get_paginated_response(JobChangeSerializer(page, many=True).data)


class ExecutionViewSet(SchedulerAPIMixin, viewsets.GenericViewSet):
    """Recorded runs of all jobs."""

    serializer_class = ExecutionSerializer

    def get_queryset(self) -> Any:
        return selectors.execution_queryset()

    @extend_schema(
        parameters=[ExecutionFilterSerializer],
        responses={200: ExecutionSerializer, **READ_ERRORS},
    )
    def list(self, request: Request) -> Response:
        """All runs, newest first; filter by `job` and `status`."""
        filters = query_filters(ExecutionFilterSerializer, request)
        rows = selectors.execution_queryset(job_id=filters.get("job"), status=filters.get("status"))
        return _execution_page(self, rows)


class SchedulerStatusViewSet(SchedulerAPIMixin, viewsets.GenericViewSet):
    """Whether the scheduler process is alive, by its heartbeat, and job counts."""

    serializer_class = SchedulerStatusSerializer

    @extend_schema(responses={200: SchedulerStatusSerializer, **_errors()})
    def retrieve(self, request: Request) -> Response:
        return Response(SchedulerStatusSerializer(selectors.scheduler_status()).data)


class SchedulerRootView(SchedulerAPIMixin, routers.APIRootView):
    """The scheduler API: jobs, executions and the scheduler's status."""


class UnknownEndpointView(SchedulerAPIMixin, APIView):
    """Any other path under the API: a JSON 404 instead of Django's HTML page.

    It also keeps Django's APPEND_SLASH from answering a POST to a path without
    its trailing slash with an error (DEBUG) or a redirect that drops the body.
    """

    schema = None

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)
        raise NotFound("No such endpoint. The API's paths end with a slash: jobs/{id}/pause/.")


def expected_version(request: Request) -> int | None:
    """The version in the If-Match header; None when absent or `*` (any version)."""
    header = request.headers.get("If-Match")
    if header is None:
        return None
    match = _IF_MATCH.fullmatch(header)
    if match is None:
        raise BadRequest(
            f'must be one job version, like "7" or 7, or *; got {header[:50]!r}.',
            field="If-Match",
            code="invalid_if_match",
        )
    any_version, quoted, bare = match.groups()
    return None if any_version else int(quoted or bare)


def _author(request: Request) -> dict[str, Any]:
    """Who makes a change from the API, as the services take it."""
    return {"actor": request.user.get_username(), "source": Source.API}


def _change(request: Request) -> dict[str, Any]:
    """The keyword arguments every service call on an existing job from the API shares."""
    return {**_author(request), "expected_version": expected_version(request)}


def _job_response(
    job: selectors.JobView, *, message: str = "", status_code: int = status.HTTP_200_OK
) -> Response:
    headers = {"ETag": _etag(job.version)}
    if message:
        headers[MESSAGE_HEADER] = message
    return Response(JobSerializer(job).data, status=status_code, headers=headers)


def _execution_page(view: viewsets.GenericViewSet, rows: Any) -> Response:
    page = view.paginate_queryset(rows)
    views = [selectors.ExecutionView.from_row(row) for row in page]
    return view.get_paginated_response(ExecutionSerializer(views, many=True).data)


def _etag(version: int) -> str:
    return f'"{version}"'


def _content_length(request: Request) -> int:
    try:
        return int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return 0
