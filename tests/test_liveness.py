"""Runs report liveness: a run that keeps its heartbeat is never lost however long it
runs, a silent one is; a queued run no worker starts expires and frees its place."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone
from django_apscheduler.models import DjangoJobExecution

from scheduler_app import liveness, services
from scheduler_app.jobstore import JobStore
from scheduler_app.models import (
    EXECUTION_EXPIRED,
    EXECUTION_LOST,
    EXECUTION_QUEUED,
    Alert,
    ExecutionRecord,
    JobHealth,
    RunRequest,
)
from tests.conftest import wait_for


def running(job_id: str, *, seconds_ago: float) -> DjangoJobExecution:
    """A run of `job_id` that started `seconds_ago` and has sent no heartbeat yet."""
    run_time = timezone.now() - timedelta(seconds=seconds_ago)
    execution = DjangoJobExecution.objects.create(
        job_id=job_id, run_time=run_time, status=DjangoJobExecution.SENT
    )
    ExecutionRecord.objects.create(execution=execution, claimed_at=run_time, started_at=run_time)
    return execution


def status(execution: DjangoJobExecution) -> str:
    execution.refresh_from_db()
    return execution.status


def test_a_run_that_keeps_beating_is_never_lost_and_a_silent_one_is(synced):
    long_run = running("probe.slow", seconds_ago=7200)  # LOST_RUN_TIMEOUT is an hour
    silent = running("probe.record", seconds_ago=7200)
    just_started = running("probe.fail", seconds_ago=10)
    liveness.write_heartbeats([(long_run.job_id, long_run.run_time)])

    assert liveness.mark_lost_runs() == 1

    assert status(long_run) == DjangoJobExecution.SENT
    assert status(just_started) == DjangoJobExecution.SENT
    assert status(silent) == EXECUTION_LOST
    assert silent.exception == "No heartbeat for 3600s: the process running it probably died."
    assert JobHealth.objects.get(job_id="probe.record").runs_lost == 1


def test_the_heartbeat_thread_beats_for_the_runs_this_process_executes(synced_live, settings):
    settings.SCHEDULER_APP = {**settings.SCHEDULER_APP, "LOST_RUN_TIMEOUT": 0.4}
    run = running("probe.slow", seconds_ago=60)
    records = ExecutionRecord.objects.filter(execution=run)

    with liveness.RunHeartbeat().beating(run.job_id, run.run_time):
        first = wait_for(lambda: records.get().heartbeat_at, timeout=20)
        wait_for(lambda: records.get().heartbeat_at > first, timeout=20)
        assert liveness.mark_lost_runs() == 0

    assert status(run) == DjangoJobExecution.SENT


@pytest.fixture
def synced_live(transactional_db: None) -> services.SyncReport:
    return services.sync_jobs_from_code()


def test_a_queued_run_no_worker_started_expires_and_frees_its_place(synced, settings):
    settings.SCHEDULER_APP = {**settings.SCHEDULER_APP, "QUEUED_RUN_TIMEOUT": 600}
    change = {"job_id": "probe.slow", "actor": "t", "source": "cli"}  # max_instances 1
    services.reschedule_job(trigger_spec={"trigger": "cron", "trigger_args": {"hour": "*"}},
                            **change)
    hour = timezone.now().replace(minute=0, second=0, microsecond=0)
    services.backfill_job(start=hour - timedelta(hours=2), end=hour - timedelta(hours=1),
                          **change)
    store = JobStore(dispatch=lambda job_id, run_time: None)
    [first] = store.claim_run_requests(datetime.now(UTC))
    assert store.claim_run_requests(datetime.now(UTC)) == [], "the second waits its turn"
    ExecutionRecord.objects.update(claimed_at=timezone.now() - timedelta(seconds=601))
    fresh = DjangoJobExecution.objects.create(job_id="probe.record", run_time=timezone.now(),
                                              status=EXECUTION_QUEUED)
    ExecutionRecord.objects.create(execution=fresh)

    assert liveness.expire_queued_runs() == 1

    expired = DjangoJobExecution.objects.get(job_id="probe.slow")
    assert (expired.status, expired.exception) == (
        EXECUTION_EXPIRED, "Expired: no worker started it within 600s of being queued.")
    assert expired.finished is not None
    assert status(fresh) == EXECUTION_QUEUED
    assert JobHealth.objects.get(job_id="probe.slow").runs_missed == 1
    alert = Alert.objects.get(job_id="probe.slow")
    assert (alert.event, alert.message) == ("run_missed", (
        f"Run of job 'probe.slow' due at {first.run_times[0]:%Y-%m-%d %H:%M:%S %Z} was not run: "
        "Expired: no worker started it within 600s of being queued."))
    [second] = store.claim_run_requests(datetime.now(UTC))
    assert second.run_times == [hour - timedelta(hours=1)]
    assert first.run_times == [hour - timedelta(hours=2)]
    assert set(RunRequest.objects.values_list("status", flat=True)) == {"submitted"}
