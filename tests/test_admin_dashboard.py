"""The scheduler dashboard in the admin: its read-only queries and the page drawn from them."""

from __future__ import annotations

import re
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.utils import timezone
from django_apscheduler.models import DjangoJob, DjangoJobExecution

from scheduler_app import dashboard, services
from scheduler_app.leadership import LEASE_NAME
from scheduler_app.models import SchedulerLease, SchedulerProcess
from tests.conftest import copy_job_with_record, last_sunday, record_execution, staff_client

pytestmark = pytest.mark.django_db

JOB = "reports.weekly"
DASHBOARD = "/admin/scheduler_app/job/dashboard/"
PARIS = ZoneInfo("Europe/Paris")


def runs_by_job(timeline: dashboard.Timeline) -> dict[str, int]:
    return {row.job_id: row.runs for row in timeline.rows}


def test_timeline_counts_every_run_the_stored_triggers_fire_in_24_hours(synced):
    timeline = dashboard.timeline()

    runs = runs_by_job(timeline)
    assert runs["cache.warm"] == 2880  # every 30 s
    assert runs["monitoring.heartbeat"] == 1440
    assert runs["integrations.flaky_sync"] == 288
    assert runs["sessions.clear_expired"] == 1
    assert "probe.record" not in runs  # due in 2099: nothing to draw
    assert not any(row.truncated for row in timeline.rows)
    assert timeline.total_runs == sum(runs.values())


def test_timeline_follows_the_store_and_leaves_out_paused_jobs(synced):
    services.pause_job(job_id="cache.warm", actor="alice", source="api")
    services.reschedule_job(
        job_id=JOB, trigger_spec={"trigger": "interval", "trigger_args": {"hours": 2}},
        actor="alice", source="api",
    )

    runs = runs_by_job(dashboard.timeline())

    assert "cache.warm" not in runs
    assert runs[JOB] == 12


def test_timeline_draws_close_runs_as_one_band_and_spaced_runs_as_ticks(synced):
    rows = {row.job_id: row for row in dashboard.timeline().rows}

    (band,) = rows["monitoring.heartbeat"].spans
    assert band.runs == 1440 and band.start < 0.1 and band.end > 99.9
    flaky = rows["integrations.flaky_sync"].spans
    assert len(flaky) == 288 and all(span.runs == 1 and span.width == 0 for span in flaky)
    starts = [span.start for span in flaky]
    assert starts == sorted(starts) and 0 <= starts[0] and starts[-1] <= 100


def test_timeline_positions_are_elapsed_time_across_a_daylight_saving_change(synced, settings):
    settings.SCHEDULER_APP = {**settings.SCHEDULER_APP, "TIMEZONE": "Europe/Paris"}
    autumn = last_sunday(timezone.now().year + 1, 10)
    services.reschedule_job(
        job_id="probe.record",
        trigger_spec={"trigger": "cron", "trigger_args": {
            "hour": 2, "minute": 30, "timezone": "Europe/Paris"}},
        actor="alice", source="api",
    )

    timeline = dashboard.timeline(now=datetime.combine(autumn, time(0), tzinfo=PARIS))

    (row,) = [row for row in timeline.rows if row.job_id == "probe.record"]
    # 02:30 happens twice that night: 2.5 and 3.5 hours after midnight.
    assert [span.start for span in row.spans] == [10.42, 14.58]
    # Midnight to 03:00 is four hours that night; each label appears once.
    assert timeline.marks[0] == (16.67, "03:00")
    labels = [label for _, label in timeline.marks]
    assert labels == ["03:00", "06:00", "09:00", "12:00", "15:00", "18:00", "21:00"]


def test_recent_failures_are_failed_missed_and_skipped_runs_newest_first(synced):
    record_execution(JOB, minutes_ago=1)
    error = record_execution(JOB, minutes_ago=30, status=DjangoJobExecution.ERROR, exception="E")
    missed = record_execution("cache.warm", minutes_ago=20, status=DjangoJobExecution.MISSED)
    skipped = record_execution(
        "cache.warm", minutes_ago=10, status=DjangoJobExecution.MAX_INSTANCES
    )

    failures = dashboard.recent_failures()

    assert [(f.id, f.status) for f in failures] == [
        (skipped.id, "max_instances"), (missed.id, "missed"), (error.id, "error"),
    ]


def test_job_trends_rate_each_jobs_last_runs_and_scale_their_durations(synced):
    for minutes_ago in range(25, 0, -1):
        failed = minutes_ago % 4 == 0
        record_execution(
            JOB,
            minutes_ago=minutes_ago,
            status=DjangoJobExecution.ERROR if failed else DjangoJobExecution.SUCCESS,
            duration=float(30 - minutes_ago),
        )

    trends = {trend.job_id: trend for trend in dashboard.job_trends()}

    weekly = trends[JOB]
    assert len(weekly.executions) == dashboard.TREND_WINDOW  # the newest 20 of 25
    assert weekly.executions[0].duration == 10.0 and weekly.executions[-1].duration == 29.0
    assert (weekly.succeeded, weekly.finished, weekly.success_percent) == (15, 20, 75)
    assert weekly.longest == 29.0
    first, last = weekly.points[0], weekly.points[-1]
    assert (first.x, last.x) == (0.0, dashboard.SPARKLINE_WIDTH)
    assert last.y == 2.0 and first.y > last.y  # the longest run is drawn at the top
    assert "monitoring.heartbeat" not in trends  # it never ran


