"""Alerts raised by a real scheduler process, delivered to a webhook on a real loopback
HTTP server: a failing job, a job that recovers, a job that never succeeds in time."""

from __future__ import annotations

import statistics
import time
from collections import Counter
from datetime import timedelta

import pytest
from django.utils import timezone
from django_apscheduler.models import DjangoJobExecution

from scheduler_app import selectors, services
from scheduler_app.models import Alert
from tests.conftest import edit_stored_job, wait_for
from tests.test_alerts import Receiver

pytestmark = pytest.mark.slow

EVERY_SECOND = {"trigger": "cron", "trigger_args": {"second": "*"}}
SECRET = "test-secret"  # the webhook secret of tests/settings.py


def change(job_id: str) -> dict[str, str]:
    return {"job_id": job_id, "actor": "t", "source": "cli"}


def runs(job_id: str, status: str) -> int:
    return DjangoJobExecution.objects.filter(job_id=job_id, status=status).count()


def events(receiver: Receiver) -> list[tuple[str, str]]:
    return [(r["body"]["job"], r["body"]["event"]) for r in receiver.requests]


def test_scheduler_alerts_once_per_incident_and_on_recovery_and_overdue(start_scheduler):
    receiver = Receiver(secret=SECRET)
    try:
        start_scheduler(TEST_ALERT_WEBHOOK_URL=receiver.url)
        edit_stored_job("probe.flaky", kwargs={"failures": 2})
        edit_stored_job("probe.stuck", kwargs={"seconds": 6})
        for job_id in ("probe.failing", "probe.flaky", "probe.stuck"):
            services.reschedule_job(trigger_spec=EVERY_SECOND, **change(job_id))

        wait_for(lambda: runs("probe.failing", DjangoJobExecution.ERROR) >= 5, timeout=30)
        wait_for(lambda: ("probe.stuck", "job_overdue") in events(receiver), timeout=30)
        wait_for(lambda: ("probe.flaky", "job_recovered") in events(receiver), timeout=30)
        for job_id in ("probe.failing", "probe.flaky", "probe.stuck"):
            services.pause_job(**change(job_id))
        time.sleep(1)  # deliveries of the last outcomes
    finally:
        receiver.close()

    received = Counter(events(receiver))
    # Five failures or more, one alert.
    assert received[("probe.failing", "run_failed")] == 1
    assert received[("probe.flaky", "run_failed")] == 1
    assert received[("probe.flaky", "job_recovered")] == 1
    assert received[("probe.stuck", "job_overdue")] >= 1
    # Each event at most once per incident: a repeat only after a recovery (the stuck
    # job recovers when its hanging run ends, and its next run may hang past the window).
    for job_id in ("probe.failing", "probe.flaky", "probe.stuck"):
        incident: list[str] = []
        for job, event in events(receiver):
            if job != job_id:
                continue
            assert event not in incident, f"{job_id}: {event} twice in one incident"
            incident = [] if event == "job_recovered" else [*incident, event]
    assert all(r["signed"] for r in receiver.requests)
    logged = Counter(Alert.objects.values_list("job_id", "event"))
    assert logged == received
    assert set(Alert.objects.values_list("delivery", flat=True)) == {"delivered"}


def lateness_since(job_id: str, since: object) -> list[float]:
    """Lateness of the job's successful runs due after `since`."""
    rows = selectors.execution_queryset(job_id=job_id, status="success").filter(
        run_time__gt=since
    )
    return [view.lateness for view in map(selectors.ExecutionView.from_row, rows)]


@pytest.mark.parametrize("receiver_kind", ["hangs", "answers 500"])
def test_a_bad_webhook_receiver_does_not_make_runs_late(start_scheduler, receiver_kind):
    bad = Receiver(delay=60, secret=SECRET) if receiver_kind == "hangs" else Receiver(
        status=500, secret=SECRET
    )
    try:
        start_scheduler(TEST_ALERT_WEBHOOK_URL=bad.url, TEST_ALERT_TIMEOUT="30",
                        TEST_ALERT_RETRIES="5")
        services.reschedule_job(trigger_spec=EVERY_SECOND, **change("probe.record"))
        wait_for(lambda: runs("probe.record", DjangoJobExecution.SUCCESS) >= 4, timeout=30)
        baseline = lateness_since("probe.record", since=DjangoJobExecution.objects.earliest(
            "run_time").run_time - timedelta(seconds=1))

        services.reschedule_job(trigger_spec=EVERY_SECOND, **change("probe.failing"))
        wait_for(lambda: bad.requests, timeout=30)
        receiver_called = timezone.now()
        wait_for(lambda: len(lateness_since("probe.record", receiver_called)) >= 4, timeout=30)
        during = lateness_since("probe.record", receiver_called)
        failures_meanwhile = DjangoJobExecution.objects.filter(
            job_id="probe.failing", status=DjangoJobExecution.ERROR, run_time__gt=receiver_called
        ).count()
        delivery = Alert.objects.get(job_id="probe.failing").delivery
        for job_id in ("probe.record", "probe.failing"):
            services.pause_job(**change(job_id))
    finally:
        bad.close()

    # The delivery was still going on (hanging, or retrying with back-off) ...
    assert delivery == Alert.Delivery.PENDING
    # ... while the failing job went on running every second, raising no more alerts,
    assert failures_meanwhile >= 2
    assert Alert.objects.filter(job_id="probe.failing").count() == 1
    # and the other job's runs started as promptly as before the receiver misbehaved
    # (a blocked loop or worker would make them seconds late).
    assert all(lateness is not None for lateness in during)
    assert statistics.median(during) < statistics.median(baseline) + 0.5
