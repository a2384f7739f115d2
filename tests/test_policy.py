"""Run policies: changed through the API, the admin and the CLI, refused when bad with
nothing changed, restored by reset, kept by a restart, and `pause_after_failures`
pausing a failing job, in a real scheduler process too."""

from __future__ import annotations

import json
import re
import time
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.urls import reverse
from django_apscheduler.models import DjangoJob, DjangoJobExecution

from scheduler_app import alerts, selectors, services
from scheduler_app.exceptions import VersionConflict
from scheduler_app.models import JobChange, JobRecord
from tests.conftest import (
    messages_of,
    run_in_threads,
    snapshot,
    staff_client,
    wait_for,
)
from tests.testapp.models import ProbeRun

JOB = "reports.weekly"
POLICY_URL = f"/api/scheduler/jobs/{JOB}/policy/"
EVERY_SECOND = {"trigger": "cron", "trigger_args": {"second": "*"}}


def change(job_id: str = JOB, **fields: object) -> dict[str, object]:
    return {"job_id": job_id, "actor": "alice", "source": "api", **fields}


def policy_of(job_id: str = JOB) -> dict[str, object]:
    job = selectors.get_job(job_id=job_id)
    return {
        "max_instances": job.max_instances,
        "coalesce": job.coalesce,
        "misfire_grace_time": job.misfire_grace_time,
        "pause_after_failures": job.pause_after_failures,
    }


@pytest.fixture
def api(synced):
    return staff_client("view_djangojob", "change_djangojob")


def put(client, body: object, **headers: str):
    return client.put(POLICY_URL, json.dumps(body), content_type="application/json",
                      headers=headers)


def scheduler(*args: str) -> str:
    stdout = StringIO()
    call_command("scheduler", *args, stdout=stdout, stderr=StringIO())
    return stdout.getvalue()


# The API


def test_policy_put_changes_only_the_fields_given_and_answers_with_the_job(api):
    version = JobRecord.objects.get(job_id=JOB).version

    response = put(api, {"max_instances": 3, "pause_after_failures": 2},
                   **{"If-Match": str(version)})

    assert response.status_code == 200, response.json()
    job = response.json()
    assert (job["max_instances"], job["pause_after_failures"]) == (3, 2)
    assert (job["coalesce"], job["misfire_grace_time"]) == (True, 3600)  # kept
    assert job["version"] == version + 1 and response.headers["ETag"] == f'"{version + 1}"'
    assert policy_of() == {"max_instances": 3, "coalesce": True, "misfire_grace_time": 3600,
                           "pause_after_failures": 2}
    audit = JobChange.objects.filter(job_id=JOB).first()
    assert (audit.action, audit.source) == ("policy_changed", "api")
    assert audit.actor == "staff_view_djangojob_change_djangojob"
    assert (audit.before["max_instances"], audit.after["max_instances"]) == (1, 3)
    assert (audit.before["pause_after_failures"], audit.after["pause_after_failures"]) == (None, 2)


def test_policy_null_means_always_run_late_runs_and_never_pause(api):
    put(api, {"pause_after_failures": 4})

    response = put(api, {"misfire_grace_time": None, "pause_after_failures": None,
                         "coalesce": False})

    assert response.status_code == 200
    assert policy_of() == {"max_instances": 1, "coalesce": False, "misfire_grace_time": None,
                           "pause_after_failures": None}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"max_instances": 0}, "max_instances"),
        ({"max_instances": None}, "max_instances"),
        ({"max_instances": True}, "max_instances"),
        ({"max_instances": "2"}, "max_instances"),
        ({"max_instances": 1.5}, "max_instances"),
        ({"misfire_grace_time": 0}, "misfire_grace_time"),
        ({"misfire_grace_time": -5}, "misfire_grace_time"),
        ({"coalesce": "yes"}, "coalesce"),
        ({"coalesce": None}, "coalesce"),
        ({"pause_after_failures": 0}, "pause_after_failures"),
        ({"pause_after_failures": 2**40}, "pause_after_failures"),
        ({"max_instance": 2}, "max_instance"),
        ({}, "body"),
        ([], "body"),
    ],
)
def test_bad_policy_is_a_400_naming_the_field_and_changes_nothing(api, body, field):
    before = snapshot(JOB)

    response = put(api, body)

    assert response.status_code == 400, response.json()
    assert field in response.json()["errors"], response.json()
    assert snapshot(JOB) == before


