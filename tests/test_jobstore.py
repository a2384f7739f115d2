"""JobStore: a job store's usual contract, plus kept broken jobs and locked claims."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from apscheduler.job import Job
from apscheduler.jobstores.base import ConflictingIdError, JobLookupError
from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.combining import AndTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger
from django.db import connection, connections, transaction
from django.test.utils import CaptureQueriesContext
from django_apscheduler.models import DjangoJob, DjangoJobExecution

from scheduler_app import selectors, services
from scheduler_app.jobstore import JobStore
from scheduler_app.models import ExecutionRecord, JobChange, JobRecord, RunRequest
from scheduler_app.state import load_state
from tests.conftest import edit_stored_job, run_in_threads

NOW = datetime(2030, 6, 1, 12, 0, tzinfo=UTC)


def probe() -> None:
    """A job function for the contract tests."""


STOCK_RUN = threading.Event()


def mark_stock_run() -> None:
    """A job function the stock-scheduler test watches."""
    STOCK_RUN.set()


@pytest.fixture
def scheduler() -> BlockingScheduler:
    return BlockingScheduler(timezone=UTC)


@pytest.fixture
def store(scheduler: BlockingScheduler) -> JobStore:
    store = JobStore()
    store.start(scheduler, "default")
    return store


def make_job(scheduler, job_id: str, next_run_time: datetime | None, **options) -> Job:
    job = Job(
        scheduler,
        id=job_id,
        func=probe,
        trigger=options.pop("trigger", DateTrigger(NOW + timedelta(days=1), UTC)),
        executor="default",
        args=(),
        kwargs={},
        name=job_id,
        misfire_grace_time=30,
        coalesce=options.pop("coalesce", False),
        max_instances=1,
    )
    job.next_run_time = next_run_time
    return job


def break_job(job_id: str) -> None:
    edit_stored_job(job_id, func="tests.module_deleted_in_a_deploy:probe")


@pytest.mark.django_db
class TestJobStoreContract:
    def test_added_job_is_looked_up_with_its_state_and_a_version(self, store, scheduler):
        store.add_job(make_job(scheduler, "a", NOW))

        job = store.lookup_job("a")
        assert (job.id, job.func_ref, job.next_run_time) == ("a", "tests.test_jobstore:probe", NOW)
        assert job.func is probe
        assert JobRecord.objects.get(job_id="a").version == 1
        assert store.lookup_job("missing") is None

    def test_adding_an_existing_id_conflicts(self, store, scheduler):
        store.add_job(make_job(scheduler, "a", NOW))
        with pytest.raises(ConflictingIdError):
            store.add_job(make_job(scheduler, "a", NOW))

    def test_due_jobs_next_run_time_and_paused_jobs(self, store, scheduler):
        store.add_job(make_job(scheduler, "later", NOW + timedelta(minutes=5)))
        store.add_job(make_job(scheduler, "due", NOW - timedelta(minutes=1)))
        store.add_job(make_job(scheduler, "paused", None))

        assert [job.id for job in store.get_due_jobs(NOW)] == ["due"]
        assert store.get_next_run_time() == NOW - timedelta(minutes=1)
        assert [job.id for job in store.get_all_jobs()] == ["due", "later", "paused"]

    def test_update_and_remove(self, store, scheduler):
        job = make_job(scheduler, "a", NOW)
        store.add_job(job)
        job.next_run_time = NOW + timedelta(hours=1)
        store.update_job(job)
        assert store.lookup_job("a").next_run_time == NOW + timedelta(hours=1)

        store.remove_job("a")
        assert store.lookup_job("a") is None
        with pytest.raises(JobLookupError):
            store.remove_job("a")
        with pytest.raises(JobLookupError):
            store.update_job(job)

    def test_an_update_by_a_stock_scheduler_keeps_the_record_in_step(self, store, scheduler):
        job = make_job(scheduler, "a", NOW)
        store.add_job(job)
        assert JobRecord.objects.get(job_id="a").schedule.startswith("Once at ")
        job.func, job.func_ref, job.name = None, "no.such.module:gone", "Renamed"
        job.trigger = IntervalTrigger(minutes=5, timezone=UTC)

        store.update_job(job)

        record = JobRecord.objects.get(job_id="a")
        assert (record.func_ref, record.name) == ("no.such.module:gone", "Renamed")
        assert (record.trigger_type, record.schedule) == ("interval", "Every 5 minutes")
        assert selectors.get_job(job_id="a").broken
        assert selectors.scheduler_status().jobs_broken == 1

    def test_remove_all_jobs(self, store, scheduler):
        store.add_job(make_job(scheduler, "a", NOW))
        store.add_job(make_job(scheduler, "b", NOW))
        store.remove_all_jobs()
        assert store.get_all_jobs() == []


@pytest.mark.django_db
class TestBrokenJobs:
    def test_job_that_cannot_be_imported_is_kept_with_its_history(self, store, scheduler):
        store.add_job(make_job(scheduler, "a", NOW - timedelta(minutes=1)))
        DjangoJobExecution.objects.create(job_id="a", status=DjangoJobExecution.SUCCESS,
                                          run_time=NOW - timedelta(days=1))
        break_job("a")

        assert store.get_due_jobs(NOW) == []
        assert store.get_all_jobs() == []
        assert store.lookup_job("a") is None
        assert DjangoJob.objects.filter(id="a").exists()
        assert DjangoJobExecution.objects.filter(job_id="a").count() == 1
        assert selectors.get_job(job_id="a").broken

    def test_claiming_a_due_broken_job_records_the_skipped_run_and_moves_on(self, store, scheduler):
        trigger = IntervalTrigger(minutes=10, start_date=NOW - timedelta(hours=1), timezone=UTC)
        store.add_job(make_job(scheduler, "a", NOW - timedelta(minutes=1), trigger=trigger))
        break_job("a")

        assert store.claim_due_jobs(NOW) == []

        row = DjangoJob.objects.get(id="a")
        assert row.next_run_time == NOW + timedelta(minutes=9)
        execution = DjangoJobExecution.objects.get(job_id="a")
        assert execution.status == DjangoJobExecution.ERROR
        assert "module_deleted_in_a_deploy" in execution.exception


@pytest.mark.django_db
class TestClaims:
    def test_claim_advances_next_run_time_before_anything_runs(self, store, scheduler):
        trigger = IntervalTrigger(minutes=1, start_date=NOW - timedelta(minutes=30), timezone=UTC)
        store.add_job(make_job(scheduler, "a", NOW - timedelta(minutes=2), trigger=trigger))

        [claimed] = store.claim_due_jobs(NOW)

        assert claimed.job.id == "a"
        assert claimed.run_times == [NOW - timedelta(minutes=2), NOW - timedelta(minutes=1), NOW]
        assert DjangoJob.objects.get(id="a").next_run_time == NOW + timedelta(minutes=1)
        assert store.claim_due_jobs(NOW) == []

    def test_each_claimed_run_gets_its_record_with_its_cause(self, store, scheduler):
        trigger = IntervalTrigger(minutes=1, start_date=NOW - timedelta(minutes=30), timezone=UTC)
        store.add_job(make_job(scheduler, "a", NOW - timedelta(minutes=1), trigger=trigger))
        RunRequest.objects.create(job_id="a", requested_by="alice", source="api")

        store.claim_due_jobs(NOW)
        store.claim_run_requests(NOW + timedelta(seconds=5))

        causes = sorted(ExecutionRecord.objects.filter(execution__job_id="a")
                        .values_list("execution__run_time", "cause"))
        assert causes == [(NOW - timedelta(minutes=1), "scheduled"), (NOW, "scheduled"),
                          (NOW + timedelta(seconds=5), "run_now")]

    def test_coalesced_job_is_claimed_for_its_latest_run_only(self, store, scheduler):
        trigger = IntervalTrigger(minutes=1, start_date=NOW - timedelta(minutes=30), timezone=UTC)
        store.add_job(make_job(scheduler, "a", NOW - timedelta(minutes=2), trigger=trigger,
                               coalesce=True))

        [claimed] = store.claim_due_jobs(NOW)

        assert claimed.run_times == [NOW]

    def test_one_off_job_is_kept_after_its_run(self, store, scheduler):
        store.add_job(make_job(scheduler, "once", NOW, trigger=DateTrigger(NOW, UTC)))

        [claimed] = store.claim_due_jobs(NOW)

        assert claimed.run_times == [NOW]
        assert DjangoJob.objects.get(id="once").next_run_time is None


def make_due(job_id: str) -> None:
    """Put a synced job's next run one second in the past, with a 1-minute interval."""
    edit_stored_job(job_id, trigger=IntervalTrigger(minutes=1, timezone=UTC),
                    next_run_time=datetime.now(UTC) - timedelta(seconds=1))


