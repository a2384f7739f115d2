"""What a task worker decides when it picks a run up: it runs it, refuses it with the
reason, hands a backfilled run back to wait its turn, or finds it expired. The task
function runs here as a worker calls it; tests/test_tasks_mode.py runs real workers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone
from django_apscheduler.models import DjangoJob, DjangoJobExecution

from scheduler_app import services
from scheduler_app.jobstore import JobStore
from scheduler_app.models import (
    EXECUTION_EXPIRED,
    ExecutionRecord,
)
from scheduler_app.tasks import run_job
from tests.conftest import edit_stored_job
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


