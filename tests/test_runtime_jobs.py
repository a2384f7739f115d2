"""Jobs created at runtime through the API: create, patch, delete, who may, and bad input."""

from __future__ import annotations

import json
import pickle
from typing import Any

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client
from django_apscheduler.models import DjangoJob, DjangoJobExecution

from scheduler_app import services
from scheduler_app.models import JobChange, JobRecord, RunRequest
from scheduler_app.state import load_state
from tests.conftest import record_execution
from tests.testapp import jobs as testapp_jobs

pytestmark = pytest.mark.django_db

JOBS = "/api/scheduler/jobs/"
FUNCTION = "probe.customer_report"
SCRIPT = "<script>alert(1)</script>"
IMG = "<img src=x onerror=alert(1)>"


def definition(job_id: str = "customer.42", **changes: Any) -> dict[str, Any]:
    return {
        "id": job_id, "function": FUNCTION, "name": "Report for ACME",
        "trigger": "cron", "trigger_args": {"hour": 7, "minute": 30},
        "kwargs": {"customer_id": 42}, **changes,
    }


def user_client(*codenames: str, staff: bool = True) -> Client:
    user = User.objects.create_user(f"u_{'_'.join(codenames) or 'none'}_{staff}", is_staff=staff)
    user.user_permissions.add(*Permission.objects.filter(
        content_type__app_label="django_apscheduler", codename__in=codenames))
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def admin(synced) -> Client:
    client = Client()
    client.force_login(User.objects.create_superuser("root"))
    return client


def send(client: Client, method: str, path: str, body: Any = None, **headers: str) -> Any:
    return getattr(client, method)(
        path, data=json.dumps(body) if body is not None else "",
        content_type="application/json", headers=headers,
    )


def nothing_written(job_id: str) -> bool:
    return (not DjangoJob.objects.filter(id=job_id).exists()
            and not JobChange.objects.filter(job_id=job_id).exists())


def test_post_creates_a_runtime_job_with_its_kwargs_and_etag(admin):
    response = send(admin, "post", JOBS, definition())
    assert response.status_code == 201, response.json()
    job = response.json()
    assert response["ETag"] == '"1"'
    assert job["origin"] == "runtime"
    assert job["function"] == FUNCTION
    assert job["kwargs"] == {"customer_id": 42}
    assert job["name"] == "Report for ACME"
    assert job["trigger_args"]["hour"] == "7" and job["enabled"]
    assert not job["orphaned"] and job["default_schedule"] is None
    state = load_state(DjangoJob.objects.get(id="customer.42").job_state)
    assert state["kwargs"] == {"customer_id": 42}
    assert state["func"] == "tests.testapp.jobs:customer_report"
    change = JobChange.objects.get(job_id="customer.42")
    assert (change.action, change.actor, change.source) == ("created", "root", "api")
    listed = send(admin, "get", f"{JOBS}?origin=runtime").json()["results"]
    assert [item["id"] for item in listed] == ["customer.42"]
    code_job = send(admin, "get", f"{JOBS}reports.weekly/").json()
    assert (code_job["origin"], code_job["function"]) == ("code", "reports.weekly")


def test_a_scheduled_job_function_is_schedulable_under_its_job_id(admin):
    body = definition(function="probe.record", kwargs={"label": "from a runtime job"})
    response = send(admin, "post", JOBS, body)
    assert response.status_code == 201, response.json()
    assert load_state(DjangoJob.objects.get(id="customer.42").job_state)["func"] == (
        "tests.testapp.jobs:record_run")


def test_policy_fields_are_stored_and_defaulted(admin):
    body = definition(max_instances=3, coalesce=False, misfire_grace_time=None,
                      pause_after_failures=2)
    job = send(admin, "post", JOBS, body).json()
    assert (job["max_instances"], job["coalesce"], job["misfire_grace_time"]) == (3, False, None)
    assert job["pause_after_failures"] == 2
    job = send(admin, "post", JOBS, definition("customer.43")).json()
    assert (job["max_instances"], job["coalesce"], job["misfire_grace_time"]) == (1, True, 60)