@pytest.mark.django_db(transaction=True)
def test_pause_committed_during_a_claim_is_not_reverted_by_the_write_back(store):
    """The APScheduler 3 write-back race, made deterministic with a hook."""
    services.sync_jobs_from_code()
    make_due("probe.record")
    pause_done = threading.Event()

    def pause() -> None:
        try:
            services.pause_job(job_id="probe.record", actor="operator", source="api")
        finally:
            connections.close_all()
            pause_done.set()

    def commit_a_pause_meanwhile(claimed_ids: list[str]) -> None:
        assert claimed_ids == ["probe.record"]
        threading.Thread(target=pause).start()
        # The pause now waits on the claim's row lock (PostgreSQL) or on the write
        # lock (SQLite); it must not have finished.
        assert not pause_done.wait(0.5)

    claimed = store.claim_due_jobs(datetime.now(UTC), before_write_back=commit_a_pause_meanwhile)

    assert [run.job.id for run in claimed] == ["probe.record"]
    assert pause_done.wait(10)
    job = selectors.get_job(job_id="probe.record")
    assert not job.enabled and DjangoJob.objects.get(id="probe.record").next_run_time is None


@pytest.mark.postgres_only
@pytest.mark.django_db(transaction=True)
def test_claim_skips_a_row_locked_by_a_change_in_progress(store):
    services.sync_jobs_from_code()
    make_due("probe.record")
    locked, release = threading.Event(), threading.Event()

    def hold_the_row(_: int) -> None:
        with transaction.atomic():
            DjangoJob.objects.select_for_update().get(id="probe.record")
            locked.set()
            release.wait(10)

    holder = threading.Thread(target=lambda: run_in_threads(1, hold_the_row))
    holder.start()
    assert locked.wait(10)
    started = time.monotonic()
    assert store.claim_due_jobs(datetime.now(UTC)) == []
    assert time.monotonic() - started < 1, "the claim waited for the lock instead of skipping"
    release.set()
    holder.join()
    assert [run.job.id for run in store.claim_due_jobs(datetime.now(UTC))] == ["probe.record"]


