"""
The OpenAPI schema lists exactly the statuses each operation answers.

For every operation of the schema, requests made to get each status the API can give
(a success, bad input, no credentials, no permission, an Accept it cannot satisfy, a
body that is not JSON, a locked-out login, and by the operation's shape: an unknown job
or page, a conflict, a stale If-Match) go through schemathesis and its response checks,
status-code conformance among them: a status the schema leaves out fails there. The
statuses they got must then be all the schema lists: one no request gets fails too.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest
import werkzeug.test
from axes.models import AccessAttempt
from django.conf import settings
from django.contrib.auth.models import User
from django.utils import timezone
from django_apscheduler.models import DjangoJob

from project.wsgi import application
from scheduler_app import services
from scheduler_app.api.parsers import MAX_BODY_BYTES
from scheduler_app.models import Source
from tests import test_api_fuzz
from tests.test_api import PASSWORD, basic
from tests.test_api_fuzz import CHECKS, schema

JOB = "reports.weekly"
RUNTIME_JOB = "customer.42"
UNREADABLE_JOB = "unreadable.state"
LOCKED_OUT = "locked.out"
NO_PERMISSION = "staff.without.permission"
EVERY_FIVE_MINUTES = {"trigger": "cron", "trigger_args": {"crontab": "*/5 * * * *"}}

# The fuzz test's superuser and its WSGI set-up.
superuser_auth = test_api_fuzz.superuser_auth


@dataclass
class Probe:
    """One request meant to get one status from an operation."""

    why: str
    status: int
    job_id: str = JOB
    user: str | None = "fuzzer"
    body: Any = None
    query: dict[str, Any] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    # Raw bytes sent instead of `body` (with their own Content-Type in `headers`).
    raw: bytes | None = None
    before: Callable[[], None] | None = None


def credentials(user: str | None) -> dict[str, str]:
    return {} if user is None else {"Authorization": basic(user, PASSWORD)}


def lock_out(username: str) -> None:
    """A password guesser's burst against `username`, from another address (django-axes)."""
    # Through the WSGI application as the probes go (Django's test client would reconnect
    # the signal that closes the test's database connection after each request).
    guesser = werkzeug.test.Client(application)
    for attempt in range(settings.AXES_FAILURE_LIMIT):
        guesser.get("/api/scheduler/status/", environ_base={"REMOTE_ADDR": "192.0.2.10"},
                    headers={"Authorization": basic(username, f"guess {attempt}")})


def successes(method: str, path: str) -> Iterator[Probe]:
    """Requests this operation carries out."""
    hour_ago = timezone.now() - timedelta(hours=1)
    bodies: dict[tuple[str, str], list[Probe]] = {
        ("POST", "/jobs/"): [Probe("create", 201, body={
            "id": "customer.43", "function": "reports.customer_report",
            "trigger": "cron", "trigger_args": {"hour": 7}, "kwargs": {"customer_id": 43},
        })],
        ("PATCH", "/jobs/{id}/"): [Probe("rename", 200, RUNTIME_JOB, body={"name": "ACME"})],
        ("DELETE", "/jobs/{id}/"): [Probe("delete", 204, RUNTIME_JOB)],
        ("PUT", "/jobs/{id}/schedule/"): [Probe("reschedule", 200, body=EVERY_FIVE_MINUTES)],
        ("PUT", "/jobs/{id}/policy/"): [Probe("policy", 200, body={"max_instances": 2})],
        ("POST", "/jobs/{id}/pause/"): [Probe("pause", 200, body={"reason": "Maintenance"})],
        ("POST", "/jobs/{id}/resume/"): [Probe("resume", 200)],
        ("POST", "/jobs/{id}/reset/"): [Probe("reset", 200)],
        ("POST", "/jobs/{id}/trigger/"): [Probe("run now", 202, body={})],
        ("POST", "/jobs/{id}/revert/"): [Probe("revert", 200, body={"version": 1})],
        ("POST", "/jobs/{id}/backfill/"): [
            Probe("backfill", 202, body={
                "start": hour_ago.isoformat(), "end": timezone.now().isoformat(),
            }),
            Probe("backfill dry run", 200, body={
                "start": hour_ago.isoformat(), "end": timezone.now().isoformat(),
                "dry_run": True,
            }),
        ],
    }
    yield from bodies.get((method, path), [Probe("read", 200)])


