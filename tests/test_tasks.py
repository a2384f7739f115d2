"""What a task worker decides when it picks a run up: it runs it, refuses it with the
reason, hands a backfilled run back to wait its turn, or finds it expired. The task
function runs here as a worker calls it; tests/test_tasks_mode.py runs real workers."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection, connections, transaction
from django.utils import timezone
from django_apscheduler.models import DjangoJob, DjangoJobExecution

from scheduler_app import services, tasks
from scheduler_app.jobstore import JobStore
from scheduler_app.models import (
    EXECUTION_EXPIRED,
    EXECUTION_QUEUED,
    ExecutionRecord,
    JobRecord,
    RunRequest,
)
from scheduler_app.tasks import run_job
from tests.conftest import ON_POSTGRES, copy_stored_job, edit_stored_job, wait_for
from tests.testapp.models import ProbeRun

SLOW = "probe.slow"  # max_instances 1
CHANGE = {"job_id": SLOW, "actor": "t", "source": "cli"}


@pytest.fixture
def synced_live(transactional_db: None) -> services.SyncReport:
    # Committed data: the task function manages connections as a worker's does.
    report = services.sync_jobs_from_code()
    edit_stored_job(SLOW, kwargs={"seconds": 0})
    return report


@pytest.fixture
def store() -> JobStore:
    """The scheduler's store in tasks mode; the test plays the workers."""
    return JobStore(dispatch=lambda job_id, run_time: None)


def run(job_id: str, run_time: datetime) -> str:
    """Run a claimed run as a task worker does; what the task returns."""
    return run_job.call(job_id=job_id, run_time=run_time.isoformat())


def execution(job_id: str, run_time: datetime) -> DjangoJobExecution:
    return DjangoJobExecution.objects.get(job_id=job_id, run_time=run_time)


def backfill_one_run() -> datetime:
    """Queue the backfill of one run of `SLOW`, an hour ago; its scheduled time."""
    services.reschedule_job(trigger_spec={"trigger": "cron", "trigger_args": {"minute": "0"}},
                            **CHANGE)
    hour = timezone.now().replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)
    [run_time] = services.backfill_job(start=hour, end=hour, **CHANGE).queued
    return run_time


def make_due(job_id: str) -> datetime:
    due = timezone.now().replace(microsecond=0) - timedelta(seconds=1)
    edit_stored_job(job_id, next_run_time=due)
    return due


def test_a_scheduled_run_yields_its_place_to_a_backfilled_run_queued_before_it(
    synced_live, store
):
    backfilled = backfill_one_run()
    scheduled = make_due(SLOW)
    # One pass claims both: the backfilled run first, then the due one.
    claimed = store.claim(datetime.now(UTC))
    assert [run.run_times for run in claimed] == [[backfilled], [scheduled]]

    assert run(SLOW, scheduled) == "not started"
    assert run(SLOW, backfilled) == "success"

    refused = execution(SLOW, scheduled)
    assert refused.status == DjangoJobExecution.MAX_INSTANCES
    assert refused.exception == (
        f"Execution of job {SLOW!r} skipped: 0 instance(s) already running and 1 backfilled "
        "run(s) queued ahead of it.")
    assert execution(SLOW, backfilled).status == DjangoJobExecution.SUCCESS


def test_a_backfilled_run_that_finds_its_place_taken_waits_its_turn(synced_live, store):
    backfilled = backfill_one_run()
    [claimed] = store.claim(datetime.now(UTC))
    # A worker started another run of the job as the claim committed (the claim counts
    # the places without the workers' lock).
    other = DjangoJobExecution.objects.create(job_id=SLOW, run_time=timezone.now(),
                                              status=DjangoJobExecution.SENT)

    assert run(SLOW, backfilled) == "not started"

    request = RunRequest.objects.get(job_id=SLOW, cause="backfill")
    assert (request.status, request.claimed_at) == ("pending", None)
    assert not DjangoJobExecution.objects.filter(job_id=SLOW, run_time=backfilled).exists()
    assert store.claim_run_requests(datetime.now(UTC)) == [] and store.backfills_waiting
    other.status = DjangoJobExecution.SUCCESS
    other.save()
    [again] = store.claim_run_requests(datetime.now(UTC))
    assert again.run_times == claimed.run_times == [backfilled]
    assert run(SLOW, backfilled) == "success"
    assert not DjangoJobExecution.objects.filter(
        job_id=SLOW, run_time=backfilled, status=DjangoJobExecution.MAX_INSTANCES).exists()