@pytest.mark.django_db
def test_a_claim_costs_the_same_statements_for_five_due_jobs_as_for_fifty(store, scheduler):
    def statements_to_claim(count: int, prefix: str) -> int:
        for i in range(count):
            trigger = IntervalTrigger(minutes=1, start_date=NOW - timedelta(hours=1), timezone=UTC)
            store.add_job(make_job(scheduler, f"{prefix}{i}", NOW, trigger=trigger))
        with CaptureQueriesContext(connection) as queries:
            claimed = store.claim_due_jobs(NOW)
        assert len(claimed) == count
        records = ExecutionRecord.objects.filter(execution__job__id__startswith=prefix)
        assert records.count() == count
        return len(queries)

    assert statements_to_claim(5, "few.") == statements_to_claim(50, "many.")
    assert DjangoJob.objects.filter(next_run_time=NOW + timedelta(minutes=1)).count() == 55


@pytest.mark.django_db
def test_a_run_already_fired_is_left_out_and_the_rest_of_the_batch_is_claimed(store, scheduler):
    trigger = IntervalTrigger(minutes=1, start_date=NOW - timedelta(hours=1), timezone=UTC)
    store.add_job(make_job(scheduler, "a", NOW - timedelta(minutes=2), trigger=trigger))
    store.add_job(make_job(scheduler, "b", NOW, trigger=trigger))
    # Fired by a scheduler that lost its lease meanwhile: its execution row exists.
    DjangoJobExecution.objects.create(job_id="a", run_time=NOW - timedelta(minutes=1),
                                      status=DjangoJobExecution.SENT)

    claimed = {run.job.id: run.run_times for run in store.claim_due_jobs(NOW)}

    assert claimed == {"a": [NOW - timedelta(minutes=2), NOW], "b": [NOW]}
    assert DjangoJobExecution.objects.filter(job_id="a").count() == 3
    assert ExecutionRecord.objects.filter(execution__job_id="a").count() == 2


class _FailingTrigger(BaseTrigger):
    """A custom trigger (another app's) whose fire-time arithmetic fails."""

    def get_next_fire_time(self, previous_fire_time, now):
        raise RuntimeError("cannot compute")


