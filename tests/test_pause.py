"""Pauses with a reason and an end: through the API, the admin and the CLI, shown in the
job JSON, the admin list and the CLI list, cleared by resume, and ended by a real
scheduler at `paused_until`."""

from __future__ import annotations

import json
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.urls import reverse
from django.utils import timezone

from scheduler_app import selectors, services
from scheduler_app.models import JobChange
from tests.conftest import (
    break_function_reference,
    messages_of,
    snapshot,
    staff_client,
    wait_for,
)

JOB = "reports.weekly"
JOB_URL = f"/api/scheduler/jobs/{JOB}"
PAUSE_FIELDS = ("paused_reason", "paused_by", "paused_at", "paused_until")


@pytest.fixture
def api(synced):
    return staff_client("view_djangojob", "change_djangojob")


def post(client, path: str, body: object = None):
    return client.post(path, json.dumps(body) if body is not None else "",
                       content_type="application/json")


def scheduler(*args: str) -> str:
    stdout = StringIO()
    call_command("scheduler", *args, stdout=stdout, stderr=StringIO())
    return stdout.getvalue()


def test_pause_with_reason_and_until_shows_them_and_resume_clears_them(api):
    running = api.get(f"{JOB_URL}/").json()
    assert all(running[name] is None for name in PAUSE_FIELDS)
    until = (timezone.now() + timedelta(hours=2)).replace(microsecond=0)

    paused = post(api, f"{JOB_URL}/pause/", {"reason": "DB maintenance",
                                              "until": until.isoformat()})

    assert paused.status_code == 200, paused.json()
    job = paused.json()
    assert not job["enabled"] and job["paused_reason"] == "DB maintenance"
    assert job["paused_by"] == "staff_view_djangojob_change_djangojob"
    assert job["paused_at"] is not None
    assert selectors.get_job(job_id=JOB).paused_until == until
    audit = JobChange.objects.filter(job_id=JOB).first()
    assert audit.after["paused_reason"] == "DB maintenance"

    resumed = post(api, f"{JOB_URL}/resume/").json()
    assert resumed["enabled"] and all(resumed[name] is None for name in PAUSE_FIELDS)


def test_pause_without_body_still_works_and_records_who(api):
    job = post(api, f"{JOB_URL}/pause/").json()

    assert not job["enabled"] and job["paused_reason"] is None
    assert job["paused_by"] == "staff_view_djangojob_change_djangojob"


def test_pausing_a_paused_job_with_a_new_reason_updates_it(api):
    post(api, f"{JOB_URL}/pause/", {"reason": "first"})

    again = post(api, f"{JOB_URL}/pause/", {"reason": "second"})
    unchanged = post(api, f"{JOB_URL}/pause/")

    assert again.json()["paused_reason"] == "second"
    assert "updated" in again.headers["X-Scheduler-Message"]
    assert unchanged.headers["X-Scheduler-Message"] == "Job is already paused."


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"until": "2001-01-01T00:00:00Z"}, "until"),
        ({"until": "tomorrow"}, "until"),
        ({"reason": "x" * 501}, "reason"),
        ({"reason": 0}, "reason"),
        ({"reason": 5, "until": "soon"}, "until"),
        ({"why": "typo"}, "why"),
    ],
)
def test_bad_pause_body_is_a_400_naming_the_field_and_changes_nothing(api, body, field):
    before = snapshot(JOB)

    response = post(api, f"{JOB_URL}/pause/", body)

    assert response.status_code == 400, response.json()
    assert field in response.json()["errors"]
    assert snapshot(JOB) == before


def test_cli_pause_with_reason_and_a_duration_and_the_list_shows_the_reason(synced):
    output = scheduler("pause", JOB, "--reason", "Vendor outage", "--until", "2h")

    job = selectors.get_job(job_id=JOB)
    assert "Job paused." in output and "Vendor outage" in output
    assert job.paused_reason == "Vendor outage" and job.paused_by
    assert timedelta(minutes=119) < job.paused_until - timezone.now() <= timedelta(hours=2)
    listing = next(line for line in scheduler("list").splitlines() if line.startswith(JOB))
    assert "paused: Vendor outage" in listing