def probes(method: str, path: str, parameters: set[str]) -> Iterator[Probe]:
    """Every request this operation should answer, by its shape: whether it is a write,
    names a job, takes If-Match, is paginated."""
    write = method != "GET"
    done = list(successes(method, path))
    yield from done
    # Refusals that depend on the job, not on the body: sent with a body the operation takes.
    valid = done[0].body if write else None
    yield Probe("a body over the limit", 400, raw=b"{}".ljust(MAX_BODY_BYTES + 1),
                headers={"Content-Type": "application/json"})
    yield Probe("no credentials", 401, user=None)
    yield Probe("a NUL byte in the user name", 401, user=None, headers={
        "Authorization": "Basic " + base64.b64encode(b"a\x00b:pw").decode(),
    })
    yield Probe("no permission", 403, user=NO_PERMISSION)
    yield Probe("only XML accepted", 406, headers={"Accept": "application/xml"})
    yield Probe("a locked-out login", 429, user=LOCKED_OUT, before=lambda: lock_out(LOCKED_OUT))
    yield Probe("malformed JSON", 400, raw=b'{"reason": ',
                headers={"Content-Type": "application/json"})
    yield Probe("not JSON", 415, raw=b"reason=x", headers={"Content-Type": "text/plain"})
    if write:
        if "id" in parameters:
            yield Probe("an unreadable stored state", 409, UNREADABLE_JOB, body=valid)
        else:
            yield Probe("an id in use", 409, body={
                "id": JOB, "function": "reports.customer_report",
                "trigger": "cron", "trigger_args": {"hour": 7}, "kwargs": {"customer_id": 1},
            })
    if "id" in parameters:
        yield Probe("no such job", 404, "no.such.job", body=valid)
    if "If-Match" in parameters:
        yield Probe("a stale If-Match", 412, body=valid, headers={"If-Match": '"999"'})
        yield Probe("a malformed If-Match", 400, body=valid, headers={"If-Match": "seven"})
    if "page" in parameters:
        yield Probe("a page past the last", 404, query={"page": 999})
        yield Probe("a page size of 0", 400, query={"page_size": 0})


OPERATIONS = [result.ok() for result in schema.get_all_operations()]


@pytest.fixture
def users_and_jobs(superuser_auth) -> None:
    """The fuzz test's superuser, a staff user without permissions, one to lock out; a
    runtime job; a job whose stored state cannot be read."""
    User.objects.create_user(NO_PERMISSION, password=PASSWORD, is_staff=True)
    User.objects.create_user(LOCKED_OUT, password=PASSWORD, is_superuser=True, is_staff=True)
    services.create_job(definition={
        "id": RUNTIME_JOB, "function": "reports.customer_report",
        "trigger": "cron", "trigger_args": {"hour": 7}, "kwargs": {"customer_id": 42},
    }, actor="tests", source=Source.API)
    DjangoJob.objects.create(id=UNREADABLE_JOB, job_state=b"not a pickle",
                             next_run_time=timezone.now() + timedelta(hours=1))


def documented_statuses(operation: Any) -> set[int]:
    return {int(status) for status in operation.definition.raw["responses"]}


@pytest.mark.parametrize("operation", OPERATIONS, ids=lambda operation: operation.label)
def test_the_schema_lists_exactly_the_statuses_an_operation_answers(operation, users_and_jobs):
    path = operation.path.removeprefix("/api/scheduler")
    parameters = {parameter.name for parameter in operation.iter_parameters()}
    answered = set()

    for probe in probes(operation.method.upper(), path, parameters):
        # Each probe starts with no lock-out (ignored_auth's probes send wrong passwords).
        AccessAttempt.objects.all().delete()
        if probe.before:
            probe.before()
        body = {} if probe.body is None else {"body": probe.body, "media_type": "application/json"}
        case = operation.Case(
            path_parameters={"id": probe.job_id} if "id" in parameters else None,
            query=probe.query or None,
            **body,
        )
        headers = {**credentials(probe.user), **probe.headers}
        extra = {"data": probe.raw} if probe.raw is not None else {}

        response = case.call(headers=headers, **extra)

        assert response.status_code == probe.status, (probe.why, response.text[:300])
        case.validate_response(response, checks=CHECKS, headers=headers)
        answered.add(response.status_code)

    # A status the schema lists that no request got: the schema promises one it cannot give.
    assert answered == documented_statuses(operation)