@pytest.mark.django_db
class TestCatchUp:
    def test_a_job_an_hour_behind_gets_a_bounded_number_of_runs_and_counts_the_rest(
        self, store, scheduler
    ):
        trigger = IntervalTrigger(seconds=1, start_date=NOW - timedelta(days=1), timezone=UTC)
        store.add_job(make_job(scheduler, "a", NOW - timedelta(hours=1), trigger=trigger))

        [claimed] = store.claim_due_jobs(NOW)

        assert claimed.run_times == [NOW - timedelta(seconds=s) for s in range(9, -1, -1)]
        records = ExecutionRecord.objects.filter(execution__job_id="a").order_by(
            "execution__run_time")
        assert [r.skipped_runs for r in records] == [3601 - 10] + [0] * 9
        assert DjangoJob.objects.get(id="a").next_run_time == NOW + timedelta(seconds=1)

    def test_the_bound_is_a_setting_and_coalescing_jobs_run_once(self, store, scheduler, settings):
        settings.SCHEDULER_APP = {**settings.SCHEDULER_APP, "MAX_CATCH_UP_RUNS": 2}
        trigger = IntervalTrigger(seconds=1, start_date=NOW - timedelta(days=1), timezone=UTC)
        store.add_job(make_job(scheduler, "a", NOW - timedelta(minutes=1), trigger=trigger))
        store.add_job(make_job(scheduler, "c", NOW - timedelta(minutes=1), trigger=trigger,
                               coalesce=True))

        claimed = {run.job.id: run.run_times for run in store.claim_due_jobs(NOW)}

        assert claimed == {"a": [NOW - timedelta(seconds=1), NOW], "c": [NOW]}
        skipped = dict(ExecutionRecord.objects.filter(skipped_runs__gt=0)
                       .values_list("execution__job_id", "skipped_runs"))
        assert skipped == {"a": 59, "c": 60}

    def test_a_microsecond_interval_stored_behind_the_checks_costs_a_bounded_pass(
        self, store, scheduler
    ):
        trigger = IntervalTrigger(seconds=0.000001, start_date=NOW - timedelta(days=1),
                                  timezone=UTC)
        store.add_job(make_job(scheduler, "a", NOW - timedelta(seconds=2), trigger=trigger))

        started = time.monotonic()
        [claimed] = store.claim_due_jobs(NOW)

        # The one-by-one walk took 2,000,001 trigger calls (many seconds); counting takes none.
        assert time.monotonic() - started < 5
        assert len(claimed.run_times) == 10
        assert ExecutionRecord.objects.get(skipped_runs__gt=0).skipped_runs == 2_000_001 - 10

    def test_a_next_run_time_of_year_one_counts_its_ten_billions_of_skipped_runs(
        self, store, scheduler
    ):
        year_one = datetime(1, 1, 2, tzinfo=UTC)
        trigger = IntervalTrigger(seconds=1, start_date=year_one, timezone=UTC)
        store.add_job(make_job(scheduler, "a", year_one, trigger=trigger))

        [claimed] = store.claim_due_jobs(NOW)

        assert claimed.run_times[-1] == NOW
        behind = int((NOW - year_one).total_seconds()) + 1
        assert ExecutionRecord.objects.get(skipped_runs__gt=0).skipped_runs == behind - 10


@pytest.mark.django_db
class TestJobsTheSchedulerSetsAside:
    def test_unreadable_state_is_paused_through_an_audited_change(self, store, scheduler):
        store.add_job(make_job(scheduler, "bad", NOW - timedelta(minutes=1)))
        store.add_job(make_job(scheduler, "good", NOW - timedelta(minutes=1)))
        DjangoJob.objects.filter(id="bad").update(job_state=b"\x80\x05garbage")

        claimed = store.claim_due_jobs(NOW)

        assert [run.job.id for run in claimed] == ["good"]
        assert DjangoJob.objects.get(id="bad").next_run_time is None
        assert JobRecord.objects.get(job_id="bad").version == 2
        change = JobChange.objects.get(job_id="bad")
        assert (change.action, change.actor, change.source, change.version) == (
            "paused", "scheduler", "scheduler", 2)
        assert "cannot be read" in change.after["reason"]
        execution = DjangoJobExecution.objects.get(job_id="bad")
        assert execution.status == DjangoJobExecution.ERROR
        assert "Not run, job paused" in execution.exception

    def test_a_trigger_that_fails_pauses_its_job_and_the_others_are_claimed(self, store, scheduler):
        store.add_job(make_job(scheduler, "bad", NOW - timedelta(minutes=1),
                               trigger=_FailingTrigger()))
        store.add_job(make_job(scheduler, "good", NOW - timedelta(minutes=1)))

        claimed = store.claim_due_jobs(NOW)

        assert [run.job.id for run in claimed] == ["good"]
        assert DjangoJob.objects.get(id="bad").next_run_time is None
        change = JobChange.objects.get(job_id="bad")
        assert change.actor == "scheduler"
        assert "RuntimeError: cannot compute" in change.after["reason"]
        assert (change.before["trigger"], change.before["enabled"]) == ("custom", True)
        # The pickled state is paused too, as every other pause leaves it.
        assert load_state(DjangoJob.objects.get(id="bad").job_state)["next_run_time"] is None
        assert selectors.get_job(job_id="bad").trigger == "custom"
        assert store.claim_due_jobs(NOW + timedelta(minutes=1)) == []

    def test_an_and_trigger_whose_triggers_never_agree_pauses_its_job_instead_of_hanging(
        self, store, scheduler
    ):
        # APScheduler's AndTrigger loops until the calendar ends for these two.
        never = AndTrigger([CronTrigger(hour=3, timezone=UTC),
                            CronTrigger(day_of_week="mon", timezone=UTC)])
        store.add_job(make_job(scheduler, "bad", NOW - timedelta(minutes=1), trigger=never))
        store.add_job(make_job(scheduler, "good", NOW - timedelta(minutes=1)))

        claimed = store.claim_due_jobs(NOW)

        assert [run.job.id for run in claimed] == ["good"]
        assert DjangoJob.objects.get(id="bad").next_run_time is None
        assert "agreed on no time" in JobChange.objects.get(job_id="bad").after["reason"]


