"""The admin's "Add job" and delete for runtime jobs: who may, what is checked, what is shown."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django_apscheduler.models import DjangoJob

from scheduler_app import selectors, services
from scheduler_app.models import JobChange
from tests.conftest import messages_of, record_execution, staff_client

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/scheduler_app/job/"
ADD = f"{CHANGELIST}add/"
FUNCTION = "probe.customer_report"
SCRIPT = "<script>alert(1)</script>"
IMG = "<img src=x onerror=alert(1)>"


def form_data(**changes: Any) -> dict[str, Any]:
    return {
        "id": "customer.42", "name": "Report for ACME", "function": FUNCTION,
        "kwargs": json.dumps({"customer_id": 42}), "max_instances": "1", "coalesce": "on",
        "misfire_grace_time": "60", "trigger": "cron", "hour": "7", "minute": "30", **changes,
    }


@pytest.fixture
def superuser(synced) -> Client:
    client = Client()
    client.force_login(User.objects.create_superuser("root"))
    return client


def create(job_id: str = "customer.42", **definition: Any) -> None:
    services.create_job(definition={
        "id": job_id, "function": FUNCTION, "trigger": "interval",
        "trigger_args": {"hours": 1}, "kwargs": {"customer_id": 1}, **definition,
    }, actor="root", source="api")


def test_add_page_shows_each_function_with_its_docstring_and_parameters(superuser):
    page = superuser.get(ADD).content.decode()
    assert "probe.customer_report" in page
    assert "customer_id: int, label: str = &#x27;report&#x27;, pages: int = 1" in page
    assert "Every job created at runtime in the tests calls this one." in page
    assert 'id="schedule-form"' in page and "data-preview-url" in page
    preview = superuser.get(f"{CHANGELIST}add/preview/", {"trigger": "interval", "minutes": "5"})
    assert preview.json()["valid"] and preview.json()["description"] == "Every 5 minutes"


def test_add_creates_a_runtime_job_through_the_service(superuser):
    response = superuser.post(ADD, form_data())
    assert response.status_code == 302, response.content.decode()[:2000]
    job = selectors.get_job(job_id="customer.42")
    assert (job.origin, job.function, job.kwargs) == ("runtime", FUNCTION, {"customer_id": 42})
    assert job.trigger_args["hour"] == "7"
    change = JobChange.objects.get(job_id="customer.42")
    assert (change.action, change.source, change.actor) == ("created", "admin", "root")
    assert any("Job created: customer.42" in message for message in messages_of(response))


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"kwargs": json.dumps({"customer_id": 1, "colour": "red"})}, "kwargs",
         "colour: customer_report() has no parameter 'colour'"),
        ({"kwargs": "{}"}, "kwargs", "customer_id: customer_report() needs a value"),
        ({"kwargs": "{not json"}, "kwargs", "Not JSON"),
        ({"function": "tests.testapp.jobs:customer_report"}, "function", "Select a valid choice"),
        ({"id": "reports.weekly"}, "id", "declared in code"),
        ({"id": "bad\x00id"}, "id", ""),
        ({"id": "x" * 10_000}, "id", "at most 191 characters"),
        ({"name": "tab\there"}, "name", "control characters"),
        ({"minute": "61"}, "minute", ""),
    ],
)
def test_add_refuses_bad_input_on_its_field_and_writes_nothing(superuser, changes, field, message):
    response = superuser.post(ADD, form_data(**changes))
    assert response.status_code == 200
    errors = {**response.context["form"].errors, **response.context["schedule"].errors}
    assert field in errors, errors
    assert message in " ".join(errors[field])
    assert not selectors.job_exists(job_id="customer.42")
    assert not JobChange.objects.filter(action="created", source="admin").exists()


def test_add_needs_the_add_permission(synced):
    editor = staff_client("change_djangojob")
    assert editor.get(ADD).status_code == 403
    assert editor.post(ADD, form_data()).status_code == 403
    assert not selectors.job_exists(job_id="customer.42")
    client = staff_client("add_djangojob")
    assert client.post(ADD, form_data()).status_code == 302
    assert selectors.get_job(job_id="customer.42").origin == "runtime"


def test_delete_of_a_runtime_job_keeps_its_runs_and_changes(superuser):
    create()
    record_execution("customer.42", minutes_ago=3)
    change_page = superuser.get(f"{CHANGELIST}customer.42/change/").content.decode()
    assert "/delete/" in change_page
    confirm = superuser.get(f"{CHANGELIST}customer.42/delete/")
    assert confirm.status_code == 200 and "Job customer.42" in confirm.content.decode()
    response = superuser.post(f"{CHANGELIST}customer.42/delete/", {"post": "yes"})
    assert response.status_code == 302
    assert not selectors.job_exists(job_id="customer.42")
    assert JobChange.objects.filter(job_id="customer.42").first().action == "deleted"
    runs = superuser.get("/admin/scheduler_app/run/", {"job_id": "customer.42"})
    assert "customer.42" in runs.content.decode()
    assert superuser.get(f"{CHANGELIST}customer.42/change/").status_code == 302


def test_code_jobs_cannot_be_deleted_in_the_admin(superuser):
    page = superuser.get(f"{CHANGELIST}reports.weekly/change/").content.decode()
    assert "/delete/" not in page
    assert superuser.post(f"{CHANGELIST}reports.weekly/delete/", {"post": "yes"}).status_code == 403
    assert selectors.job_exists(job_id="reports.weekly")


def test_delete_selected_deletes_runtime_jobs_and_refuses_code_jobs(superuser):
    create("customer.1")
    create("customer.2")
    response = superuser.post(CHANGELIST, {
        "action": "delete_selected", "_selected_action": ["customer.1", "customer.2"],
        "post": "yes",
    })
    assert response.status_code == 302
    assert not selectors.job_exists(job_id="customer.1")
    assert not selectors.job_exists(job_id="customer.2")
    selection = {"action": "delete_selected", "_selected_action": ["reports.weekly"]}
    confirmation = superuser.post(CHANGELIST, selection)
    assert "job declared in code" in confirmation.content.decode()
    assert superuser.post(CHANGELIST, {**selection, "post": "yes"}).status_code == 403
    assert selectors.job_exists(job_id="reports.weekly")


def test_delete_needs_the_delete_permission(synced):
    create()
    client = staff_client("change_djangojob")
    assert client.post(f"{CHANGELIST}customer.42/delete/", {"post": "yes"}).status_code == 403
    assert "/delete/" not in client.get(f"{CHANGELIST}customer.42/change/").content.decode()
    assert selectors.job_exists(job_id="customer.42")


def test_operator_text_is_shown_as_text_on_the_list_and_change_page(superuser):
    create("customer.42", name=SCRIPT, kwargs={"customer_id": 1, "label": IMG})
    create("customer.43", name=IMG)
    for path in (CHANGELIST, f"{CHANGELIST}customer.42/change/", "/admin/scheduler_app/jobchange/"):
        page = superuser.get(path).content.decode()
        assert SCRIPT not in page and IMG not in page, path
    listing = superuser.get(CHANGELIST).content.decode()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in listing
    assert "&lt;img src=x onerror=alert(1)&gt;" in listing
    assert DjangoJob.objects.filter(id="customer.43").exists()


def test_the_list_filters_by_origin(superuser):
    create()
    runtime = superuser.get(CHANGELIST, {"origin": "runtime"}).content.decode()
    assert "customer.42" in runtime and "reports.weekly" not in runtime
    code = superuser.get(CHANGELIST, {"origin": "code"}).content.decode()
    assert "customer.42" not in code and "reports.weekly" in code
