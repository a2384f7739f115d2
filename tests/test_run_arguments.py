"""Run now with arguments, and the `scheduled_time` every run gets: bound against the
function's signature before anything is stored, through the API, the admin and the CLI,
recorded on the request, the execution and the audit trail, and passed by a real
scheduler to that run only."""

from __future__ import annotations

import json
from datetime import datetime
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.urls import reverse
from django_apscheduler.models import DjangoJobExecution

from scheduler_app import binding, selectors, services
from scheduler_app.exceptions import InvalidArguments
from scheduler_app.models import ExecutionRecord, JobChange, RunRequest
from tests.conftest import edit_stored_job, messages_of, snapshot, staff_client, wait_for
from tests.testapp.models import ProbeRun

JOB = "probe.record"
TRIGGER_URL = f"/api/scheduler/jobs/{JOB}/trigger/"
EVERY_SECOND = {"trigger": "cron", "trigger_args": {"second": "*"}}


@pytest.fixture
def api(synced):
    return staff_client("view_djangojob", "change_djangojob")


def post(client, path: str, body: object):
    return client.post(path, json.dumps(body), content_type="application/json")


def scheduler(*args: str) -> str:
    stdout = StringIO()
    call_command("scheduler", *args, stdout=stdout, stderr=StringIO())
    return stdout.getvalue()


def operator(job_id: str = JOB) -> dict[str, str]:
    return {"job_id": job_id, "actor": "alice", "source": "api"}


# Binding


def test_binding_names_an_unknown_or_missing_parameter_and_refuses_non_json():
    def job(limit: int, *, dry_run: bool = False, scheduled_time: datetime | None = None):
        pass

    assert binding.bind_kwargs(job, {"limit": 3, "dry_run": True}) == {"limit": 3,
                                                                       "dry_run": True}
    for kwargs, field in (
        ({"limit": 1, "nope": 2}, "kwargs.nope"),
        ({"dry_run": True}, "kwargs.limit"),
        ({"limit": {1, 2}}, "kwargs.limit"),
        ({"limit": float("nan")}, "kwargs.limit"),
        ({"limit": 1, "scheduled_time": "2027-01-01"}, "kwargs.scheduled_time"),
        ([1], "kwargs"),
    ):
        with pytest.raises(InvalidArguments) as refused:
            binding.bind_kwargs(job, kwargs)
        assert refused.value.field == field, kwargs
    assert binding.bind_kwargs(job, {}, defaults={"limit": 5}) == {}


def test_scheduled_time_is_passed_only_to_functions_that_declare_it():
    moment = datetime(2027, 1, 1)

    def wants(scheduled_time): ...
    def does_not(label=""): ...

    assert binding.run_kwargs(wants, {}, run_kwargs=None, scheduled_time=moment) == {
        "scheduled_time": moment}
    assert binding.run_kwargs(does_not, {"label": "a"}, run_kwargs={"label": "b"},
                              scheduled_time=moment) == {"label": "b"}


# The API


def test_trigger_with_kwargs_records_them_on_the_request_and_in_the_audit(api):
    version = selectors.get_job(job_id=JOB).version

    response = post(api, TRIGGER_URL, {"kwargs": {"label": "rerun"}})

    assert response.status_code == 202, response.json()
    assert response.json()["kwargs"] == {"label": "rerun"}
    run_request = RunRequest.objects.get(id=response.json()["id"])
    assert run_request.kwargs == {"label": "rerun"}
    audit = JobChange.objects.filter(job_id=JOB).first()
    assert audit.action == "run_requested" and audit.after["run_kwargs"] == {"label": "rerun"}
    job = selectors.get_job(job_id=JOB)
    assert job.kwargs == {} and job.version == version, "the stored job does not change"


def test_trigger_with_a_missing_required_parameter_names_it(api):
    edit_stored_job("probe.needs", kwargs={})  # an operator's run must supply the limit now
    before = snapshot("probe.needs")

    response = post(api, "/api/scheduler/jobs/probe.needs/trigger/", {"kwargs": {}})

    assert response.status_code == 400
    assert "kwargs.limit" in response.json()["errors"]
    assert snapshot("probe.needs") == before
    ok = post(api, "/api/scheduler/jobs/probe.needs/trigger/", {"kwargs": {"limit": 5}})
    assert ok.status_code == 202


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"kwargs": {"nope": 1}}, "kwargs.nope"),
        ({"kwargs": [1]}, "kwargs"),
        ({"kwargs": "label=x"}, "kwargs"),
        ({"kwargs": {"scheduled_time": "now"}}, "kwargs.scheduled_time"),
        ({"kwarg": {"label": "x"}}, "kwarg"),
    ],
)
def test_bad_kwargs_are_a_400_naming_them_and_store_nothing(api, body, field):
    before = snapshot(JOB)

    response = post(api, TRIGGER_URL, body)

    assert response.status_code == 400, response.json()
    assert field in response.json()["errors"], response.json()
    assert snapshot(JOB) == before