@pytest.mark.django_db(transaction=True)
def test_a_stock_apscheduler_scheduler_does_not_busy_loop_on_a_due_broken_job():
    """The store used as a drop-in store of a stock APScheduler 3 scheduler, as documented."""
    from apscheduler.schedulers.background import BackgroundScheduler

    passes = 0
    STOCK_RUN.clear()

    class CountingScheduler(BackgroundScheduler):
        def _process_jobs(self):
            nonlocal passes
            passes += 1
            return super()._process_jobs()

    stock = CountingScheduler(timezone=UTC)
    stock.add_jobstore(JobStore(), "default")
    stock.start(paused=True)
    try:
        stock.add_job(probe, "interval", hours=1, id="broken",
                      next_run_time=datetime.now(UTC) - timedelta(seconds=1))
        break_job("broken")
        stock.add_job(mark_stock_run, "date", id="healthy",
                      run_date=datetime.now(UTC) + timedelta(seconds=1))
        passes = 0
        stock.resume()
        assert STOCK_RUN.wait(10), "the healthy job did not run"
        time.sleep(1)
    finally:
        stock.shutdown(wait=False)
        connections.close_all()

    # Measured before the fix: thousands of passes a second.
    assert passes < 20
    assert DjangoJob.objects.filter(id="broken").exists()


def enqueue_or_refuse(refused_job_id: str, failure: str) -> Callable[[str, datetime], None]:
    """A task backend that takes every run but those of one job."""
    from scheduler_app.tasks import enqueue_run  # imports the Tasks framework

    def dispatch(job_id: str, run_time: datetime) -> None:
        enqueue_run(job_id, run_time)  # written, then undone with the refusal
        if job_id != refused_job_id:
            return
        if failure == "database error":  # one that aborts a PostgreSQL transaction
            DjangoJob.objects.create(id=job_id)
        raise ValueError("queue full")

    return dispatch


@pytest.mark.django_db
@pytest.mark.parametrize("failure", ["backend error", "database error"])
def test_a_run_the_task_backend_refuses_is_an_error_and_the_others_are_queued(scheduler, failure):
    from django_tasks_db.models import DBTaskResult

    store = JobStore(dispatch=enqueue_or_refuse("b", failure))
    store.start(scheduler, "default")
    trigger = IntervalTrigger(minutes=1, start_date=NOW - timedelta(hours=1), timezone=UTC)
    for job_id in ("a", "b", "c"):
        store.add_job(make_job(scheduler, job_id, NOW, trigger=trigger))

    claimed = store.claim(NOW)

    assert sorted(run.job.id for run in claimed) == ["a", "b", "c"]
    statuses = dict(DjangoJobExecution.objects.values_list("job_id", "status"))
    assert statuses == {"a": "Queued", "b": DjangoJobExecution.ERROR, "c": "Queued"}
    refused = DjangoJobExecution.objects.get(job_id="b")
    error = "IntegrityError" if failure == "database error" else "ValueError: queue full"
    assert refused.exception.startswith(f"Not queued: the task backend refused it: {error}")
    assert sorted(task.args_kwargs["kwargs"]["job_id"] for task in DBTaskResult.objects.all()) \
        == ["a", "c"]
    assert DjangoJob.objects.get(id="b").next_run_time == NOW + timedelta(minutes=1)
