"""Counting the jobs that cannot run without unpickling every job (promises 6 and 9).

The dashboard's health panel, the status endpoint, `scheduler status`, the admin's
broken filter and the scheduler's start-up summary ask `selectors` which jobs are
broken. They read each job's function reference from its record and ask the code
once per distinct reference; only states no record vouches for are read. Each test
checks the answer against the one reading every state gives.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from io import StringIO

import pytest
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.interval import IntervalTrigger
from django.core.management import call_command
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django_apscheduler.models import DjangoJob

from scheduler_app import selectors, services
from scheduler_app.jobstore import JobStore
from scheduler_app.models import JobRecord
from scheduler_app.state import dump_state, load_state
from tests import test_broken_jobs
from tests.conftest import copy_stored_job
from tests.testapp import jobs as testapp_jobs

pytestmark = pytest.mark.django_db

FUNCTION = "probe.customer_report"


class EveryOtherHour(BaseTrigger):
    """Another app's trigger class: when it leaves the code, its jobs cannot be unpickled."""

    def get_next_fire_time(self, previous_fire_time, now):
        start = previous_fire_time or now
        return start.replace(minute=0, second=0, microsecond=0) + timedelta(hours=2)


def every_state_read() -> list[str]:
    """The broken live jobs as reading every stored state finds them: the reference."""
    rows = selectors.live_jobs().order_by("id").values_list("id", "job_state")
    return [job_id for job_id, job_state in rows
            if selectors.broken_func_ref(job_state=job_state) is not None]


def broken_as_shown() -> tuple[int, list[str]]:
    return selectors.scheduler_status().jobs_broken, selectors.broken_job_ids()


def create(job_id: str, **changes: object) -> None:
    services.create_job(
        definition={"id": job_id, "function": FUNCTION, "trigger": "interval",
                    "trigger_args": {"hours": 1}, "kwargs": {"customer_id": 1}, **changes},
        actor="someone", source="api",
    )


def test_jobs_of_a_function_gone_from_code_are_broken_and_no_state_is_read(
    synced, monkeypatch
):
    for number in range(3):
        create(f"customer.{number}")
    create("customer.deleted")
    services.delete_job(job_id="customer.deleted", actor="someone", source="api")
    assert broken_as_shown() == (0, []) == (len(every_state_read()), every_state_read())

    monkeypatch.delattr(testapp_jobs, "customer_report")  # a deploy renamed it
    unpickled = []
    monkeypatch.setattr(selectors, "load_state",
                        lambda job_state: unpickled.append(1) or load_state(job_state))

    assert broken_as_shown() == (3, ["customer.0", "customer.1", "customer.2"])
    assert unpickled == []
    assert every_state_read() == ["customer.0", "customer.1", "customer.2"]


def test_an_unreadable_state_of_another_process_is_broken(synced):
    # Stored by another process: no record, so nothing vouches for its state.
    DjangoJob.objects.create(id="foreign.garbage", job_state=b"\x80\x05garbage")
    copy_stored_job("probe.record", "foreign.healthy")

    assert broken_as_shown() == (1, ["foreign.garbage"])
    assert every_state_read() == ["foreign.garbage"]


def test_a_state_overwritten_with_garbage_is_broken_once_the_scheduler_meets_it(synced):
    due = datetime.now(UTC) - timedelta(seconds=1)
    create("customer.1")
    DjangoJob.objects.filter(id="customer.1").update(
        job_state=b"\x80\x05not a pickle", next_run_time=due
    )

    JobStore().claim_due_jobs(datetime.now(UTC))

    assert broken_as_shown() == (1, ["customer.1"]) == (1, every_state_read())
    # The scheduler paused it, audited; the other jobs are as they were.
    assert DjangoJob.objects.get(id="customer.1").next_run_time is None
    assert JobRecord.objects.get(job_id="customer.1").paused_by == "scheduler"


