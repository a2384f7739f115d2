"""Runs claimed ahead of their time (`scheduler_app.launcher`), under a real `runscheduler`
whose claims run a whole second ahead: each run still starts at its time, never before,
and a change an operator commits between the claim and that time is honoured."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from django_apscheduler.models import DjangoJobExecution

from scheduler_app import selectors, services
from scheduler_app.models import ExecutionRecord, JobHealth
from tests.conftest import wait_for
from tests.testapp.models import ProbeRun

pytestmark = pytest.mark.slow

OPERATOR = {"actor": "operator", "source": "api"}


def hourly_from(moment) -> dict:
    """Due at `moment`, then every hour: a pause takes its next run time away."""
    return {"trigger": "cron", "trigger_args": {
        "minute": moment.minute, "second": moment.second, "timezone": "UTC"}}


def test_changes_between_a_runs_claim_and_its_time_are_honoured(start_scheduler):
    services.sync_jobs_from_code()
    start_scheduler(TEST_CLAIM_AHEAD="1")
    due = (timezone.now() + timedelta(seconds=3)).replace(microsecond=0)
    # Four jobs due at the same moment, claimed together a second before it.
    for job_id in ("probe.scheduled", "probe.record", "probe.flaky"):
        services.reschedule_job(job_id=job_id, trigger_spec=hourly_from(due), **OPERATOR)
    services.create_job(definition={
        "id": "customer.5", "function": "probe.customer_report", **hourly_from(due),
        "kwargs": {"customer_id": 5, "label": "as created"},
    }, **OPERATOR)
    claimed = DjangoJobExecution.objects.filter(run_time=due)
    wait_for(lambda: claimed.count() == 4, timeout=10)
    assert timezone.now() < due - timedelta(seconds=0.3), "claimed too late to change"

    services.pause_job(job_id="probe.record", reason="not today", **OPERATOR)
    later = due + timedelta(minutes=30)
    services.reschedule_job(job_id="probe.flaky", trigger_spec=hourly_from(later), **OPERATOR)
    services.update_job(job_id="customer.5", changes={
        "kwargs": {"customer_id": 5, "label": "changed after the claim"}}, **OPERATOR)

    untouched = wait_for(lambda: ProbeRun.objects.filter(job_id="probe.scheduled").first(),
                         timeout=10)
    changed = wait_for(lambda: ProbeRun.objects.filter(job_id="customer_report:5:1").first(),
                       timeout=10)
    # On time, never before it, though claimed a second ahead.
    assert untouched.label == due.isoformat()
    assert untouched.started_at >= due and changed.started_at >= due
    record = ExecutionRecord.objects.get(execution__job_id="probe.scheduled",
                                         execution__run_time=due)
    assert record.claimed_at < due - timedelta(seconds=0.3)
    # Arguments changed after the claim: the run takes the job as it is stored now.
    assert changed.label == "changed after the claim"
    # Paused or rescheduled after the claim: as if never claimed.
    wait_for(lambda: not claimed.filter(job_id__in=["probe.record", "probe.flaky"]).exists(),
             timeout=5)
    assert not ProbeRun.objects.filter(job_id__in=["probe.record", "probe.flaky"]).exists()
    assert not JobHealth.objects.filter(job_id="probe.record", due_since=due).exists()
    assert not selectors.get_job(job_id="probe.record").enabled
    assert selectors.get_job(job_id="probe.flaky").next_run_time == later
    wait_for(lambda: set(claimed.values_list("job_id", "status")) == {
        ("probe.scheduled", DjangoJobExecution.SUCCESS),
        ("customer.5", DjangoJobExecution.SUCCESS),
    }, timeout=5)
