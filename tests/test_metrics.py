"""GET /metrics: the store in Prometheus' text format, parsed with prometheus_client's own
parser and checked against the store; who may read it."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone
from django_apscheduler.models import DjangoJob, DjangoJobExecution
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from scheduler_app import metrics, outcomes, selectors, services
from scheduler_app.leadership import LEASE_NAME
from scheduler_app.models import SchedulerLease, SchedulerProcess
from tests.conftest import (
    break_function_reference,
    copy_stored_job,
    record_execution,
    staff_client,
)

pytestmark = pytest.mark.django_db

JOB = "reports.weekly"
TOKEN = "scrape-me-0123456789"
JOB_METRICS = {
    "scheduler_job_info", "scheduler_job_next_run_timestamp_seconds",
    "scheduler_job_last_run_timestamp_seconds", "scheduler_job_last_success_timestamp_seconds",
    "scheduler_job_paused", "scheduler_job_broken", "scheduler_job_running",
    "scheduler_job_runs", "scheduler_job_last_duration_seconds",
    "scheduler_job_last_lateness_seconds",
}


def scrape(client: Client, **headers: str) -> dict[str, list[Any]]:
    response = client.get("/metrics", **headers)
    assert response.status_code == 200, response.content
    assert response["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    return {
        family.name: family.samples
        for family in text_string_to_metric_families(response.content.decode())
    }


def value(families: dict[str, list[Any]], sample_name: str, **labels: str) -> float | None:
    family = sample_name.removesuffix("_total")
    for sample in families.get(family, []):
        if sample.name == sample_name and all(sample.labels.get(k) == v for k, v in labels.items()):
            return sample.value
    return None


def finish(job_id: str, *, minutes_ago: float, status: str = DjangoJobExecution.SUCCESS,
           lateness: float | None = 0.5, duration: float = 2.0) -> DjangoJobExecution:
    execution = record_execution(job_id, minutes_ago=minutes_ago, status=status,
                                 lateness=lateness, duration=duration)
    outcomes.record_outcomes(execution_ids=[execution.id])
    return execution


def test_every_job_is_described_as_the_store_has_it(synced, admin_client):
    services.pause_job(job_id="cache.warm", actor="t", source="cli")
    break_function_reference("monitoring.heartbeat")
    DjangoJobExecution.objects.create(job_id=JOB, status=DjangoJobExecution.SENT,
                                      run_time=timezone.now())

    families = scrape(admin_client)

    assert JOB_METRICS | {"scheduler_instances", "scheduler_lease_epoch",
                          "scheduler_heartbeat_age_seconds"} <= set(families)
    jobs = {view.id: view for view in selectors.job_views(selectors.job_queryset())}
    infos = {s.labels["job"]: s.labels for s in families["scheduler_job_info"]}
    assert set(infos) == set(jobs)
    weekly = jobs[JOB]
    assert infos[JOB] == {"job": JOB, "trigger": "cron", "schedule": weekly.description,
                          "function": weekly.func}
    assert value(families, "scheduler_job_next_run_timestamp_seconds", job=JOB) == (
        weekly.next_run_time.timestamp()
    )
    assert value(families, "scheduler_job_next_run_timestamp_seconds", job="cache.warm") is None
    assert value(families, "scheduler_job_paused", job="cache.warm") == 1
    assert value(families, "scheduler_job_paused", job=JOB) == 0
    assert value(families, "scheduler_job_broken", job="monitoring.heartbeat") == 1
    assert value(families, "scheduler_job_broken", job=JOB) == 0
    assert value(families, "scheduler_job_running", job=JOB) == 1
    assert value(families, "scheduler_job_running", job="cache.warm") == 0


def test_run_counters_and_last_run_gauges_follow_the_outcomes(synced, admin_client):
    finish(JOB, minutes_ago=30, status=DjangoJobExecution.ERROR)
    success = finish(JOB, minutes_ago=20, lateness=0.25, duration=3.5)
    finish(JOB, minutes_ago=10, status=DjangoJobExecution.MISSED, lateness=None)
    skipped = finish(JOB, minutes_ago=5, status=DjangoJobExecution.MAX_INSTANCES, lateness=None)
    finish("cache.warm", minutes_ago=1, status="Lost")

    families = scrape(admin_client)

    counts = {s.labels["status"]: s.value for s in families["scheduler_job_runs"]
              if s.labels["job"] == JOB and s.name == "scheduler_job_runs_total"}
    assert counts == {"success": 1, "error": 1, "missed": 1, "lost": 0, "skipped": 1}
    assert value(families, "scheduler_job_runs_total", job="cache.warm", status="lost") == 1
    assert value(families, "scheduler_job_last_success_timestamp_seconds", job=JOB) == (
        pytest.approx(float(success.finished), abs=0.01)
    )
    assert value(families, "scheduler_job_last_run_timestamp_seconds", job=JOB) == (
        skipped.run_time.timestamp()
    )
    # The newest run that started (missed and skipped runs never did): its lateness, and
    # the seconds from its start to its end.
    assert value(families, "scheduler_job_last_lateness_seconds", job=JOB) == 0.25
    assert value(families, "scheduler_job_last_duration_seconds", job=JOB) == (
        pytest.approx(3.25, abs=0.01)
    )


def test_counters_never_go_down_when_history_is_pruned(synced, admin_client):
    for minutes_ago in (3000, 2000, 1000):
        finish(JOB, minutes_ago=minutes_ago)
    before = value(scrape(admin_client), "scheduler_job_runs_total", job=JOB, status="success")

    assert services.prune_executions(older_than=timedelta(minutes=10)) == 3

    after = scrape(admin_client)
    assert before == after_count(after) == 3
    assert not DjangoJobExecution.objects.filter(job_id=JOB).exists()


def after_count(families: dict[str, list[Any]]) -> float | None:
    return value(families, "scheduler_job_runs_total", job=JOB, status="success")


def test_scheduler_processes_are_counted_by_role_with_lease_epoch_and_heartbeat_age(
    synced, admin_client
):
    empty = scrape(admin_client)
    assert value(empty, "scheduler_heartbeat_age_seconds") == float("inf")
    assert value(empty, "scheduler_instances", role="active") == 0

    now = timezone.now()
    SchedulerProcess.objects.create(instance="a:1", host="a", pid=1, role="active",
                                    notification_mode="poll",
                                    last_heartbeat=now - timedelta(seconds=2))
    SchedulerProcess.objects.create(instance="b:2", host="b", pid=2, notification_mode="poll",
                                    last_heartbeat=now)
    SchedulerLease.objects.create(name=LEASE_NAME, holder="a:1", epoch=7,
                                  expires_at=now + timedelta(seconds=10))

    families = scrape(admin_client)

    assert value(families, "scheduler_instances", role="active") == 1
    assert value(families, "scheduler_instances", role="standby") == 1
    assert value(families, "scheduler_lease_epoch") == 7
    assert 2 <= value(families, "scheduler_heartbeat_age_seconds") < 30


@pytest.mark.parametrize(
    ("authorization", "status"),
    [
        (f"Bearer {TOKEN}", 200),
        (f"bearer {TOKEN}", 200),
        ("Bearer wrong-token", 401),
        (f"Bearer {TOKEN}x", 401),
        (f"Basic {TOKEN}", 401),
        ("", 401),
    ],
)
def test_a_bearer_token_reads_the_metrics_and_nothing_else_does(
    synced, settings, authorization, status
):
    settings.SCHEDULER_APP = {**settings.SCHEDULER_APP, "METRICS_TOKEN": TOKEN}
    headers = {"HTTP_AUTHORIZATION": authorization} if authorization else {}

    response = Client().get("/metrics", **headers)

    assert response.status_code == status
    if status == 401:
        assert response["WWW-Authenticate"].startswith("Bearer")
        assert b"scheduler_job" not in response.content
    else:
        assert b'scheduler_job_info{' in response.content


def test_without_a_token_configured_no_bearer_gets_in(synced):
    response = Client().get("/metrics", HTTP_AUTHORIZATION="Bearer None")

    assert response.status_code == 401


def test_staff_sessions_need_the_permission_to_view_jobs(synced, django_user_model):
    assert staff_client("view_djangojob").get("/metrics").status_code == 200
    assert staff_client().get("/metrics").status_code == 401
    user = django_user_model.objects.create_user("not_staff")
    client = Client()
    client.force_login(user)
    assert client.get("/metrics").status_code == 401


def test_a_job_with_unreadable_state_is_scraped_as_broken_not_a_failure(synced, admin_client):
    # Overwritten behind the app's back, then met by the scheduler, which pauses it and
    # leaves its record vouching for nothing; and one stored by another process.
    DjangoJob.objects.filter(id=JOB).update(job_state=b"not a pickle")
    assert services.pause_unschedulable_job(job_id=JOB, reason="its state cannot be read")
    DjangoJob.objects.create(id="foreign.garbage", job_state=b"\x80garbage",
                             next_run_time=timezone.now())

    families = scrape(admin_client)

    assert value(families, "scheduler_job_broken", job=JOB) == 1
    assert value(families, "scheduler_job_broken", job="foreign.garbage") == 1
    assert value(families, "scheduler_job_info", job="cache.warm") == 1
    assert value(families, "scheduler_job_broken", job="cache.warm") == 0


def test_a_scrape_labels_the_jobs_their_records_vouch_for_without_reading_their_states(
    synced, admin_client, monkeypatch
):
    services.create_job(definition={
        "id": "customer.9", "function": "probe.customer_report", "trigger": "cron",
        "trigger_args": {"hour": 7, "minute": 30}, "kwargs": {"customer_id": 9},
    }, actor="t", source="api")
    # A job another process stored, with no record: only its state says what it is.
    copy_stored_job(JOB, "foreign.copy")
    states_read = []
    real_stored_state = selectors._stored_state
    monkeypatch.setattr(selectors, "_stored_state", lambda job_id, job_state: (
        states_read.append(job_id) or real_stored_state(job_id, job_state)
    ))
    selectors._descriptions.clear()  # nothing memoized from an earlier scrape

    families = scrape(admin_client)

    assert states_read == ["foreign.copy"]
    views = {view.id: view for view in selectors.job_views(selectors.job_queryset())}
    for job_id, view in views.items():  # the labels the job's own state gives
        info = next(s.labels for s in families["scheduler_job_info"] if s.labels["job"] == job_id)
        assert (info["trigger"], info["schedule"], info["function"]) == (
            view.trigger or "unknown", view.description, view.func
        ), job_id
    assert views["customer.9"].description == "At 07:30 (UTC)"


def test_the_plain_text_writer_matches_prometheus_clients_own_byte_for_byte(synced):
    # Ids that need escaping in label values, and jobs with and without every gauge.
    for job_id in ('odd "quoted" job', "back\\slash", "new\nline", "ünïcode.job"):
        copy_stored_job(JOB, job_id)
    finish(JOB, minutes_ago=3, status=DjangoJobExecution.ERROR)
    finish("cache.warm", minutes_ago=2)
    SchedulerProcess.objects.create(instance="a:1", host="a", pid=1, notification_mode="poll")

    ours = metrics.text_exposition()
    reference = generate_latest(metrics._registry)

    def without_heartbeat_age(text: bytes) -> bytes:  # it grows between the two reads
        lines = text.split(b"\n")
        assert sum(line.startswith(b"scheduler_heartbeat_age_seconds ") for line in lines) == 1
        return b"\n".join(line for line in lines
                          if not line.startswith(b"scheduler_heartbeat_age_seconds "))

    assert without_heartbeat_age(ours) == without_heartbeat_age(reference)
    assert b'job="odd \\"quoted\\" job"' in ours and b'job="new\\nline"' in ours


def test_a_changed_schedule_shows_in_the_next_scrape(synced, admin_client):
    before = scrape(admin_client)
    services.reschedule_job(job_id=JOB, actor="t", source="cli",
                            trigger_spec={"trigger": "interval", "trigger_args": {"hours": 2}})

    after = scrape(admin_client)

    def info(families: dict[str, list[Any]]) -> dict[str, str]:
        return next(s.labels for s in families["scheduler_job_info"] if s.labels["job"] == JOB)

    assert info(before)["trigger"] == "cron"
    assert (info(after)["trigger"], info(after)["schedule"]) == ("interval", "Every 2 hours")


def test_openmetrics_scrapers_get_openmetrics(synced, admin_client):
    response = admin_client.get(
        "/metrics", HTTP_ACCEPT="application/openmetrics-text; version=1.0.0"
    )

    assert response["Content-Type"].startswith("application/openmetrics-text")
    assert response.content.rstrip().endswith(b"# EOF")
    assert b"scheduler_job_runs_total{" in response.content


def test_a_deleted_runtime_job_leaves_the_metrics_with_its_history_kept(synced, admin_client):
    definition = {"id": "customer.7", "function": "probe.customer_report",
                  "trigger": "interval", "trigger_args": {"hours": 1},
                  "kwargs": {"customer_id": 7}}
    services.create_job(definition=definition, actor="t", source="api")
    finish("customer.7", minutes_ago=1)
    assert value(scrape(admin_client), "scheduler_job_info", job="customer.7") == 1

    services.delete_job(job_id="customer.7", actor="t", source="api")

    families = scrape(admin_client)
    assert "customer.7" not in {sample.labels["job"] for sample in families["scheduler_job_info"]}
    assert value(families, "scheduler_job_info", job=JOB) == 1
    assert DjangoJobExecution.objects.filter(job_id="customer.7").exists()