def test_policy_needs_the_change_permission(synced):
    viewer = staff_client("view_djangojob")
    before = snapshot(JOB)

    assert put(viewer, {"max_instances": 2}).status_code == 403
    assert snapshot(JOB) == before


# The CLI


def test_cli_policy_sets_each_option_and_none_means_null(synced):
    output = scheduler("policy", JOB, "--max-instances", "4", "--no-coalesce",
                       "--misfire-grace", "none", "--pause-after-failures", "5")

    assert "Run policy changed." in output
    assert policy_of() == {"max_instances": 4, "coalesce": False, "misfire_grace_time": None,
                           "pause_after_failures": 5}
    assert JobChange.objects.filter(job_id=JOB).first().source == "cli"
    assert re.search(r"pause after +5 consecutive failures", scheduler("show", JOB))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--max-instances", "0"], "max_instances"),
        (["--max-instances", "none"], "max_instances"),
        (["--pause-after-failures", "0"], "pause_after_failures"),
        (["--misfire-grace", "soon"], "--misfire-grace"),
        ([], "give at least one"),
    ],
)
def test_cli_bad_policy_is_a_command_error_naming_it_and_changes_nothing(synced, args, message):
    before = snapshot(JOB)

    with pytest.raises(CommandError, match=message):
        scheduler("policy", JOB, *args)

    assert snapshot(JOB) == before


# The admin


def test_admin_job_page_has_a_run_policy_section_that_saves(synced):
    editor = staff_client("view_djangojob", "change_djangojob")
    page = editor.get(reverse("admin:scheduler_app_job_change", args=[JOB]))
    assert "Run policy" in page.content.decode()
    version = JobRecord.objects.get(job_id=JOB).version

    response = editor.post(
        reverse("admin:scheduler_app_job_policy", args=[JOB]),
        {"version": version, "max_instances": "2", "misfire_grace_time": "",
         "pause_after_failures": "3"},
    )

    assert response.status_code == 302
    assert messages_of(response) == [f"{JOB}: Run policy changed."]
    # An unticked checkbox is false; an empty number is null.
    assert policy_of() == {"max_instances": 2, "coalesce": False, "misfire_grace_time": None,
                           "pause_after_failures": 3}
    assert JobChange.objects.filter(job_id=JOB).first().source == "admin"


def test_admin_bad_or_stale_policy_changes_nothing(synced):
    editor = staff_client("view_djangojob", "change_djangojob")
    url = reverse("admin:scheduler_app_job_policy", args=[JOB])
    version = JobRecord.objects.get(job_id=JOB).version
    before = snapshot(JOB)

    bad = editor.post(url, {"version": version, "max_instances": "0"})
    stale = editor.post(url, {"version": version - 1, "max_instances": "2"})

    assert "max_instances" in messages_of(bad)[0] and "Nothing was changed" in messages_of(bad)[0]
    assert "is at version" in messages_of(stale)[-1]
    assert snapshot(JOB) == before
    viewer = staff_client("view_djangojob")
    assert viewer.post(url, {"version": version, "max_instances": "2"}).status_code == 403


# Code defaults: reset restores them, a restart keeps the operator's


def test_reset_restores_the_code_policy_with_the_schedule(synced):
    services.set_job_policy(policy={"max_instances": 9, "pause_after_failures": 1}, **change())

    outcome = services.reset_job(**change())

    assert outcome.changed
    assert policy_of() == {"max_instances": 1, "coalesce": True, "misfire_grace_time": 3600,
                           "pause_after_failures": None}


def test_code_default_pause_after_failures_applies_to_a_new_job(synced):
    assert selectors.get_job(job_id="probe.fail").pause_after_failures == 3


# Counting failures


def test_nth_consecutive_failure_pauses_the_job_in_the_same_transaction(synced):
    services.set_job_policy(policy={"pause_after_failures": 2}, **change())
    version = JobRecord.objects.get(job_id=JOB).version

    services.record_run_outcome(job_id=JOB, failed=True)
    assert selectors.get_job(job_id=JOB).enabled
    services.record_run_outcome(job_id=JOB, failed=True)

    job = selectors.get_job(job_id=JOB)
    assert not job.enabled and job.version == version + 1
    assert job.paused_reason == "Paused after 2 consecutive failures"
    assert job.paused_by == "scheduler" and job.paused_at is not None
    audit = JobChange.objects.filter(job_id=JOB).first()
    assert (audit.action, audit.actor, audit.source) == ("paused", "scheduler", "scheduler")