@pytest.mark.parametrize(
    ("changes", "field", "code"),
    [
        ({"function": "tests.testapp.jobs.customer_report"}, "function", "unknown_function"),
        ({"function": "tests.testapp.jobs:customer_report"}, "function", "unknown_function"),
        ({"function": "os.system"}, "function", "unknown_function"),
        ({"function": "nothing.registered"}, "function", "unknown_function"),
        ({"function": {"pickle": "x"}}, "function", "invalid"),
        ({"function": pickle.dumps(print).hex()}, "function", "unknown_function"),
        ({"kwargs": {"customer_id": 1, "colour": "red"}}, "kwargs.colour", "invalid_arguments"),
        ({"kwargs": {}}, "kwargs.customer_id", "invalid_arguments"),
        ({"kwargs": None}, "kwargs", "invalid_arguments"),
        ({"kwargs": [42]}, "kwargs", "invalid_arguments"),
        ({"id": "bad\x00id"}, "id", "invalid"),
        ({"id": "bad\nid"}, "id", "invalid"),
        ({"id": "x" * 10_000}, "id", "invalid"),
        ({"id": "has space"}, "id", "invalid"),
        ({"id": ""}, "id", "invalid"),
        ({"name": "bad\x00name"}, "name", "invalid"),
        ({"name": "bell\x07"}, "name", "invalid"),
        ({"name": "n" * 10_000}, "name", "invalid"),
        ({"max_instances": 0}, "max_instances", "invalid_policy"),
        ({"coalesce": "yes"}, "coalesce", "invalid_policy"),
        ({"misfire_grace_time": -5}, "misfire_grace_time", "invalid_policy"),
        ({"pause_after_failures": True}, "pause_after_failures", "invalid_policy"),
        ({"trigger": "interval", "trigger_args": {"minutes": -1}}, "trigger_args.minutes",
         "invalid_trigger"),
        ({"func": "os:system"}, "func", "invalid"),
        ({"job_state": "gASV"}, "job_state", "invalid"),
    ],
)
def test_bad_definitions_are_a_400_naming_the_field_and_write_nothing(admin, changes, field, code):
    body = definition(**changes)
    job_id = body["id"] if isinstance(body["id"], str) and "\x00" not in body["id"] else None
    response = send(admin, "post", JOBS, body)
    assert response.status_code == 400, response.json()
    error = response.json()
    assert error["code"] == code
    assert field in error["errors"], error
    if job_id:
        assert nothing_written(job_id)
    assert not JobRecord.objects.filter(origin="runtime").exists()


def test_missing_id_or_function_is_a_400(admin):
    for key in ("id", "function", "trigger"):
        body = definition()
        del body[key]
        response = send(admin, "post", JOBS, body)
        assert response.status_code == 400
        assert key in response.json()["errors"]


def test_existing_or_declared_ids_are_a_409_and_change_nothing(admin):
    assert send(admin, "post", JOBS, definition()).status_code == 201
    response = send(admin, "post", JOBS, definition(name="Other", kwargs={"customer_id": 7}))
    assert response.status_code == 409 and response.json()["code"] == "job_exists"
    assert load_state(DjangoJob.objects.get(id="customer.42").job_state)["kwargs"] == {
        "customer_id": 42}
    declared = send(admin, "post", JOBS, definition("reports.weekly"))
    assert declared.status_code == 409
    assert "declared in code" in declared.json()["detail"]


def test_patch_changes_name_and_kwargs_of_a_runtime_job(admin):
    send(admin, "post", JOBS, definition())
    url = f"{JOBS}customer.42/"
    response = send(admin, "patch", url, {"name": IMG, "kwargs": {"customer_id": 7, "pages": 3}},
                    **{"If-Match": '"1"'})
    assert response.status_code == 200, response.json()
    assert response["ETag"] == '"2"'
    assert (response.json()["name"], response.json()["kwargs"]) == (
        IMG, {"customer_id": 7, "pages": 3})
    change = JobChange.objects.filter(job_id="customer.42").first()
    assert change.action == "updated" and change.after["kwargs"] == {"customer_id": 7, "pages": 3}
    assert change.before["name"] == "Report for ACME"
    stale = send(admin, "patch", url, {"name": "stale"}, **{"If-Match": '"1"'})
    assert stale.status_code == 412
    bad = send(admin, "patch", url, {"kwargs": {"nope": 1}})
    assert bad.status_code == 400 and "kwargs.nope" in bad.json()["errors"]
    missing = send(admin, "patch", url, {"kwargs": {"pages": 2}})
    assert missing.status_code == 400 and "kwargs.customer_id" in missing.json()["errors"]
    schedule = send(admin, "patch", url, {"trigger": "interval"})
    assert schedule.status_code == 400 and "trigger" in schedule.json()["errors"]
    assert send(admin, "get", url).json()["version"] == 2