def test_cli_pause_until_an_iso_time(synced):
    until = (timezone.now() + timedelta(days=1)).replace(microsecond=0)

    scheduler("pause", JOB, "--until", until.isoformat())

    assert selectors.get_job(job_id=JOB).paused_until == until


@pytest.mark.parametrize(
    ("args", "message"),
    [(["--until", "whenever"], "--until"), (["--until", "2001-01-01T00:00"], "until")],
)
def test_cli_bad_pause_is_a_command_error_and_changes_nothing(synced, args, message):
    before = snapshot(JOB)

    with pytest.raises(CommandError, match=message):
        scheduler("pause", JOB, *args)

    assert snapshot(JOB) == before


def test_admin_pause_form_and_the_list_shows_the_reason(synced):
    editor = staff_client("view_djangojob", "change_djangojob")
    job = selectors.get_job(job_id=JOB)

    response = editor.post(
        reverse("admin:scheduler_app_job_pause", args=[JOB]),
        {"version": job.version, "reason": "Quarter close", "until": "2099-03-01T10:00"},
    )

    assert messages_of(response) == [f"{JOB}: Job paused."]
    paused = selectors.get_job(job_id=JOB)
    assert paused.paused_reason == "Quarter close" and paused.paused_by
    assert paused.paused_until.isoformat().startswith("2099-03-01T10:00")
    listing = editor.get(reverse("admin:scheduler_app_job_changelist")).content.decode()
    assert "Quarter close" in listing
    page = editor.get(reverse("admin:scheduler_app_job_change", args=[JOB]))
    assert "Quarter close" in page.content.decode()


def test_admin_pause_in_the_past_changes_nothing(synced):
    editor = staff_client("view_djangojob", "change_djangojob")
    before = snapshot(JOB)

    response = editor.post(
        reverse("admin:scheduler_app_job_pause", args=[JOB]),
        {"reason": "late", "until": "2001-03-01T10:00"},
    )

    assert "until: must be in the future" in messages_of(response)[0]
    assert snapshot(JOB) == before


def test_due_pause_end_resumes_the_job_as_the_scheduler(synced):
    services.pause_job(job_id=JOB, actor="alice", source="api",
                       until=timezone.now() + timedelta(seconds=30))

    assert services.resume_jobs_due(now=timezone.now()) == []
    assert services.resume_jobs_due(now=timezone.now() + timedelta(seconds=31)) == [JOB]

    job = selectors.get_job(job_id=JOB)
    assert job.enabled and job.paused_until is None
    audit = JobChange.objects.filter(job_id=JOB).first()
    assert (audit.action, audit.actor, audit.source) == ("resumed", "scheduler", "scheduler")


def test_a_job_that_cannot_resume_stays_paused_with_the_reason_and_is_not_retried(synced):
    services.pause_job(job_id=JOB, actor="alice", source="api",
                       until=timezone.now() + timedelta(seconds=10))
    break_function_reference(JOB)  # a deploy renamed its function meanwhile

    assert services.resume_jobs_due(now=timezone.now() + timedelta(seconds=11)) == []

    job = selectors.get_job(job_id=JOB)
    assert not job.enabled and job.paused_until is None
    assert "cannot be imported" in job.paused_reason
    assert selectors.jobs_due_to_resume(now=timezone.now() + timedelta(days=1)) == []


@pytest.mark.slow
def test_scheduler_resumes_a_job_at_paused_until_within_a_second(start_scheduler):
    services.sync_jobs_from_code()
    start_scheduler()
    until = timezone.now() + timedelta(seconds=3)
    services.pause_job(job_id=JOB, actor="alice", source="api", reason="short", until=until)

    wait_for(lambda: selectors.get_job(job_id=JOB).enabled, timeout=15)

    resumed = JobChange.objects.filter(job_id=JOB, action="resumed").get()
    assert resumed.actor == "scheduler"
    assert until <= resumed.created_at < until + timedelta(seconds=1)
