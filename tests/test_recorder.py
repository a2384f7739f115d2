"""RunRecorder: run starts and outcomes written in batches, retried, never lost."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.db import DatabaseError, connection
from django.test.utils import CaptureQueriesContext
from django_apscheduler.models import DjangoJob, DjangoJobExecution

from scheduler_app import recorder as recorder_module
from scheduler_app.models import EXECUTION_LOST, ExecutionRecord, JobHealth
from scheduler_app.outcomes import record_outcomes, record_reported_outcomes
from scheduler_app.recorder import RunRecorder, RunReport, record_reports
from tests.conftest import wait_for

RUN_TIME = datetime(2030, 6, 1, 12, 0, tzinfo=UTC)


def claimed_runs(count: int, job_id: str = "a") -> list[datetime]:
    """`count` runs of one job as a claim records them: sent, with an empty record."""
    DjangoJob.objects.get_or_create(id=job_id, defaults={"job_state": b"", "next_run_time": None})
    run_times = [RUN_TIME + timedelta(minutes=i) for i in range(count)]
    for run_time in run_times:
        execution = DjangoJobExecution.objects.create(
            job_id=job_id, run_time=run_time, status=DjangoJobExecution.SENT
        )
        ExecutionRecord.objects.create(execution=execution)
    return run_times


def finished(run_time: datetime, *, status: str = DjangoJobExecution.SUCCESS,
             **fields: str) -> RunReport:
    started = run_time + timedelta(seconds=2)
    return RunReport(job_id="a", run_time=run_time, started_at=started, status=status,
                     finished_at=started + timedelta(seconds=1), duration=1.0, **fields)


@pytest.mark.django_db
def test_a_batch_records_every_outcome_and_start():
    run_times = claimed_runs(3)
    reports = [
        finished(run_times[0]),
        finished(run_times[1], status=DjangoJobExecution.ERROR, exception="boom",
                 traceback="Traceback ..."),
        RunReport(job_id="a", run_time=run_times[2], started_at=run_times[2]),  # still running
    ]

    record_reports(reports)

    rows = {e.run_time: e for e in DjangoJobExecution.objects.select_related("record")}
    done, failed, running = (rows[t] for t in run_times)
    assert (done.status, done.duration, done.exception) == ("Executed", Decimal("1.00"), None)
    finished_at = run_times[0] + timedelta(seconds=3)
    assert done.finished == Decimal(str(round(finished_at.timestamp(), 2)))
    assert done.record.started_at == run_times[0] + timedelta(seconds=2)
    assert (failed.status, failed.exception, failed.traceback) == ("Error!", "boom",
                                                                   "Traceback ...")
    assert (running.status, running.finished) == (DjangoJobExecution.SENT, None)
    assert running.record.started_at == run_times[2]


@pytest.mark.django_db
def test_a_start_and_an_outcome_of_one_run_in_one_batch_are_both_kept():
    [run_time] = claimed_runs(1)
    started = RunReport(job_id="a", run_time=run_time, started_at=run_time + timedelta(seconds=5))
    outcome = RunReport(job_id="a", run_time=run_time, status=DjangoJobExecution.SUCCESS,
                        finished_at=run_time + timedelta(seconds=6), duration=1.0)

    record_reports([started, outcome])

    execution = DjangoJobExecution.objects.select_related("record").get()
    assert execution.status == DjangoJobExecution.SUCCESS
    assert execution.record.started_at == run_time + timedelta(seconds=5)


@pytest.mark.postgres_only
@pytest.mark.django_db
def test_on_postgresql_a_batch_of_any_size_is_one_statement():
    run_times = claimed_runs(200)

    with CaptureQueriesContext(connection) as queries:
        record_reports([finished(run_time) for run_time in run_times])

    statements = [q["sql"] for q in queries if not q["sql"].startswith(("SAVEPOINT", "RELEASE"))]
    assert len(statements) == 1
    assert DjangoJobExecution.objects.filter(status="Executed").count() == 200
    assert ExecutionRecord.objects.filter(started_at__isnull=False).count() == 200


@pytest.mark.django_db
def test_batch_hooks_see_the_outcomes_inside_the_recording_transaction():
    run_times = claimed_runs(2)
    seen = []

    def hook(outcomes):
        assert connection.in_atomic_block
        seen.extend((report.run_time, report.status) for report in outcomes)

    record_reports([finished(run_times[0]), RunReport(job_id="a", run_time=run_times[1],
                                                       started_at=run_times[1])], hooks=[hook])

    assert seen == [(run_times[0], DjangoJobExecution.SUCCESS)]  # not the started-only run


@pytest.mark.django_db(transaction=True)
def test_recorder_retries_a_batch_after_a_database_error(monkeypatch):
    run_times = claimed_runs(2)
    real_record, failures = record_reports, []

    def fail_once(reports, **options):
        if not failures:
            failures.append(len(reports))
            raise DatabaseError("the server restarted")
        real_record(reports, **options)

    monkeypatch.setattr(recorder_module, "record_reports", fail_once)
    recorder = RunRecorder()
    recorder.start()
    for run_time in run_times:
        recorder.report(finished(run_time))
    try:
        wait_for(lambda: DjangoJobExecution.objects.filter(status="Executed").count() == 2,
                 timeout=10)
    finally:
        recorder.stop()
    assert failures


@pytest.mark.django_db(transaction=True)
def test_stopping_the_recorder_writes_what_was_queued():
    run_times = claimed_runs(50)
    recorder = RunRecorder()
    recorder.start()
    for run_time in run_times:
        recorder.report(finished(run_time))

    recorder.stop()

    assert DjangoJobExecution.objects.filter(status="Executed").count() == 50


@pytest.mark.django_db(transaction=True)
def test_a_short_runs_start_and_outcome_are_written_in_one_transaction():
    [run_time] = claimed_runs(1)
    batches: list[list[RunReport]] = []
    recorder = RunRecorder(hooks=[lambda outcomes: batches.append(list(outcomes))], linger=1.0)
    recorder.start()
    outcome = finished(run_time)
    try:
        recorder.report(RunReport(job_id="a", run_time=run_time, started_at=outcome.started_at))
        time.sleep(0.01)
        recorder.report(outcome)
        wait_for(lambda: batches, timeout=10)
    finally:
        recorder.stop()

    assert batches == [[outcome]]  # one batch: the start was not written on its own
    record = ExecutionRecord.objects.select_related("execution").get(execution__job_id="a")
    assert record.started_at == outcome.started_at
    assert record.execution.status == DjangoJobExecution.SUCCESS


@pytest.mark.django_db
def test_a_run_marked_lost_stays_lost_when_its_outcome_comes_late():
    [run_time] = claimed_runs(1)
    DjangoJobExecution.objects.filter(run_time=run_time).update(status=EXECUTION_LOST)
    record_outcomes(execution_ids=DjangoJobExecution.objects.values_list("id", flat=True))

    record_reports([finished(run_time)], hooks=[record_reported_outcomes])

    assert DjangoJobExecution.objects.get(run_time=run_time).status == EXECUTION_LOST
    health = JobHealth.objects.get(job_id="a")
    assert (health.runs_lost, health.runs_success) == (1, 0)
