"""Runtime jobs under a real `runscheduler` process: they run with their kwargs, and a
deleted job never runs again while the scheduler goes on."""

from __future__ import annotations

import time

import pytest
from django.utils import timezone
from django_apscheduler.models import DjangoJobExecution

from scheduler_app import services
from tests.conftest import run_in_threads, wait_for
from tests.testapp.models import ProbeRun

pytestmark = pytest.mark.slow

EVERY_SECOND = {"trigger": "cron", "trigger_args": {"second": "*"}}


def create(job_id: str, **kwargs: object) -> None:
    services.create_job(
        definition={"id": job_id, "function": "probe.customer_report", **EVERY_SECOND,
                    "kwargs": kwargs},
        actor="operator", source="api",
    )


def test_a_runtime_job_runs_with_its_kwargs_and_picks_up_patched_ones(start_scheduler):
    scheduler = start_scheduler()
    create("customer.42", customer_id=42, label="first", pages=3)

    run = wait_for(lambda: ProbeRun.objects.filter(job_id="customer_report:42:3").first(),
                   timeout=10)
    assert run.label == "first"
    services.update_job(job_id="customer.42", changes={"kwargs": {"customer_id": 7}},
                        actor="operator", source="api")
    patched = wait_for(lambda: ProbeRun.objects.filter(job_id="customer_report:7:1").first(),
                       timeout=10)
    assert patched.label == "report"
    execution = DjangoJobExecution.objects.filter(job_id="customer.42").first()
    assert execution.status in (DjangoJobExecution.SUCCESS, DjangoJobExecution.SENT)
    assert scheduler.process.poll() is None


def test_deleting_due_jobs_never_runs_them_afterwards_and_never_fails_the_pass(start_scheduler):
    scheduler = start_scheduler()
    job_ids = [f"due.{number}" for number in range(20)]
    for number, job_id in enumerate(job_ids):
        create(job_id, customer_id=number)
    wait_for(lambda: DjangoJobExecution.objects.filter(job_id__in=job_ids).count() >= 40,
             timeout=20)

    # Deleted from many connections at once while the scheduler claims them every second.
    run_in_threads(len(job_ids), lambda index: services.delete_job(
        job_id=job_ids[index], actor="operator", source="api"))
    deleted_at = timezone.now()
    time.sleep(3)

    later = DjangoJobExecution.objects.filter(job_id__in=job_ids, run_time__gt=deleted_at)
    assert list(later.values_list("job_id", "run_time")) == []
    # A run claimed before its deletion committed may start after it, late on a busy
    # machine; but every run that started is one of those claimed runs.
    for number, job_id in enumerate(job_ids):
        started = ProbeRun.objects.filter(job_id=f"customer_report:{number}:1").count()
        claimed = DjangoJobExecution.objects.filter(job_id=job_id).count()
        assert started <= claimed, job_id
    assert scheduler.process.poll() is None
    assert "Traceback" not in scheduler.output, scheduler.output
    create("after.delete", customer_id=99)
    wait_for(lambda: ProbeRun.objects.filter(job_id="customer_report:99:1").exists(), timeout=10)