def test_a_worker_does_not_run_a_run_queued_longer_than_the_timeout(synced_live, store,
                                                                    settings):
    settings.SCHEDULER_APP = {**settings.SCHEDULER_APP, "QUEUED_RUN_TIMEOUT": 600}
    services.request_job_run(job_id="probe.record", actor="t", source="cli")
    [claimed] = store.claim_run_requests(datetime.now(UTC))
    [run_time] = claimed.run_times
    # Queued 601 s ago; the scheduler's sweep has not come round to it yet.
    ExecutionRecord.objects.update(claimed_at=timezone.now() - timedelta(seconds=601))

    assert run("probe.record", run_time) == "not started"

    expired = execution("probe.record", run_time)
    assert (expired.status, expired.exception) == (
        EXECUTION_EXPIRED, "Expired: no worker started it within 600s of being queued.")
    assert not ProbeRun.objects.exists()


def test_a_run_whose_job_became_unreadable_is_an_error_not_queued_forever(synced_live, store):
    services.request_job_run(job_id="probe.record", actor="t", source="cli")
    [claimed] = store.claim_run_requests(datetime.now(UTC))
    DjangoJob.objects.filter(id="probe.record").update(job_state=b"garbage")

    assert run("probe.record", claimed.run_times[0]) == "not started"

    refused = execution("probe.record", claimed.run_times[0])
    assert refused.status == DjangoJobExecution.ERROR
    assert refused.exception.startswith("Not run: the job's stored state cannot be read")


def test_a_job_stored_without_a_record_gets_one_when_a_worker_starts_it(synced_live, store):
    copy_stored_job("probe.record", "probe.copy")
    due = make_due("probe.copy")
    store.claim(datetime.now(UTC))

    assert run("probe.copy", due) == "success"

    assert JobRecord.objects.get(job_id="probe.copy").name == "Probe"


@pytest.mark.skipif(not ON_POSTGRES, reason="SQLite runs one writer at a time")
def test_workers_starting_runs_of_a_job_stored_without_a_record_take_turns(synced_live, store):
    copy_stored_job(SLOW, "probe.copy")  # max_instances 1, no JobRecord
    first = make_due("probe.copy")
    store.claim(datetime.now(UTC))
    second = first + timedelta(seconds=1)
    edit_stored_job("probe.copy", next_run_time=second)
    store.claim(second)
    assert DjangoJobExecution.objects.filter(job_id="probe.copy",
                                             status=EXECUTION_QUEUED).count() == 2
    first_started, release = threading.Event(), threading.Event()
    second_worker: dict[str, object] = {}

    def first_worker() -> None:
        # The first worker's start, held open before its commit.
        try:
            with transaction.atomic():
                tasks._start("probe.copy", first)
                first_started.set()
                release.wait(30)
        finally:
            connections.close_all()

    def start_second() -> None:
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_backend_pid()")
                second_worker["pid"] = cursor.fetchone()[0]
            second_worker["started"] = tasks._start("probe.copy", second) is not None
        finally:
            connections.close_all()

    threads = [threading.Thread(target=first_worker), threading.Thread(target=start_second)]
    threads[0].start()
    assert first_started.wait(30)
    threads[1].start()

    def second_waits_or_is_done() -> bool:
        if "started" in second_worker:
            return True
        with connection.cursor() as cursor:
            cursor.execute("SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s",
                           [second_worker.get("pid")])
            return cursor.fetchone() == ("Lock",)

    wait_for(second_waits_or_is_done, timeout=30)
    release.set()
    for thread in threads:
        thread.join(30)

    assert second_worker["started"] is False
    assert execution("probe.copy", first).status == DjangoJobExecution.SENT
    assert execution("probe.copy", second).status == DjangoJobExecution.MAX_INSTANCES
    assert DjangoJob.objects.filter(id="probe.copy", record__isnull=False).exists()