def test_the_broken_jobs_are_those_reading_every_state_finds_whatever_the_store_holds(
    synced, monkeypatch
):
    create("customer.gone.1")
    create("customer.gone.2", trigger="cron", trigger_args={"hour": 5})
    create("customer.deleted")
    services.delete_job(job_id="customer.deleted", actor="someone", source="api")
    # A job whose record names no function (written before records kept it).
    create("customer.unvouched")
    JobRecord.objects.filter(job_id="customer.unvouched").update(func_ref=None)
    # Jobs of another app's trigger class, one of them with a record.
    custom = {**load_state(DjangoJob.objects.get(id="probe.record").job_state),
              "trigger": EveryOtherHour()}
    for job_id in ("custom.recorded", "custom.foreign"):
        DjangoJob.objects.create(id=job_id, job_state=dump_state({**custom, "id": job_id}))
    JobRecord.objects.create(job_id="custom.recorded", name="custom", trigger_type="custom",
                             func_ref=custom["func"])
    DjangoJob.objects.create(id="foreign.garbage", job_state=b"garbage")
    assert broken_as_shown() == (1, ["foreign.garbage"]) == (1, every_state_read())

    # A deploy removes the runtime jobs' function and the other app's trigger class.
    monkeypatch.delattr(testapp_jobs, "customer_report")
    monkeypatch.delattr(test_broken_jobs, "EveryOtherHour")

    expected = ["custom.foreign", "custom.recorded", "customer.gone.1", "customer.gone.2",
                "customer.unvouched", "foreign.garbage"]
    assert every_state_read() == expected
    assert broken_as_shown() == (len(expected), expected)


def test_a_job_given_another_function_is_judged_by_its_new_one(synced, monkeypatch, tmp_path):
    create("customer.1")
    line = {"id": "customer.1", "function": "probe.fail", "trigger": "interval",
            "trigger_args": {"hours": 1}, "kwargs": {"label": "now failing"}}
    path = tmp_path / "jobs.jsonl"
    path.write_text(json.dumps(line) + "\n")
    call_command("scheduler", "import", str(path), stdout=StringIO())

    monkeypatch.delattr(testapp_jobs, "fail")

    assert every_state_read() == ["customer.1", "probe.fail"]
    assert broken_as_shown() == (2, ["customer.1", "probe.fail"])


def test_a_declared_job_overwritten_with_garbage_is_broken_after_a_scheduler_start(synced):
    DjangoJob.objects.filter(id="probe.slow").update(job_state=b"\x80\x05not a pickle")

    report = services.sync_jobs_from_code()

    assert report.broken == ["probe.slow"]
    assert broken_as_shown() == (1, ["probe.slow"]) == (1, every_state_read())


def test_a_scheduler_start_reports_a_runtime_job_whose_function_is_gone(synced, monkeypatch):
    create("customer.1")
    monkeypatch.delattr(testapp_jobs, "customer_report")

    report = services.sync_jobs_from_code()

    assert report.broken == ["customer.1"]
    assert "customer.1" not in report.orphaned  # a runtime job is never code's orphan


def test_the_status_command_the_dashboard_and_the_broken_filter_agree(
    synced, monkeypatch, admin_client
):
    create("customer.1")
    create("customer.2")
    monkeypatch.delattr(testapp_jobs, "customer_report")

    output = StringIO()
    call_command("scheduler", "status", stdout=output)
    dashboard = admin_client.get("/admin/scheduler_app/job/dashboard/").content.decode()
    listed = admin_client.get("/admin/scheduler_app/job/?broken=yes").content.decode()

    assert re.search(r"^broken\s+2$", output.getvalue(), re.MULTILINE)
    assert "2 broken</a>" in dashboard
    assert "customer.1" in listed and "customer.2" in listed and "reports.weekly" not in listed


@pytest.mark.django_db(transaction=True)
def test_upgrading_copies_each_stored_function_reference_and_schedule_into_its_record():
    before = [("scheduler_app", "0013_skipped_runs_bigint_and_in_flight_index")]
    executor = MigrationExecutor(connection)
    executor.migrate(before)
    old = executor.loader.project_state(before).apps
    stored = {"func": "tests.testapp.jobs:record_run", "trigger": IntervalTrigger(hours=1)}
    for job_id, job_state in (("readable", dump_state(stored)), ("garbage", b"garbage")):
        old.get_model("django_apscheduler", "DjangoJob").objects.create(
            id=job_id, job_state=job_state)
        old.get_model("scheduler_app", "JobRecord").objects.create(job_id=job_id, name=job_id)

    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())

    records = dict(JobRecord.objects.values_list("job_id", "func_ref"))
    assert records == {"readable": "tests.testapp.jobs:record_run", "garbage": None}
    words = dict(JobRecord.objects.values_list("job_id", "schedule"))
    assert words == {"readable": "Every hour", "garbage": None}
    assert broken_as_shown() == (1, ["garbage"]) == (1, every_state_read())