def test_a_success_resets_the_failure_count(synced):
    services.set_job_policy(policy={"pause_after_failures": 2}, **change())

    services.record_run_outcome(job_id=JOB, failed=True)
    services.record_run_outcome(job_id=JOB, failed=False)
    services.record_run_outcome(job_id=JOB, failed=True)

    job = selectors.get_job(job_id=JOB)
    assert job.enabled and job.consecutive_failures == 1


# Concurrency


@pytest.mark.postgres_only
@pytest.mark.django_db(transaction=True)
def test_policy_change_and_pause_racing_on_one_job_serialize():
    services.sync_jobs_from_code()
    version = JobRecord.objects.get(job_id=JOB).version

    def work(index: int) -> object:
        if index % 2:
            return services.set_job_policy(policy={"max_instances": 5}, **change())
        return services.pause_job(**change(), reason="racing")

    results = run_in_threads(8, work)

    assert not [result for result in results if isinstance(result, BaseException)]
    job = selectors.get_job(job_id=JOB)
    # Every change landed: the pause and the policy, neither undid the other.
    assert not job.enabled and job.paused_reason == "racing" and job.max_instances == 5
    changed = [result for result in results if result.changed]
    assert len(changed) == 2 and job.version == version + 2
    trail = list(JobChange.objects.filter(job_id=JOB, version__gt=version).order_by("id"))
    assert [entry.version for entry in trail] == [version + 1, version + 2]
    assert trail[0].after == trail[1].before  # each saw the other's committed state


@pytest.mark.postgres_only
@pytest.mark.django_db(transaction=True)
def test_policy_change_and_pause_at_one_version_one_wins_the_other_gets_a_conflict():
    services.sync_jobs_from_code()
    version = JobRecord.objects.get(job_id=JOB).version

    def work(index: int) -> object:
        if index:
            return services.set_job_policy(
                policy={"max_instances": 5}, **change(), expected_version=version
            )
        return services.pause_job(**change(), expected_version=version)

    results = run_in_threads(2, work)

    assert sum(isinstance(result, VersionConflict) for result in results) == 1
    assert JobRecord.objects.get(job_id=JOB).version == version + 1


# A real scheduler


@pytest.mark.slow
def test_scheduler_pauses_a_job_after_its_nth_consecutive_failure(start_scheduler):
    services.sync_jobs_from_code()
    services.reschedule_job(trigger_spec=EVERY_SECOND, **change("probe.fail"))
    start_scheduler()

    wait_for(lambda: DjangoJob.objects.get(id="probe.fail").next_run_time is None, timeout=30)
    errors = DjangoJobExecution.objects.filter(job_id="probe.fail",
                                               status=DjangoJobExecution.ERROR)
    job = selectors.get_job(job_id="probe.fail")
    assert job.paused_reason == "Paused after 3 consecutive failures"
    assert job.paused_by == "scheduler"
    assert errors.count() == 3
    audit = JobChange.objects.filter(job_id="probe.fail").first()
    assert (audit.action, audit.actor) == ("paused", "scheduler")
    time.sleep(2)
    assert ProbeRun.objects.filter(job_id="probe.fail").count() == 3, "no run after the pause"


# alert_after: how long a job may go without a success before it is overdue


def test_alert_after_is_part_of_the_policy_in_every_door_and_reset_restores_code(api):
    response = put(api, {"alert_after": 600})
    assert response.status_code == 200, response.json()
    assert response.json()["alert_after"] == 600
    assert alerts.alert_after(JOB) == 600  # what the overdue sweep uses

    assert "Run policy changed." in scheduler("policy", JOB, "--alert-after", "900")
    assert alerts.alert_after(JOB) == 900
    scheduler("policy", JOB, "--alert-after", "none")
    assert selectors.get_job(job_id=JOB).alert_after is None
    assert alerts.alert_after(JOB) == 3600  # SCHEDULER_APP["ALERT_AFTER"]

    bad = put(api, {"alert_after": 0})
    assert bad.status_code == 400 and "alert_after" in bad.json()["errors"]

    # probe.stuck declares alert_after=2 in code: a new job gets it, reset restores it.
    assert selectors.get_job(job_id="probe.stuck").alert_after == 2
    services.set_job_policy(policy={"alert_after": 60}, **change(job_id="probe.stuck"))
    services.reset_job(**change(job_id="probe.stuck"))
    assert alerts.alert_after("probe.stuck") == 2
