"""Alerts: one per incident, through signals, Django's mail and signed webhooks on a real
HTTP server."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from django.core import mail
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django_apscheduler.models import DjangoJob, DjangoJobExecution

from scheduler_app import alerts, outcomes, services, signals
from scheduler_app.models import Alert, JobHealth, JobRecord
from scheduler_app.scheduler import Scheduler
from tests.conftest import record_execution, wait_for

JOB = "reports.weekly"
SECRET = "s3cret"


class Receiver:
    """A webhook receiver on a loopback port: keeps each POST with its signature check."""

    def __init__(self, *, status: int = 200, delay: float = 0.0, secret: str = SECRET) -> None:
        self.status, self.delay = status, delay
        self.requests: list[dict[str, Any]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers["Content-Length"]))
                expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
                receiver.requests.append({
                    "at": time.monotonic(),
                    "body": json.loads(body),
                    "signed": hmac.compare_digest(
                        self.headers.get("X-Scheduler-Signature", ""), expected
                    ),
                    "content_type": self.headers["Content-Type"],
                })
                time.sleep(receiver.delay)
                self.send_response(receiver.status)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.close()


def alerting_to(receiver: Receiver, **options: Any) -> dict[str, Any]:
    return {"ALERTS": {"webhooks": [{"url": receiver.url, "secret": SECRET}], **options}}


def fail(job_id: str = JOB, *, minutes_ago: float, status: str = DjangoJobExecution.ERROR,
         exception: str = "ConnectionError('partner')") -> DjangoJobExecution:
    execution = record_execution(job_id, minutes_ago=minutes_ago, status=status,
                                 exception=exception, lateness=0.5)
    outcomes.record_outcomes(execution_ids=[execution.id])
    return execution


def succeed(job_id: str = JOB, *, minutes_ago: float) -> DjangoJobExecution:
    execution = record_execution(job_id, minutes_ago=minutes_ago, lateness=0.25)
    outcomes.record_outcomes(execution_ids=[execution.id])
    return execution


@pytest.fixture
def scheduler_app_settings(settings: Any) -> Any:
    def apply(**values: Any) -> None:
        settings.SCHEDULER_APP = {**settings.SCHEDULER_APP, **values}

    return apply


def test_five_failures_in_a_row_raise_one_alert_and_a_success_one_recovery(
    synced, django_capture_on_commit_callbacks
):
    received: list[dict[str, Any]] = []

    def receive(sender: Any, **kwargs: Any) -> None:
        received.append(kwargs)

    signals.run_failed.connect(receive)
    signals.job_recovered.connect(receive)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            first = fail(minutes_ago=10)
            for minutes_ago in (9, 8, 7, 6):
                fail(minutes_ago=minutes_ago)
            succeed(minutes_ago=5)
            succeed(minutes_ago=4)
            again = fail(minutes_ago=3)
    finally:
        signals.run_failed.disconnect(receive)
        signals.job_recovered.disconnect(receive)

    log = list(Alert.objects.order_by("id").values_list("event", "job_id", "run_time"))
    assert log == [
        ("run_failed", JOB, first.run_time),
        ("job_recovered", JOB, log[1][2]),
        ("run_failed", JOB, again.run_time),
    ]
    assert [(r["event"], r["job"], r["run_time"]) for r in received] == log
    assert "ConnectionError('partner')" in received[0]["message"]
    assert received[0]["occurred_at"] <= timezone.now()
    health = JobHealth.objects.get(job_id=JOB)
    assert (health.runs_error, health.runs_success, health.incident) == (6, 2, ["run_failed"])


def test_missed_skipped_and_lost_runs_count_and_alert_by_kind(synced):
    fail(minutes_ago=9, status=DjangoJobExecution.MISSED, exception="")
    fail(minutes_ago=8, status=DjangoJobExecution.MAX_INSTANCES, exception="1 running")
    fail(minutes_ago=7, status="Lost", exception="its process died")

    health = JobHealth.objects.get(job_id=JOB)
    assert (health.runs_missed, health.runs_skipped, health.runs_lost) == (1, 1, 1)
    assert list(Alert.objects.order_by("id").values_list("event", flat=True)) == [
        "run_missed", "run_failed",
    ]
    assert "lost" in Alert.objects.get(event="run_failed").message


def test_a_muted_job_counts_its_failures_and_raises_nothing(
    synced, django_capture_on_commit_callbacks
):
    received = []

    def receive(sender: Any, **kwargs: Any) -> None:
        received.append(kwargs["job"])

    signals.run_failed.connect(receive)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            fail("probe.quiet", minutes_ago=1)
            fail(JOB, minutes_ago=1)
    finally:
        signals.run_failed.disconnect(receive)

    assert JobHealth.objects.get(job_id="probe.quiet").runs_error == 1
    assert list(Alert.objects.values_list("job_id", flat=True)) == [JOB] and received == [JOB]


def test_a_job_overdue_past_its_window_raises_once_and_a_paused_job_never(synced):
    now = timezone.now()
    outcomes.record_runs_due([(JOB, now - timedelta(seconds=3700))])
    outcomes.record_runs_due([("cache.warm", now - timedelta(seconds=3700))])
    services.pause_job(job_id="cache.warm", actor="t", source="cli")
    JobRecord.objects.filter(job_id="probe.record").update(alert_after=30)
    outcomes.record_runs_due([("probe.record", now - timedelta(seconds=20))])

    assert outcomes.raise_overdue_alerts(now) == 1
    assert outcomes.raise_overdue_alerts(now + timedelta(seconds=5)) == 0
    # The operator's alert_after (30 s) is this job's window.
    assert outcomes.raise_overdue_alerts(now + timedelta(seconds=11)) == 1
    overdue = list(Alert.objects.order_by("id").values_list("job_id", flat=True))
    assert overdue == [JOB, "probe.record"]
    # A success closes the window: no overdue alert, and a recovery.
    succeed(minutes_ago=0)
    assert JobHealth.objects.get(job_id=JOB).due_since is None
    assert Alert.objects.order_by("-id").values_list("event", flat=True)[0] == "job_recovered"


def test_an_open_overdue_window_follows_the_operators_new_alert_after(synced):
    now = timezone.now()
    outcomes.record_runs_due([(JOB, now - timedelta(seconds=100))])
    assert outcomes.raise_overdue_alerts(now) == 0  # within the default hour

    services.set_job_policy(job_id=JOB, policy={"alert_after": 60}, actor="t", source="api")

    assert outcomes.raise_overdue_alerts(now) == 1
    assert "(alert after 60s)" in Alert.objects.get(event="job_overdue").message


def test_claims_outcomes_and_overdue_sweeps_cost_the_same_statements_for_5_jobs_as_50(db):
    def statements(count: int, prefix: str) -> list[int]:
        jobs = [f"{prefix}{index}" for index in range(count)]
        DjangoJob.objects.bulk_create(DjangoJob(id=job_id, job_state=b"") for job_id in jobs)
        now = timezone.now()
        with CaptureQueriesContext(connection) as due:
            outcomes.record_runs_due([(job_id, now) for job_id in jobs])
        with CaptureQueriesContext(connection) as sweep:
            assert outcomes.raise_overdue_alerts(now + timedelta(seconds=10)) == 0
        executions = [record_execution(job_id, minutes_ago=0) for job_id in jobs]
        with CaptureQueriesContext(connection) as counted:
            outcomes.record_outcomes(execution_ids=[execution.id for execution in executions])
        healths = JobHealth.objects.filter(job_id__in=jobs)
        assert healths.filter(runs_success=1, due_since=None, overdue_at=None).count() == count
        return [len(due), len(sweep), len(counted)]

    assert statements(5, "few.") == statements(50, "many.")


@pytest.mark.django_db(transaction=True)
def test_alert_is_mailed_to_admins_through_django_mail(synced, settings, scheduler_app_settings):
    settings.ADMINS = [("Ops", "ops@example.com")]
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    scheduler_app_settings(ALERTS={"email": True})

    fail(minutes_ago=1)

    alert = Alert.objects.get()
    assert alerts.wait_for_deliveries(timeout=10)
    [message] = mail.outbox
    assert message.to == ["ops@example.com"]
    assert "Run failed" in message.subject and JOB in message.subject
    assert "ConnectionError('partner')" in message.body
    alert.refresh_from_db()
    assert alert.delivery == Alert.Delivery.DELIVERED
    assert alert.delivery_detail == "email to ADMINS: delivered"


@pytest.mark.django_db(transaction=True)
def test_webhook_gets_signed_json_once_per_incident(synced, receiver, scheduler_app_settings):
    scheduler_app_settings(**alerting_to(receiver))

    failed = fail(minutes_ago=3)
    fail(minutes_ago=2)
    succeed(minutes_ago=1)

    assert alerts.wait_for_deliveries(timeout=10)
    assert [r["body"]["event"] for r in receiver.requests] == ["run_failed", "job_recovered"]
    first = receiver.requests[0]
    assert first["signed"] and first["content_type"] == "application/json"
    assert set(first["body"]) >= {"event", "job", "run_time", "message", "occurred_at"}
    assert first["body"]["job"] == JOB
    assert first["body"]["run_time"] == failed.run_time.isoformat()
    assert set(Alert.objects.values_list("delivery", flat=True)) == {"delivered"}


@pytest.mark.django_db(transaction=True)
def test_a_jobs_alerts_reach_a_slow_receiver_one_after_the_other_in_order(
    synced, scheduler_app_settings
):
    slow = Receiver(delay=0.3)
    scheduler_app_settings(**alerting_to(slow))
    try:
        fail(minutes_ago=2)
        succeed(minutes_ago=1)
        assert alerts.wait_for_deliveries(timeout=10)
    finally:
        slow.close()

    failure, recovery = slow.requests
    assert (failure["body"]["event"], recovery["body"]["event"]) == ("run_failed",
                                                                     "job_recovered")
    # Sent only once the failure's delivery had ended, not beside it.
    assert recovery["at"] - failure["at"] >= 0.3


@pytest.mark.django_db(transaction=True)
def test_a_webhook_that_answers_500_is_retried_then_logged_as_failed(
    synced, scheduler_app_settings, monkeypatch, caplog
):
    broken = Receiver(status=500)
    monkeypatch.setattr(alerts, "FIRST_RETRY_DELAY", 0.05)
    scheduler_app_settings(**alerting_to(broken, retries=2))
    try:
        fail(minutes_ago=1)
        assert alerts.wait_for_deliveries(timeout=10)
    finally:
        broken.close()

    assert len(broken.requests) == 3 and all(r["signed"] for r in broken.requests)
    alert = Alert.objects.get()
    assert alert.delivery == Alert.Delivery.FAILED
    assert f"webhook {broken.url}: failed after 3 attempt(s): HTTPError" in alert.delivery_detail
    assert "not delivered" in caplog.text


@pytest.mark.django_db(transaction=True)
def test_a_hanging_webhook_times_out_without_holding_up_the_caller(
    synced, scheduler_app_settings, monkeypatch
):
    hanging = Receiver(delay=3)
    scheduler_app_settings(**alerting_to(hanging, timeout=0.5, retries=0))
    try:
        began = time.monotonic()
        fail(minutes_ago=1)
        recorded_in = time.monotonic() - began
        wait_for(lambda: Alert.objects.filter(delivery="failed").exists(), timeout=10)
    finally:
        hanging.close()

    assert recorded_in < hanging.delay  # the outcome was recorded before the receiver answered
    assert "timed out" in Alert.objects.get().delivery_detail


def test_an_auto_paused_job_raises_job_auto_paused_once_after_its_failure_alert(
    synced, django_capture_on_commit_callbacks
):
    # probe.fail pauses itself after 3 failed runs in a row (its pause_after_failures).
    with django_capture_on_commit_callbacks(execute=True):
        for minutes_ago in (3, 2, 1):
            execution = record_execution("probe.fail", minutes_ago=minutes_ago,
                                         status=DjangoJobExecution.ERROR, exception="boom")
            outcomes.record_outcomes(execution_ids=[execution.id])
            services.record_run_outcome(job_id="probe.fail", failed=True)

    assert list(Alert.objects.order_by("id").values_list("event", flat=True)) == [
        "run_failed", "job_auto_paused",
    ]
    assert "paused after 3 consecutive failed runs" in Alert.objects.get(
        event="job_auto_paused").message
    assert JobHealth.objects.get(job_id="probe.fail").incident == ["run_failed", "job_auto_paused"]


@pytest.mark.django_db(transaction=True)
def test_the_active_scheduler_wakes_up_when_the_next_job_goes_overdue(synced, settings):
    settings.SCHEDULER_APP = {**settings.SCHEDULER_APP, "MAX_SLEEP": 60}
    now = timezone.now()
    DjangoJob.objects.update(next_run_time=now + timedelta(days=1))  # nothing due meanwhile
    # Due 3,597 s ago with the default hour of grace: overdue in 3 s.
    outcomes.record_runs_due([(JOB, now - timedelta(seconds=3597))])
    scheduler = Scheduler()
    assert scheduler.leadership.refresh()
    try:
        wait = scheduler._process_jobs()
    finally:
        scheduler.leadership.release()

    assert 1 <= wait <= 3, "it would sleep past the deadline, and the alert be late"
