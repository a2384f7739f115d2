"""RecordingExecutor's runs: start and outcome reported, connections kept and healed."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
from apscheduler.job import Job
from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.date import DateTrigger
from django.db import connection, connections
from django_apscheduler.models import DjangoJob, DjangoJobExecution

from scheduler_app import executor
from scheduler_app.executor import run_and_report
from scheduler_app.liveness import RunHeartbeat
from scheduler_app.models import ExecutionRecord
from tests.conftest import wait_for

BACKEND_PIDS: list[int] = []


def query_the_database() -> None:
    """A job that uses the database: notes which server process answered."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        BACKEND_PIDS.append(cursor.fetchone()[0])


def fail() -> None:
    raise ValueError("the report is empty")


def make_job(func) -> Job:
    now = datetime.now(UTC)
    job = Job(BlockingScheduler(timezone=UTC), id="job", func=func,
              trigger=DateTrigger(now, UTC), executor="default", args=(), kwargs={},
              name="job", misfire_grace_time=30, coalesce=False, max_instances=1)
    job._jobstore_alias = "default"
    return job


def run_in_worker(pool: ThreadPoolExecutor, job: Job, run_time: datetime) -> list:
    reports: list = []
    pool.submit(run_and_report, job, [run_time], "test", reports.append).result()
    return reports


def test_a_run_reports_its_start_then_its_outcome():
    run_time = datetime.now(UTC) - timedelta(seconds=1)
    with ThreadPoolExecutor(1) as pool:
        started, outcome = run_in_worker(pool, make_job(fail), run_time)

    assert started.status is None and run_time < started.started_at
    assert (outcome.status, outcome.exception) == (DjangoJobExecution.ERROR, "the report is empty")
    assert "ValueError" in outcome.traceback
    assert outcome.started_at == started.started_at <= outcome.finished_at


def test_a_run_past_its_misfire_grace_time_is_reported_missed_not_started():
    with ThreadPoolExecutor(1) as pool:
        [outcome] = run_in_worker(pool, make_job(fail), datetime.now(UTC) - timedelta(minutes=5))

    assert (outcome.status, outcome.started_at) == (DjangoJobExecution.MISSED, None)


@pytest.mark.postgres_only
@pytest.mark.django_db(transaction=True)
def test_worker_keeps_its_connection_across_runs_and_replaces_a_dead_one():
    BACKEND_PIDS.clear()
    job = make_job(query_the_database)
    with ThreadPoolExecutor(1) as pool:
        run_in_worker(pool, job, datetime.now(UTC))
        run_in_worker(pool, job, datetime.now(UTC))
        assert BACKEND_PIDS[0] == BACKEND_PIDS[1], "each run opened a new connection"

        # What a PostgreSQL restart does to a kept connection.
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(%s)", [BACKEND_PIDS[0]])
        *_, outcome = run_in_worker(pool, job, datetime.now(UTC))
        pool.submit(connections.close_all).result()

    assert outcome.status == DjangoJobExecution.SUCCESS
    assert len(BACKEND_PIDS) == 3 and BACKEND_PIDS[2] != BACKEND_PIDS[0]


def wait_for_its_heartbeat() -> None:
    """A job that ends once its run's heartbeat is in the store (fails after 20 s)."""
    wait_for(lambda: ExecutionRecord.objects.filter(heartbeat_at__isnull=False).exists(),
             timeout=20)


@pytest.mark.django_db(transaction=True)
def test_a_run_sends_heartbeats_while_its_function_executes(settings, monkeypatch):
    settings.SCHEDULER_APP = {**settings.SCHEDULER_APP, "LOST_RUN_TIMEOUT": 0.4}
    monkeypatch.setattr(executor, "heartbeats", RunHeartbeat())  # beats at this pace
    run_time = datetime.now(UTC)
    DjangoJob.objects.create(id="job", job_state=b"")
    execution = DjangoJobExecution.objects.create(job_id="job", run_time=run_time,
                                                  status=DjangoJobExecution.SENT)
    ExecutionRecord.objects.create(execution=execution)

    with ThreadPoolExecutor(1) as pool:
        *_, outcome = run_in_worker(pool, make_job(wait_for_its_heartbeat), run_time)
        pool.submit(connections.close_all).result()

    assert outcome.status == DjangoJobExecution.SUCCESS, outcome.exception