def test_patch_and_delete_of_a_code_job_are_a_409(admin):
    before = DjangoJob.objects.get(id="reports.weekly").job_state
    patched = send(admin, "patch", f"{JOBS}reports.weekly/", {"name": "x"})
    assert patched.status_code == 409
    deleted = send(admin, "delete", f"{JOBS}reports.weekly/")
    assert deleted.status_code == 409
    assert "declared in code: remove it from jobs.py" in deleted.json()["detail"]
    assert DjangoJob.objects.get(id="reports.weekly").job_state == before


def test_delete_keeps_history_and_audit_readable_and_the_id_can_be_reused(admin):
    send(admin, "post", JOBS, definition())
    record_execution("customer.42", minutes_ago=5)
    RunRequest.objects.create(job_id="customer.42", requested_by="root", source="api")
    response = send(admin, "delete", f"{JOBS}customer.42/", **{"If-Match": '"1"'})
    assert response.status_code == 204
    assert send(admin, "get", f"{JOBS}customer.42/").status_code == 404
    assert "customer.42" not in [j["id"] for j in send(admin, "get", JOBS).json()["results"]]
    assert send(admin, "delete", f"{JOBS}customer.42/").status_code == 404
    assert send(admin, "post", f"{JOBS}customer.42/pause/").status_code == 404
    runs = send(admin, "get", f"{JOBS}customer.42/executions/").json()["results"]
    assert len(runs) == 1
    trail = send(admin, "get", f"{JOBS}customer.42/changes/").json()["results"]
    assert [change["action"] for change in trail] == ["deleted", "created"]
    assert RunRequest.objects.get(job_id="customer.42").status == "skipped"
    assert DjangoJob.objects.get(id="customer.42").next_run_time is None
    assert send(admin, "get", "/api/scheduler/status/").json()["jobs_total"] == len(
        services.selectors.code_job_ids())
    again = send(admin, "post", JOBS, definition(kwargs={"customer_id": 9}))
    assert again.status_code == 201 and again.json()["version"] == 3
    assert DjangoJobExecution.objects.filter(job_id="customer.42").count() == 1


@pytest.mark.parametrize(
    ("codenames", "create", "patch", "delete"),
    [
        ((), 403, 403, 403),
        (("view_djangojob",), 403, 403, 403),
        (("change_djangojob",), 403, 200, 403),
        (("add_djangojob",), 201, 403, 403),
        (("delete_djangojob",), 403, 403, 204),
    ],
)
def test_permission_matrix(admin, codenames, create, patch, delete):
    send(admin, "post", JOBS, definition("existing.job"))
    client = user_client(*codenames)
    assert send(client, "post", JOBS, definition()).status_code == create
    assert send(client, "patch", f"{JOBS}existing.job/", {"name": "n"}).status_code == patch
    assert send(client, "delete", f"{JOBS}existing.job/").status_code == delete


def test_anonymous_and_non_staff_cannot_create(synced):
    assert send(Client(), "post", JOBS, definition()).status_code in (401, 403)
    client = user_client("add_djangojob", staff=False)
    assert send(client, "post", JOBS, definition()).status_code == 403
    assert nothing_written("customer.42")


def test_names_with_html_are_text_in_the_browsable_api(admin):
    send(admin, "post", JOBS, definition(name=SCRIPT, kwargs={"customer_id": 1, "label": IMG}))
    page = admin.get(f"{JOBS}customer.42/", headers={"Accept": "text/html"}).content.decode()
    assert SCRIPT not in page and IMG not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_sync_from_code_never_touches_runtime_jobs(admin):
    send(admin, "post", JOBS, definition())
    before = bytes(DjangoJob.objects.get(id="customer.42").job_state)
    report = services.sync_jobs_from_code()
    assert "customer.42" not in report.orphaned
    assert bytes(DjangoJob.objects.get(id="customer.42").job_state) == before


def test_a_runtime_job_whose_function_disappears_is_broken_and_kept(admin, monkeypatch):
    send(admin, "post", JOBS, definition())
    monkeypatch.delattr(testapp_jobs, "customer_report")  # a deploy renamed it
    job = send(admin, "get", f"{JOBS}customer.42/").json()
    assert job["broken"] and job["origin"] == "runtime"
    assert "customer.42" in services.sync_jobs_from_code().broken
    assert send(admin, "get", JOBS).status_code == 200
