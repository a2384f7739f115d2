"""What keeps a deployment healthy for months: old history pruned by the active scheduler,
run-now requests that expire instead of firing hours late, and one-off jobs that show as
finished rather than paused."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from io import StringIO

import pytest
from apscheduler.triggers.date import DateTrigger
from django.core.management import CommandError, call_command
from django.test import override_settings
from django.utils import timezone
from django_apscheduler.models import DjangoJob, DjangoJobExecution

from scheduler_app import selectors, services
from scheduler_app.api.serializers import RunRequestSerializer
from scheduler_app.cli import runs
from scheduler_app.jobstore import JobStore
from scheduler_app.models import (
    ExecutionRecord,
    JobChange,
    RunRequest,
    SchedulerProcess,
)
from tests.conftest import edit_stored_job, record_execution, wait_for
from tests.testapp.models import ProbeRun

JOB = "probe.record"
DAY = 24 * 60  # minutes
RETENTION = {"EXECUTION_RETENTION_DAYS": 30, "CHANGE_RETENTION_DAYS": 60,
             "PROCESS_RETENTION_DAYS": 7}


def days_ago(days: float) -> datetime:
    return timezone.now() - timedelta(days=days)


def run_now(job_id: str = JOB, *, requested_at: datetime | None = None) -> RunRequest:
    request = services.request_job_run(job_id=job_id, actor="alice", source="api")
    if requested_at is not None:
        RunRequest.objects.filter(id=request.id).update(requested_at=requested_at)
    return request


def stopped_scheduler(*, silent_for_days: float) -> SchedulerProcess:
    moment = days_ago(silent_for_days)
    return SchedulerProcess.objects.create(
        host="old-host", pid=1, started_at=moment, last_heartbeat=moment, stopped_at=moment,
        notification_mode="poll",
    )


def old_history() -> dict[str, object]:
    """One row of each kind just past its retention and one just inside it."""
    rows = {
        "old_run": record_execution(JOB, minutes_ago=31 * DAY),
        "new_run": record_execution(JOB, minutes_ago=29 * DAY),
        "old_process": stopped_scheduler(silent_for_days=8),
        "new_process": stopped_scheduler(silent_for_days=6),
    }
    old_change, new_change = JobChange.objects.filter(job_id=JOB).order_by("id")[:2]
    JobChange.objects.filter(id=old_change.id).update(created_at=days_ago(61))
    JobChange.objects.filter(id=new_change.id).update(created_at=days_ago(59))
    old_request, new_request = run_now(), run_now()
    RunRequest.objects.filter(id__in=[old_request.id, new_request.id]).update(
        status=RunRequest.Status.SUBMITTED
    )
    RunRequest.objects.filter(id=old_request.id).update(requested_at=days_ago(31))
    RunRequest.objects.filter(id=new_request.id).update(requested_at=days_ago(29))
    return {**rows, "old_change": old_change, "new_change": new_change,
            "old_request": old_request, "new_request": new_request}


def exists(row: object) -> bool:
    return type(row).objects.filter(pk=row.pk).exists()


# Pruning ----------------------------------------------------------------------------------


@override_settings(SCHEDULER_APP=RETENTION)
def test_history_past_its_retention_is_pruned_and_the_rest_kept(synced):
    services.pause_job(job_id=JOB, actor="alice", source="api")  # two audit entries
    rows = old_history()

    report = services.prune_history()

    assert (report.executions, report.run_requests, report.changes,
            report.scheduler_processes) == (1, 1, 1, 1)
    assert report.complete
    for kind in ("run", "change", "process", "request"):
        assert not exists(rows[f"old_{kind}"]), kind
        assert exists(rows[f"new_{kind}"]), kind
    assert ExecutionRecord.objects.filter(execution_id=rows["new_run"].pk).exists()
    assert not ExecutionRecord.objects.filter(execution_id=rows["old_run"].pk).exists()
    assert DjangoJob.objects.filter(id=JOB).exists()  # jobs are never pruned


@override_settings(SCHEDULER_APP={"EXECUTION_RETENTION_DAYS": 0, "CHANGE_RETENTION_DAYS": 0,
                                  "PROCESS_RETENTION_DAYS": 0})
def test_retention_0_keeps_every_kind_forever(synced):
    services.pause_job(job_id=JOB, actor="alice", source="api")
    rows = old_history()

    assert services.prune_history().total == 0
    assert all(exists(row) for row in rows.values())


@override_settings(SCHEDULER_APP={"EXECUTION_RETENTION_DAYS": 1})
def test_a_backlog_is_pruned_one_batch_per_call_when_limited(synced, monkeypatch):
    monkeypatch.setattr(services, "PRUNE_BATCH", 2)
    for minutes in range(5):
        record_execution(JOB, minutes_ago=2 * DAY + minutes)

    first = services.prune_history(max_batches=1)
    assert (first.executions, first.complete) == (2, False)
    assert DjangoJobExecution.objects.count() == 3
    assert services.prune_history().executions == 3


def test_a_pending_run_request_is_never_pruned(synced):
    request = run_now(requested_at=days_ago(365))

    services.prune_history()

    assert exists(request)


@pytest.mark.slow
def test_the_active_scheduler_prunes_old_history_on_its_own(synced_live, start_scheduler):
    old_run = record_execution(JOB, minutes_ago=100 * DAY)  # default retention: 90 days
    old_process = stopped_scheduler(silent_for_days=30)  # default: 7 days
    kept = record_execution(JOB, minutes_ago=10 * DAY)

    start_scheduler()

    wait_for(lambda: not exists(old_run) and not exists(old_process), timeout=20)
    assert exists(kept)


@pytest.fixture
def synced_live(transactional_db: None) -> services.SyncReport:
    return services.sync_jobs_from_code()


# Run-now request expiry -------------------------------------------------------------------


@override_settings(SCHEDULER_APP={"RUN_REQUEST_TIMEOUT": 600})
def test_a_request_no_scheduler_claimed_in_time_expires_instead_of_running(synced):
    stale = run_now(requested_at=timezone.now() - timedelta(seconds=601))
    fresh = run_now()
    store = JobStore()

    claimed = store.claim_run_requests(datetime.now(UTC))

    stale.refresh_from_db()
    fresh.refresh_from_db()
    assert [run.run_request.id for run in claimed] == [fresh.id]
    assert stale.status == RunRequest.Status.EXPIRED and stale.run_time is None
    assert stale.detail == "Expired: no scheduler claimed it within 600s of the request."
    assert fresh.status == RunRequest.Status.SUBMITTED
    assert DjangoJobExecution.objects.filter(job_id=JOB).count() == 1  # the fresh one only


def test_trigger_wait_reports_an_expired_request(synced, monkeypatch):
    def expire_at_once(*args, **kwargs):
        RunRequest.objects.update(status=RunRequest.Status.EXPIRED, detail="Expired: test.")
        return original(*args, **kwargs)

    original = runs._current_outcome
    monkeypatch.setattr(runs, "_current_outcome", expire_at_once)

    with pytest.raises(CommandError) as raised:
        call_command("scheduler", "trigger", JOB, "--wait", "--timeout", "5")

    assert raised.value.returncode == 1
    assert str(raised.value) == f"{JOB}: the run request expired: Expired: test."


@pytest.mark.slow
def test_a_scheduler_back_after_an_outage_does_not_fire_a_stale_request(
    synced_live, start_scheduler
):
    stale = run_now(requested_at=timezone.now() - timedelta(hours=3))  # default timeout: 5 min

    start_scheduler()

    wait_for(lambda: RunRequest.objects.get(id=stale.id).status == "expired", timeout=20)
    assert not ProbeRun.objects.exists()
    shown = RunRequestSerializer(RunRequest.objects.get(id=stale.id)).data  # as the API shows it
    assert shown["status"] == "expired" and shown["detail"].startswith("Expired:")


# The job's state -------------------------------------------------------------------------


def one_off(run_date: datetime) -> dict[str, object]:
    return {"trigger": "date", "trigger_args": {"run_date": run_date.isoformat()}}


def test_a_one_off_job_that_ran_is_finished_not_paused(synced):
    run_date = timezone.now() + timedelta(seconds=1)
    services.reschedule_job(job_id=JOB, trigger_spec=one_off(run_date), actor="a", source="api")
    assert selectors.get_job(job_id=JOB).state == "scheduled"
    wait_for(lambda: timezone.now() > run_date, timeout=5)

    # The scheduler claims its one run: no next run is left.
    [claimed] = JobStore().claim_due_jobs(datetime.now(UTC))

    assert claimed.run_times and DjangoJob.objects.get(id=JOB).next_run_time is None
    job = selectors.get_job(job_id=JOB)
    assert (job.state, job.enabled) == ("finished", False)


def ran_yesterday() -> DateTrigger:
    return DateTrigger(timezone.now() - timedelta(days=1))


def test_states_scheduled_paused_finished_broken_in_the_api_admin_and_cli(synced, admin_client):
    services.pause_job(job_id="cache.warm", actor="a", source="api")
    edit_stored_job(JOB, trigger=ran_yesterday(), next_run_time=None)
    edit_stored_job("probe.noop", func="project.jobs:function_renamed_away")

    jobs = {job["id"]: job for job in admin_client.get("/api/scheduler/jobs/").json()["results"]}
    assert jobs["monitoring.heartbeat"]["state"] == "scheduled"
    assert jobs["cache.warm"]["state"] == "paused"
    assert jobs[JOB]["state"] == "finished"
    assert jobs["probe.noop"]["state"] == "broken"

    page = admin_client.get("/admin/scheduler_app/job/").content.decode()
    assert 'scheduler-state-finished">finished<' in page
    assert 'scheduler-state-paused">paused<' in page

    out = StringIO()
    call_command("scheduler", "list", stdout=out)
    line = next(line for line in out.getvalue().splitlines() if line.startswith(JOB))
    assert " finished " in line
    out = StringIO()
    call_command("scheduler", "show", JOB, stdout=out)
    assert "none: finished" in out.getvalue()


def test_a_paused_one_off_job_still_ahead_is_paused(synced):
    services.reschedule_job(job_id=JOB, trigger_spec=one_off(timezone.now() + timedelta(days=1)),
                            actor="a", source="api")
    services.pause_job(job_id=JOB, actor="a", source="api")

    assert selectors.get_job(job_id=JOB).state == "paused"