def test_job_trends_show_lateness_p50_and_p95_of_the_runs_that_started(synced, admin_client):
    # Twenty runs started 0.1 s ... 2.0 s late, and one that never started.
    for index in range(20):
        record_execution(JOB, minutes_ago=30 - index, lateness=(index + 1) / 10)
    record_execution(JOB, minutes_ago=1, status=DjangoJobExecution.MISSED)

    trends = {trend.job_id: trend for trend in dashboard.job_trends()}

    weekly = trends[JOB]
    # The newest 20 runs: 19 started (0.2 ... 2.0 s late), one missed.
    # Nearest rank: the 10th and the 19th of the 19.
    assert (weekly.lateness_p50, weekly.lateness_p95) == (1.1, 2.0)
    assert "cache.warm" not in trends  # it never ran: no row, no lateness
    assert "1.10 s / 2.00 s" in admin_client.get(DASHBOARD).content.decode()


def test_job_trends_cost_two_queries_whatever_the_number_of_jobs(
    synced, django_assert_num_queries
):
    for job_id in ("cache.warm", JOB, "monitoring.heartbeat"):
        record_execution(job_id, minutes_ago=5)

    with django_assert_num_queries(2):
        dashboard.job_trends()


def test_dashboard_page_shows_health_timeline_failures_and_trends(synced, admin_client):
    SchedulerProcess.objects.create(
        instance="worker-1:4242", host="worker-1", pid=4242, notification_mode="notify"
    )
    SchedulerLease.objects.create(
        name=LEASE_NAME, holder="worker-1:4242", epoch=1,
        expires_at=timezone.now() + timedelta(seconds=30),
    )
    record_execution(JOB, minutes_ago=3, status=DjangoJobExecution.ERROR,
                     exception="TimeoutError: partner API")
    for minutes_ago in (4, 5, 6):
        record_execution(JOB, minutes_ago=minutes_ago)

    response = admin_client.get(DASHBOARD)

    assert response.status_code == 200
    page = response.content.decode()
    assert "<strong>Running</strong>" in page
    assert "pid 4242 on worker-1" in page
    assert re.search(r"\d+ s ago", page)
    assert "Runs due in the next 24 hours" in page and "Warm cache" in page
    assert "TimeoutError: partner API" in page
    assert "75% <span" in page  # 3 of the weekly report's 4 runs succeeded
    assert "<polyline" in page and "scheduler-point-error" in page


def test_dashboard_loads_nothing_from_other_sites(synced, admin_client):
    page = admin_client.get(DASHBOARD).content.decode()

    assert not re.search(r'(src|href)="(https?:)?//', page)


def test_dashboard_says_not_running_when_the_heartbeat_is_stale(synced, admin_client):
    stale = timezone.now() - timedelta(minutes=10)
    SchedulerProcess.objects.create(host="worker-1", pid=4242, notification_mode="poll",
                                    started_at=stale, last_heartbeat=stale)

    page = admin_client.get(DASHBOARD).content.decode()

    assert "<strong>Not running</strong>" in page
    assert "600 s ago" in page


def test_admin_index_links_to_the_dashboard_for_job_viewers_only(synced):
    assert DASHBOARD in staff_client("view_djangojob").get("/admin/").content.decode()
    assert DASHBOARD not in staff_client().get("/admin/").content.decode()


def test_dashboard_reads_a_bounded_number_of_jobs_however_many_are_stored(
    synced, admin_client, monkeypatch
):
    """With 100,000 jobs the page must not unpickle them all: rows stop at DASHBOARD_ROWS,
    and the page says how many more jobs are due."""
    for number in range(5):
        copy_job_with_record("monitoring.heartbeat", f"copy.{number}", name=f"Copy {number}")
        record_execution(f"copy.{number}", minutes_ago=number + 1)
    record_execution(JOB, minutes_ago=30)
    unpickled = []
    load_state = dashboard.load_state
    monkeypatch.setattr(dashboard, "load_state", lambda state: unpickled.append(state) or
                        load_state(state))
    monkeypatch.setattr(dashboard, "DASHBOARD_ROWS", 3)
    due = DjangoJob.objects.filter(next_run_time__lt=timezone.now() + timedelta(hours=24))
    enabled = due.count()

    timeline = dashboard.timeline()
    trends = dashboard.job_trends()

    assert len(timeline.rows) == 3 and len(unpickled) == 3
    assert timeline.more_jobs == enabled - 3
    assert sorted(trend.job_id for trend in trends) == ["copy.0", "copy.1", "copy.2"]
    page = admin_client.get(DASHBOARD).content.decode()
    assert f"{enabled - 3} more jobs due" in page
