"""
Property-based fuzz of the REST API from its own OpenAPI schema (schemathesis).

Every operation gets generated requests, valid and invalid, sent through the
project's WSGI application. Whatever comes in: no 5xx, responses as documented
(statuses, headers, bodies), authentication enforced, and a refused request (4xx)
changes nothing in the store. Some requests keep the credentials schemathesis generates
for the schema's security schemes (a Basic header or a session cookie of any bytes):
those are refused: 401, or 400/415 for a body the API cannot read (read before any
password is tried).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from axes.models import AccessAttempt
from django.contrib.auth.models import User
from django.core import signals
from django.db import close_old_connections
from django_apscheduler.models import DjangoJob
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.renderers import OpenApiJsonRenderer
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    ignored_auth,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from project.wsgi import application
from scheduler_app.models import JobChange, JobRecord, RunRequest
from tests.test_api import PASSWORD, basic

# Jobs the generated ids are pointed at, so that writes reach real jobs too.
REAL_JOBS = ("reports.weekly", "cache.warm", "probe.record")
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    negative_data_rejection,
    ignored_auth,
]


def load_schema() -> Any:
    document = SchemaGenerator().get_schema(request=None, public=True)
    loaded = schemathesis.openapi.from_dict(json.loads(OpenApiJsonRenderer().render(document)))
    loaded.app = application
    return loaded


schema = load_schema()


@pytest.fixture
def superuser_auth(synced) -> Iterator[dict[str, str]]:
    User.objects.create_superuser("fuzzer", password=PASSWORD)
    # The WSGI handler closes the database connection after each request, and with
    # it the test's transaction; Django's test client disconnects this the same way.
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    # HTTP Basic: the fuzz needs neither a session nor CSRF tokens.
    yield {"Authorization": basic("fuzzer", PASSWORD)}
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


def store_state() -> tuple[Any, ...]:
    """Every job row, version, audit entry and run request."""
    return (
        [(id_, when, bytes(state)) for id_, when, state in
         DjangoJob.objects.order_by("id").values_list("id", "next_run_time", "job_state")],
        list(JobRecord.objects.order_by("job_id").values_list("job_id", "version")),
        JobChange.objects.count(),
        RunRequest.objects.count(),
    )


def aim_at_real_jobs(case: Any) -> None:
    """Send most generated job ids to real jobs, and drop most If-Match headers.

    Random ids only find 404s and random versions only find 412s; chosen by the
    generated value, so that Hypothesis still shrinks a failure.
    """
    if case.path_parameters and "id" in case.path_parameters:
        generated = str(case.path_parameters["id"])
        choices = [*REAL_JOBS, generated]
        case.path_parameters["id"] = choices[len(generated) % len(choices)]
    if case.headers and "If-Match" in case.headers and len(case.headers["If-Match"]) % 3:
        del case.headers["If-Match"]


def sends_generated_credentials(case: Any) -> bool:
    """Whether this case goes with the credentials schemathesis generated (about a third
    of those that have some) instead of the superuser's; chosen by the generated value."""
    generated = (case.headers or {}).get("Authorization") or (case.cookies or {}).get("sessionid")
    return generated is not None and len(generated) % 3 == 0


@schema.parametrize()
@settings(
    max_examples=40,
    deadline=None,
    # The same examples on every run: a CI run must not fail on a case no earlier run
    # tried. New cases come with new endpoints and schema changes.
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_no_request_gets_a_server_error_or_changes_a_job_when_refused(case, superuser_auth):
    aim_at_real_jobs(case)
    # Each example starts with no lock-out: failed logins of earlier ones (generated
    # credentials, ignored_auth's probes) would otherwise lock every later one out (429).
    AccessAttempt.objects.all().delete()
    generated = sends_generated_credentials(case)
    credentials = None if generated else superuser_auth
    before = store_state()

    response = case.call(headers=credentials)

    case.validate_response(response, checks=CHECKS, headers=credentials)
    if generated:
        assert response.status_code in (400, 401, 415), response.text[:300]
    if 400 <= response.status_code < 500:
        assert store_state() == before, f"{response.status_code} changed the store"

