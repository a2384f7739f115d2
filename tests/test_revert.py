"""Revert to an earlier version: the schedule, run policy and paused state of that
version back, as a new audited version, through the API, the admin and the CLI; and
never a mixed state under a concurrent reschedule."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.urls import reverse

from scheduler_app import selectors, services
from scheduler_app.exceptions import JobStateConflict
from scheduler_app.models import JobChange
from tests.conftest import messages_of, run_in_threads, snapshot, staff_client

JOB = "reports.weekly"
JOB_URL = f"/api/scheduler/jobs/{JOB}"
EVERY_FIVE_MINUTES = {"trigger": "cron", "trigger_args": {"crontab": "*/5 * * * *"}}
HOURLY = {"trigger": "interval", "trigger_args": {"hours": 1}}
DAILY = {"trigger": "cron", "trigger_args": {"hour": 3, "minute": 15}}


def change(**fields: object) -> dict[str, object]:
    return {"job_id": JOB, "actor": "alice", "source": "api", **fields}


def state(job_id: str = JOB) -> tuple[object, ...]:
    """What a revert restores: schedule, policy, paused state and its note."""
    job = selectors.get_job(job_id=job_id)
    return (job.trigger, job.trigger_args, job.max_instances, job.coalesce,
            job.misfire_grace_time, job.pause_after_failures, job.enabled, job.paused_reason)


@pytest.fixture
def history(synced) -> dict[str, object]:
    """Version 2: every five minutes, max 3; then hourly, paused with a note, max 1."""
    services.reschedule_job(trigger_spec=EVERY_FIVE_MINUTES, **change())
    services.set_job_policy(policy={"max_instances": 3}, **change())
    version = selectors.get_job(job_id=JOB).version
    wanted = state()
    services.reschedule_job(trigger_spec=HOURLY, **change())
    services.set_job_policy(policy={"max_instances": 1, "pause_after_failures": 2}, **change())
    services.pause_job(reason="investigating", **change())
    return {"version": version, "state": wanted}


def post(client, path: str, body: object):
    return client.post(path, json.dumps(body), content_type="application/json")


def test_revert_restores_schedule_policy_and_running_state_as_a_new_version(history):
    current = selectors.get_job(job_id=JOB).version

    outcome = services.revert_job(version=history["version"], **change())

    assert outcome.changed and outcome.message == f"Reverted to version {history['version']}"
    assert state() == history["state"]
    job = selectors.get_job(job_id=JOB)
    assert job.version == current + 1 and job.next_run_time is not None
    assert job.paused_reason is None and job.paused_by is None
    audit = JobChange.objects.filter(job_id=JOB).first()
    assert audit.action == "reverted"
    assert audit.message == f"Reverted to version {history['version']}"
    assert audit.after["max_instances"] == 3 and audit.before["max_instances"] == 1


def test_revert_to_a_paused_version_pauses_with_its_reason(history):
    paused_version = selectors.get_job(job_id=JOB).version
    services.resume_job(**change())
    services.reschedule_job(trigger_spec=DAILY, **change())

    services.revert_job(version=paused_version, **change())

    job = selectors.get_job(job_id=JOB)
    assert not job.enabled and job.paused_reason == "investigating"
    assert job.trigger == "interval" and job.paused_by == "alice"


def test_version_the_trail_does_not_hold_is_a_409_and_changes_nothing(history):
    JobChange.objects.filter(job_id=JOB, version=history["version"]).delete()  # pruned
    before = snapshot(JOB)

    with pytest.raises(JobStateConflict, match="no longer holds version"):
        services.revert_job(version=history["version"], **change())

    assert snapshot(JOB) == before


def test_api_revert(history):
    client = staff_client("view_djangojob", "change_djangojob")

    response = post(client, f"{JOB_URL}/revert/", {"version": history["version"]})

    assert response.status_code == 200, response.json()
    assert response.headers["X-Scheduler-Message"] == f"Reverted to version {history['version']}"
    assert response.json()["max_instances"] == 3
    assert state() == history["state"]
    changes = client.get(f"{JOB_URL}/changes/").json()["results"]
    assert changes[0]["message"] == f"Reverted to version {history['version']}"


@pytest.mark.parametrize(
    ("body", "status", "key"),
    [
        ({"version": 999}, 409, None),
        ({"version": 0}, 400, "version"),
        ({"version": "two"}, 400, "version"),
        ({}, 400, "version"),
        ({"version": 2, "also": 1}, 400, "also"),
    ],
)
def test_api_bad_revert_changes_nothing(history, body, status, key):
    client = staff_client("view_djangojob", "change_djangojob")
    before = snapshot(JOB)

    response = post(client, f"{JOB_URL}/revert/", body)

    assert response.status_code == status, response.json()
    if key:
        assert key in response.json()["errors"]
    else:
        assert "no longer holds version 999" in response.json()["detail"]
    assert snapshot(JOB) == before


def test_cli_revert(history):
    stdout = StringIO()
    call_command("scheduler", "revert", JOB, "--to", str(history["version"]), stdout=stdout)

    assert f"Reverted to version {history['version']}" in stdout.getvalue()
    assert state() == history["state"]
    changes = StringIO()
    call_command("scheduler", "changes", JOB, stdout=changes)
    assert f"Reverted to version {history['version']}" in changes.getvalue()

    before = snapshot(JOB)
    with pytest.raises(CommandError, match="no longer holds version 999"):
        call_command("scheduler", "revert", JOB, "--to", "999", stdout=StringIO())
    with pytest.raises(CommandError, match="--to"):
        call_command("scheduler", "revert", JOB, "--to", "zero", stdout=StringIO())
    assert snapshot(JOB) == before


def test_admin_restore_button_on_each_change(history):
    editor = staff_client("view_djangojob", "change_djangojob")
    page = editor.get(reverse("admin:scheduler_app_job_change", args=[JOB])).content.decode()
    assert page.count(">Restore</button>") >= 3
    job = selectors.get_job(job_id=JOB)

    response = editor.post(
        reverse("admin:scheduler_app_job_revert", args=[JOB]),
        {"version": job.version, "to_version": history["version"]},
    )

    assert messages_of(response) == [f"{JOB}: Reverted to version {history['version']}."]
    assert state() == history["state"]
    viewer_page = staff_client("view_djangojob").get(
        reverse("admin:scheduler_app_job_change", args=[JOB])).content.decode()
    assert ">Restore</button>" not in viewer_page


@pytest.mark.postgres_only
@pytest.mark.django_db(transaction=True)
def test_revert_under_a_concurrent_reschedule_never_yields_a_mixed_state():
    services.sync_jobs_from_code()
    for _ in range(5):
        services.reschedule_job(trigger_spec=EVERY_FIVE_MINUTES, **change())
        services.set_job_policy(policy={"max_instances": 3}, **change())
        target = selectors.get_job(job_id=JOB).version
        reverted = state()
        services.reschedule_job(trigger_spec=HOURLY, **change())
        services.set_job_policy(policy={"max_instances": 1}, **change())

        def work(index: int, target: int = target) -> object:
            if index:
                return services.reschedule_job(trigger_spec=DAILY, **change())
            return services.revert_job(version=target, **change())

        results = run_in_threads(2, work)

        assert not [result for result in results if isinstance(result, BaseException)]
        final = state()
        # Reverted last: exactly the old version. Rescheduled last: the daily schedule
        # on top of the reverted policy. Never the daily schedule with max_instances 1,
        # nor the old schedule with the newer policy.
        assert final == reverted or (
            final[0] == "cron" and final[1]["hour"] == "3" and final[2] == 3
        ), final
        last = JobChange.objects.filter(job_id=JOB).first()
        assert (last.after["max_instances"], last.after["trigger"]) == (final[2], final[0])
