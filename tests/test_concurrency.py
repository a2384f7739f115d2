"""Concurrent changes on PostgreSQL, from real threads with their own connections."""

from __future__ import annotations

import threading
import time

import pytest
from django_apscheduler.models import DjangoJob

from scheduler_app import notifications, selectors, services
from scheduler_app.exceptions import VersionConflict
from scheduler_app.models import JobChange, RunRequest
from scheduler_app.registry import JobDeclaration, registry
from tests.conftest import run_in_threads

pytestmark = [pytest.mark.postgres_only, pytest.mark.django_db(transaction=True)]

JOB = "reports.weekly"


def no_errors(results: list[object]) -> None:
    errors = [result for result in results if isinstance(result, BaseException)]
    assert not errors, errors


def test_fifty_threads_syncing_distinct_jobs_all_land():
    template = registry.get("probe.record")
    declarations = [
        JobDeclaration(**{**template.__dict__, "id": f"generated.job_{i:02d}"}) for i in range(50)
    ]

    results = run_in_threads(50, lambda i: services.sync_jobs_from_code(
        declarations=[declarations[i]]
    ))

    no_errors(results)
    stored = set(DjangoJob.objects.filter(id__startswith="generated.").values_list("id", flat=True))
    assert stored == {declaration.id for declaration in declarations}
    assert all(result.added == [declarations[i].id] for i, result in enumerate(results))


def test_two_processes_syncing_the_same_job_add_it_once():
    declaration = registry.get("probe.record")

    results = run_in_threads(8, lambda i: services.sync_jobs_from_code(declarations=[declaration]))

    no_errors(results)
    assert sum(declaration.id in result.added for result in results) == 1
    assert JobChange.objects.filter(job_id=declaration.id, action="created").count() == 1


def test_pause_resume_toggling_from_five_threads_stays_consistent():
    services.sync_jobs_from_code()

    def toggle(thread: int) -> None:
        for step in range(20):
            operation = services.pause_job if (thread + step) % 2 else services.resume_job
            operation(job_id=JOB, actor=f"thread-{thread}", source="api")

    no_errors(run_in_threads(5, toggle))

    job = selectors.get_job(job_id=JOB)
    row = DjangoJob.objects.get(id=JOB)
    assert (row.next_run_time is None) == (not job.enabled)
    assert bool(job.upcoming) == job.enabled
    last = JobChange.objects.filter(job_id=JOB, action__in=["paused", "resumed"]).first()
    assert last.action == ("resumed" if job.enabled else "paused")
    assert last.version == job.version
    assert last.after["enabled"] == job.enabled


def test_ten_threads_rescheduling_one_job_serialize_and_last_commit_wins():
    services.sync_jobs_from_code()
    start_version = selectors.get_job(job_id=JOB).version

    def reschedule(thread: int) -> int:
        spec = {"trigger": "interval", "trigger_args": {"minutes": thread + 1}}
        return services.reschedule_job(
            job_id=JOB, trigger_spec=spec, actor=f"thread-{thread}", source="api"
        ).job.version

    versions = run_in_threads(10, reschedule)

    no_errors(versions)
    assert sorted(versions) == list(range(start_version + 1, start_version + 11))
    changes = list(JobChange.objects.filter(job_id=JOB, action="rescheduled").order_by("id"))
    assert [entry.version for entry in changes] == sorted(versions)
    job = selectors.get_job(job_id=JOB)
    assert job.version == start_version + 10
    assert job.trigger_args == changes[-1].after["trigger_args"]
    # Each change saw the state the previous one committed: no update was lost.
    for previous, following in zip(changes, changes[1:], strict=False):
        assert following.before["trigger_args"] == previous.after["trigger_args"]


def test_concurrent_writers_with_the_same_expected_version_only_one_wins():
    services.sync_jobs_from_code()
    version = selectors.get_job(job_id=JOB).version

    def reschedule(thread: int) -> object:
        spec = {"trigger": "interval", "trigger_args": {"minutes": thread + 1}}
        return services.reschedule_job(
            job_id=JOB, trigger_spec=spec, actor="t", source="api", expected_version=version
        )

    results = run_in_threads(6, reschedule)

    conflicts = [result for result in results if isinstance(result, VersionConflict)]
    assert len(conflicts) == 5
    assert selectors.get_job(job_id=JOB).version == version + 1


def test_ten_simultaneous_run_now_requests_are_all_recorded():
    services.sync_jobs_from_code()

    results = run_in_threads(10, lambda i: services.request_job_run(
        job_id=JOB, actor=f"thread-{i}", source="api"
    ).id)

    no_errors(results)
    assert sorted(RunRequest.objects.values_list("id", flat=True)) == sorted(results)
    assert JobChange.objects.filter(job_id=JOB, action="run_requested").count() == 10


def test_a_read_waiting_on_a_write_sees_the_written_version_and_schedule(monkeypatch):
    """A detail read blocked by a writer's lock returns the committed state, whole."""
    services.sync_jobs_from_code()
    written, release = threading.Event(), threading.Event()

    def hold_before_commit(job_id: str) -> None:
        written.set()
        assert release.wait(10)

    monkeypatch.setattr(notifications, "notify_change", hold_before_commit)
    spec = {"trigger": "interval", "trigger_args": {"minutes": 7}}
    writer = threading.Thread(target=lambda: run_in_threads(1, lambda _: services.reschedule_job(
        job_id=JOB, trigger_spec=spec, actor="writer", source="api"
    )))
    writer.start()
    assert written.wait(10)
    reads: list[object] = []
    reader = threading.Thread(target=lambda: reads.extend(
        run_in_threads(1, lambda _: selectors.get_job(job_id=JOB))
    ))
    reader.start()
    time.sleep(0.3)  # the reader is now waiting for the writer's row lock
    assert not reads
    release.set()
    writer.join(10)
    reader.join(10)

    [job] = reads
    assert job.version == DjangoJob.objects.get(id=JOB).record.version
    assert job.trigger_args["minutes"] == 7


@pytest.mark.postgres_only
@pytest.mark.django_db(transaction=True)
def test_the_polling_change_marker_sees_a_lower_id_that_commits_later():
    """Ids are taken at insert: change A takes id n, change B takes n + 1 and commits
    first. `Max(id)` then never moves again when A commits; the marker must."""
    from django.db import connections, transaction

    inserted, release, done = threading.Event(), threading.Event(), threading.Event()

    def slow_change() -> None:
        try:
            with transaction.atomic():
                JobChange.objects.create(job_id="a", version=1, action="paused", actor="a",
                                         source="api")
                inserted.set()
                release.wait(10)
        finally:
            connections.close_all()
            done.set()

    threading.Thread(target=slow_change).start()
    assert inserted.wait(10)
    JobChange.objects.create(job_id="b", version=1, action="paused", actor="b", source="api")
    after_b = notifications.change_marker()
    release.set()
    assert done.wait(10)

    assert notifications.change_marker() != after_b
