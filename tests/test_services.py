"""Services: every change is one transaction that is all there or not there at all."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from math import nan as NAN

import pytest
from apscheduler.triggers.date import DateTrigger
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django_apscheduler.models import DjangoJob

from scheduler_app import notifications, selectors, services
from scheduler_app.exceptions import (
    InvalidTrigger,
    JobBroken,
    JobNotFound,
    JobStateConflict,
    VersionConflict,
)
from scheduler_app.models import JobChange, RunRequest
from scheduler_app.registry import registry
from scheduler_app.state import load_state
from tests.conftest import break_function_reference, copy_stored_job, edit_stored_job, snapshot

pytestmark = pytest.mark.django_db

JOB = "reports.weekly"
EVERY_FIVE_MINUTES = {"trigger": "cron", "trigger_args": {"crontab": "*/5 * * * *"}}


def change(**overrides: object) -> dict[str, object]:
    return {"job_id": JOB, "actor": "alice", "source": "api", **overrides}


def test_reschedule_is_read_back_with_new_trigger_version_and_audit(synced):
    before = selectors.get_job(job_id=JOB)

    outcome = services.reschedule_job(trigger_spec=EVERY_FIVE_MINUTES, **change())

    job = selectors.get_job(job_id=JOB)
    assert outcome.changed and outcome.job == job
    assert job.trigger == "cron"
    assert job.trigger_args["minute"] == "*/5"
    assert job.trigger_args["hour"] == "*"
    assert job.version == before.version + 1
    assert job.next_run_time is not None and job.next_run_time.minute % 5 == 0
    assert not job.is_default_schedule
    entry = JobChange.objects.filter(job_id=JOB).first()
    assert (entry.action, entry.actor, entry.source, entry.version) == (
        "rescheduled", "alice", "api", job.version
    )
    assert entry.before["trigger_args"]["day_of_week"] == "mon"
    assert entry.after["trigger_args"]["minute"] == "*/5"


def test_invalid_trigger_changes_nothing(synced):
    before = snapshot(JOB)

    with pytest.raises(InvalidTrigger) as error:
        services.reschedule_job(
            trigger_spec={"trigger": "interval", "trigger_args": {"minutes": -5}}, **change()
        )

    assert "minutes" in str(error.value)
    assert snapshot(JOB) == before


def test_failure_after_the_row_was_written_rolls_everything_back(synced, monkeypatch):
    before = snapshot(JOB)

    def fail(job_id: str) -> None:
        # By now the row, the version and the audit record are written.
        assert DjangoJob.objects.get(id=job_id).record.version == before[2] + 1
        raise RuntimeError("injected failure before commit")

    monkeypatch.setattr(notifications, "notify_change", fail)
    with pytest.raises(RuntimeError, match="injected"):
        services.reschedule_job(trigger_spec=EVERY_FIVE_MINUTES, **change())

    assert snapshot(JOB) == before


def test_stale_expected_version_is_refused_and_changes_nothing(synced):
    current = selectors.get_job(job_id=JOB).version
    services.pause_job(**change(expected_version=current))
    before = snapshot(JOB)

    with pytest.raises(VersionConflict) as error:
        services.resume_job(**change(expected_version=current))

    assert error.value.current == current + 1
    assert snapshot(JOB) == before


def test_unknown_job_is_reported(synced):
    with pytest.raises(JobNotFound, match="no.such.job"):
        services.pause_job(**change(job_id="no.such.job"))


def test_pause_clears_next_run_and_pausing_again_changes_nothing(synced):
    first = services.pause_job(**change())
    assert first.changed and not first.job.enabled and first.job.next_run_time is None
    assert first.job.upcoming == []
    before = snapshot(JOB)

    second = services.pause_job(**change())

    assert not second.changed
    assert "already paused" in second.message
    assert snapshot(JOB) == before


def test_resume_computes_next_run_from_now_and_resuming_again_changes_nothing(synced):
    services.pause_job(**change())

    resumed = services.resume_job(**change())

    job = resumed.job
    assert resumed.changed and job.enabled
    assert job.next_run_time > datetime.now(job.next_run_time.tzinfo)
    assert job.next_run_time.weekday() == 0  # the weekly report runs on Mondays
    before = snapshot(JOB)
    again = services.resume_job(**change())
    assert not again.changed and "already" in again.message
    assert snapshot(JOB) == before


def test_reschedule_and_reset_keep_a_paused_job_paused(synced):
    services.pause_job(**change())

    rescheduled = services.reschedule_job(trigger_spec=EVERY_FIVE_MINUTES, **change())
    assert not rescheduled.job.enabled and rescheduled.job.trigger_args["minute"] == "*/5"

    reset = services.reset_job(**change())
    assert reset.changed and not reset.job.enabled
    assert reset.job.is_default_schedule
    assert reset.job.trigger_args["day_of_week"] == "mon"


def test_reset_puts_schedule_and_arguments_back_to_code_default(synced):
    job_id = "cache.warm"
    edit_stored_job(job_id, args=("admin",), kwargs={"depth": 9})
    services.reschedule_job(
        trigger_spec={"trigger": "interval", "trigger_args": {"hours": 2}}, **change(job_id=job_id)
    )

    outcome = services.reset_job(**change(job_id=job_id))

    job = outcome.job
    assert outcome.changed and job.is_default_schedule
    assert job.trigger_args["seconds"] == 30 and job.trigger_args["hours"] == 0
    assert job.args == ("home",) and job.kwargs == {"depth": 2}
    assert not services.reset_job(**change(job_id=job_id)).changed


def test_run_now_request_leaves_schedule_paused_state_and_version_alone(synced):
    services.pause_job(**change())
    before = snapshot(JOB)

    request = services.request_job_run(**change())

    assert request.status == RunRequest.Status.PENDING
    assert request.requested_by == "alice" and request.source == "api"
    after = snapshot(JOB)
    assert after[:3] == before[:3]
    assert JobChange.objects.filter(job_id=JOB).first().action == "run_requested"


def test_resume_of_a_finished_one_off_job_is_refused(synced):
    services.reschedule_job(
        trigger_spec={
            "trigger": "date",
            "trigger_args": {"run_date": (datetime.now() + timedelta(hours=1)).isoformat()},
        },
        **change(),
    )
    finished = DateTrigger(datetime.now(UTC) - timedelta(days=1))  # it ran yesterday
    edit_stored_job(JOB, trigger=finished, next_run_time=None)

    with pytest.raises(JobStateConflict, match="no future run"):
        services.resume_job(**change())


def test_broken_job_can_be_paused_but_not_run_resumed_or_rescheduled(synced):
    break_function_reference(JOB)  # renamed in a deploy

    assert selectors.get_job(job_id=JOB).broken
    with pytest.raises(JobBroken, match="function_renamed_away"):
        services.request_job_run(**change())
    with pytest.raises(JobBroken):
        services.reschedule_job(trigger_spec=EVERY_FIVE_MINUTES, **change())
    assert services.pause_job(**change()).changed
    with pytest.raises(JobBroken):
        services.resume_job(**change())


def test_a_job_whose_arguments_json_cannot_hold_can_be_changed_and_read(synced, admin_client):
    # Code may declare any Python value as an argument; the audit trail and the API
    # hold JSON, so those values are written as their repr there.
    edit_stored_job(JOB, kwargs={"since": date(2020, 1, 1), "blob": b"\xff", "ratio": NAN})

    services.pause_job(**change())
    services.reschedule_job(trigger_spec=EVERY_FIVE_MINUTES, **change())

    entry = JobChange.objects.filter(job_id=JOB).first()
    assert entry.before["kwargs"] == {
        "since": "datetime.date(2020, 1, 1)", "blob": "b'\\xff'", "ratio": "nan",
    }
    response = admin_client.get(f"/api/scheduler/jobs/{JOB}/")
    assert response.status_code == 200
    assert response.json()["kwargs"] == entry.before["kwargs"]
    assert admin_client.get("/api/scheduler/jobs/").status_code == 200
    # The job itself still gets its real values.
    assert load_state(DjangoJob.objects.get(id=JOB).job_state)["kwargs"]["since"] == date(
        2020, 1, 1
    )


def test_restart_keeps_operator_schedule_and_paused_state(synced):
    services.reschedule_job(trigger_spec=EVERY_FIVE_MINUTES, **change())
    services.pause_job(**change(job_id="monitoring.heartbeat"))
    before = snapshot(JOB)

    report = services.sync_jobs_from_code()  # what a scheduler restart does

    assert JOB in report.unchanged and not report.added
    assert snapshot(JOB) == before
    assert selectors.get_job(job_id=JOB).trigger_args["minute"] == "*/5"
    assert not selectors.get_job(job_id="monitoring.heartbeat").enabled


def test_restart_updates_code_owned_metadata_only(synced):
    edit_stored_job(JOB, name="Old name")
    services.reschedule_job(trigger_spec=EVERY_FIVE_MINUTES, **change())
    services.set_job_policy(policy={"max_instances": 7}, **change())

    report = services.sync_jobs_from_code()

    job = selectors.get_job(job_id=JOB)
    assert JOB in report.updated
    # The run policy, like the schedule, is the operator's: a restart keeps it.
    assert (job.name, job.max_instances) == ("Weekly report", 7)
    assert job.trigger_args["minute"] == "*/5"
    assert JobChange.objects.filter(job_id=JOB).first().action == "updated_from_code"


def test_job_no_longer_in_code_is_reported_orphaned_and_kept(synced):
    services.sync_jobs_from_code()
    copy_stored_job(JOB, "old.removed_job")

    report = services.sync_jobs_from_code()

    assert report.orphaned == ["old.removed_job"]
    assert DjangoJob.objects.filter(id="old.removed_job").exists()
    assert selectors.get_job(job_id="old.removed_job").orphaned
    with pytest.raises(JobStateConflict, match="no longer declared"):
        services.reset_job(**change(job_id="old.removed_job"))


def test_first_sync_adds_every_declared_job_once_with_audit(synced):
    assert {"reports.weekly", "monitoring.heartbeat", "probe.record"} <= set(synced.added)
    assert services.sync_jobs_from_code().added == []
    created = JobChange.objects.filter(action="created")
    assert created.count() == len(synced.added)
    assert {entry.job_id for entry in created} == set(synced.added)


@pytest.mark.django_db
def test_restart_with_nothing_changed_costs_the_same_for_30_or_300_declared_jobs():
    template = next(declaration for declaration in registry if declaration.id == "probe.noop")

    def statements_of_a_second_sync(count: int) -> int:
        declarations = [replace(template, id=f"bulk{count}.{i}") for i in range(count)]
        assert len(services.sync_jobs_from_code(declarations=declarations).added) == count
        with CaptureQueriesContext(connection) as queries:
            report = services.sync_jobs_from_code(declarations=declarations)
        assert len(report.unchanged) == count and not report.updated
        return len(queries)

    assert statements_of_a_second_sync(30) == statements_of_a_second_sync(300)