# The CLI and the admin


def test_cli_trigger_with_kwargs_parses_json_values(synced):
    output = scheduler("trigger", "probe.needs", "--kwarg", "limit=5", "--kwarg", "dry_run=true")

    assert '{"limit": 5, "dry_run": true}' in output
    assert RunRequest.objects.get().kwargs == {"limit": 5, "dry_run": True}
    scheduler("trigger", JOB, "--kwarg", "label=plain text")
    assert RunRequest.objects.first().kwargs == {"label": "plain text"}


def test_cli_bad_kwarg_is_a_command_error_naming_it_and_stores_nothing(synced):
    before = snapshot(JOB)

    with pytest.raises(CommandError, match="kwargs.nope"):
        scheduler("trigger", JOB, "--kwarg", "nope=1")
    with pytest.raises(CommandError, match="given twice"):
        scheduler("trigger", JOB, "--kwarg", "label=a", "--kwarg", "label=b")

    assert snapshot(JOB) == before


def test_admin_run_with_arguments(synced):
    editor = staff_client("view_djangojob", "change_djangojob")
    url = reverse("admin:scheduler_app_job_run", args=[JOB])
    page = editor.get(reverse("admin:scheduler_app_job_change", args=[JOB])).content.decode()
    assert "Run now with arguments" in page
    before = snapshot(JOB)

    bad = editor.post(url, {"kwargs": '{"nope": 1}'})
    assert "kwargs.nope" in messages_of(bad)[0] and snapshot(JOB) == before
    not_json = editor.post(url, {"kwargs": "{label"})
    assert "Nothing was changed" in messages_of(not_json)[-1] and snapshot(JOB) == before

    response = editor.post(url, {"kwargs": '{"label": "from the admin"}'})

    assert "run now" in messages_of(response)[-1]
    assert RunRequest.objects.get().kwargs == {"label": "from the admin"}


# A real scheduler


@pytest.mark.slow
def test_scheduler_passes_run_kwargs_to_that_run_only_and_records_them(start_scheduler):
    services.sync_jobs_from_code()
    start_scheduler()

    run_request = services.request_job_run(kwargs={"label": "just once"}, **operator())
    wait_for(lambda: ProbeRun.objects.filter(job_id=JOB).exists(), timeout=15)
    services.request_job_run(**operator())
    wait_for(lambda: ProbeRun.objects.filter(job_id=JOB).count() == 2, timeout=15)

    assert list(ProbeRun.objects.values_list("label", flat=True)) == ["just once", ""]
    run_request.refresh_from_db()
    record = ExecutionRecord.objects.get(execution__run_time=run_request.run_time)
    assert (record.cause, record.kwargs) == ("run_now", {"label": "just once"})
    client = staff_client("view_djangojob")
    runs = client.get(f"/api/scheduler/jobs/{JOB}/executions/").json()["results"]
    assert {"label": "just once"} in [run["kwargs"] for run in runs]
    assert selectors.get_job(job_id=JOB).kwargs == {}


@pytest.mark.slow
def test_every_run_gets_its_scheduled_time(start_scheduler):
    services.sync_jobs_from_code()
    start_scheduler()
    services.reschedule_job(trigger_spec=EVERY_SECOND, **operator("probe.scheduled"))
    wait_for(lambda: ProbeRun.objects.filter(job_id="probe.scheduled").count() >= 2, timeout=15)
    services.pause_job(**operator("probe.scheduled"))
    run_request = services.request_job_run(**operator("probe.scheduled"))
    wait_for(lambda: DjangoJobExecution.objects.filter(
        job_id="probe.scheduled", run_time=RunRequest.objects.get(id=run_request.id).run_time,
        status=DjangoJobExecution.SUCCESS).exists(), timeout=15)

    for run in ProbeRun.objects.filter(job_id="probe.scheduled"):
        scheduled = datetime.fromisoformat(run.label)
        assert scheduled.tzinfo is not None
        assert DjangoJobExecution.objects.filter(job_id="probe.scheduled",
                                                 run_time=scheduled).exists()
