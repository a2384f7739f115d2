"""The admin's history pages: executions and the audit trail, read-only."""

from __future__ import annotations

import pytest
from django.urls import reverse
from django_apscheduler.models import DjangoJobExecution

from scheduler_app import services
from scheduler_app.models import Alert, JobChange
from scheduler_app.selectors import EXECUTION_STATUS_SLUGS, EXECUTION_STATUSES_BY_SLUG
from tests.conftest import record_execution, run_action, staff_client

pytestmark = pytest.mark.django_db

JOB = "reports.weekly"
EVERY_FIVE_MINUTES = {"trigger": "cron", "trigger_args": {"crontab": "*/5 * * * *"}}
EXECUTIONS = "/admin/scheduler_app/run/"
CHANGES = "/admin/scheduler_app/jobchange/"


def shown_ids(client, path: str) -> list[int]:
    response = client.get(path)
    assert response.status_code == 200
    return [row.id for row in response.context["cl"].result_list]


@pytest.fixture
def executions(synced) -> dict[str, DjangoJobExecution]:
    """One execution in each status the store knows, newest first; the oldest ten days ago."""
    runs = {
        "error": record_execution(JOB, minutes_ago=30, status=DjangoJobExecution.ERROR,
                                  exception="ValueError: bad row 12"),
        "success": record_execution(JOB, minutes_ago=60 * 24 * 10),
    }
    others = [slug for slug in EXECUTION_STATUS_SLUGS.values() if slug not in runs]
    for minutes_ago, slug in enumerate(others, start=1):
        status = EXECUTION_STATUSES_BY_SLUG[slug]
        runs[slug] = record_execution("cache.warm", minutes_ago=minutes_ago, status=status)
    return runs


def test_executions_list_newest_first_with_status_times_duration_and_exception(
    admin_client, executions
):
    response = admin_client.get(EXECUTIONS)

    newest_first = sorted(executions.values(), key=lambda run: run.run_time, reverse=True)
    assert [row.id for row in response.context["cl"].result_list] == [
        run.id for run in newest_first
    ]
    page = response.content.decode()
    for label in ("Succeeded", "Failed", "Missed", "Skipped: max instances", "Running"):
        assert f">{label}</span>" in page
    assert "ValueError: bad row 12" in page
    assert "1.50 s" in page
    assert f'href="{reverse("admin:scheduler_app_job_change", args=[JOB])}"' in page


@pytest.mark.parametrize("status", list(EXECUTION_STATUS_SLUGS.values()))
def test_executions_filter_by_every_status(admin_client, executions, status):
    assert f"?status={status}" in admin_client.get(EXECUTIONS).content.decode()
    assert shown_ids(admin_client, f"{EXECUTIONS}?status={status}") == [executions[status].id]


def test_executions_filter_by_job_and_date(admin_client, executions):
    assert shown_ids(admin_client, f"{EXECUTIONS}?job_id={JOB}") == [
        executions["error"].id, executions["success"].id,
    ]
    changelist = admin_client.get(EXECUTIONS).context["cl"]
    past_week = next(
        choice["query_string"]
        for spec in changelist.filter_specs
        for choice in spec.choices(changelist)
        if choice["display"] == "Past 7 days"
    )
    assert executions["success"].id not in shown_ids(admin_client, f"{EXECUTIONS}{past_week}")
    assert executions["error"].id in shown_ids(admin_client, f"{EXECUTIONS}{past_week}")


def test_execution_page_shows_the_traceback_and_cannot_be_changed(admin_client, executions):
    url = reverse(
        "admin:scheduler_app_run_change", args=[executions["error"].id]
    )

    page = admin_client.get(url)

    assert page.status_code == 200
    text = page.content.decode()
    assert '<pre class="scheduler-traceback">Traceback (most recent call last):' in text
    assert 'name="_save"' not in text
    assert admin_client.post(url, {"status": DjangoJobExecution.SUCCESS}).status_code == 403
    assert DjangoJobExecution.objects.get(id=executions["error"].id).status == "Error!"


def test_audit_trail_lists_who_when_which_door_and_what_changed(synced, admin_client):
    services.reschedule_job(job_id=JOB, trigger_spec=EVERY_FIVE_MINUTES, actor="bob", source="api")
    run_action(admin_client, "pause_jobs", JOB)

    response = admin_client.get(f"{CHANGES}?job_id={JOB}")

    paused, rescheduled, created = response.context["cl"].result_list
    assert (paused.action, paused.source) == ("paused", "admin")
    assert (rescheduled.actor, rescheduled.source) == ("bob", "api")
    assert created.action == "created"
    page = response.content.decode()
    assert "<b>enabled</b> <del>True</del> → <ins>False</ins>" in page
    assert "<b>minute</b> <del>30</del> → <ins>*/5</ins>" in page
    assert ">API</td>" in page and ">Admin</td>" in page


def test_audit_trail_filters_by_front_door_and_searches_by_actor(synced, admin_client):
    services.pause_job(job_id=JOB, actor="carol", source="cli")
    run_action(admin_client, "resume_jobs", JOB)

    by_admin = shown_ids(admin_client, f"{CHANGES}?source=admin")
    by_carol = shown_ids(admin_client, f"{CHANGES}?q=carol")

    assert [JobChange.objects.get(id=i).action for i in by_admin] == ["resumed"]
    assert [JobChange.objects.get(id=i).action for i in by_carol] == ["paused"]


def test_audit_record_page_is_read_only(synced, admin_client):
    change = JobChange.objects.filter(job_id=JOB).first()
    url = reverse("admin:scheduler_app_jobchange_change", args=[change.id])

    page = admin_client.get(url)

    assert page.status_code == 200
    assert "&quot;day_of_week&quot;: &quot;mon&quot;" in page.content.decode()
    assert admin_client.post(url, {"actor": "mallory"}).status_code == 403
    assert JobChange.objects.get(id=change.id).actor == change.actor


def test_history_is_visible_to_job_viewers_only(synced):
    viewer, outsider = staff_client("view_djangojob"), staff_client()
    assert viewer.get(EXECUTIONS).status_code == 200
    assert viewer.get(CHANGES).status_code == 200
    index = viewer.get("/admin/").content.decode()
    assert EXECUTIONS in index and CHANGES in index
    outsider_index = outsider.get("/admin/").content.decode()
    assert EXECUTIONS not in outsider_index and CHANGES not in outsider_index


ALERTS = "/admin/scheduler_app/alert/"


def test_executions_show_when_each_run_started_and_how_late(synced, admin_client):
    late = record_execution(JOB, minutes_ago=5, lateness=2.25)
    record_execution(JOB, minutes_ago=10)  # not started (or recorded before lateness was)

    listing = admin_client.get(EXECUTIONS).content.decode()
    detail = admin_client.get(f"{EXECUTIONS}{late.id}/change/").content.decode()

    assert "2.25 s" in listing
    assert "2.25 s" in detail and "Lateness" in detail


def test_alert_log_shows_each_alert_and_its_delivery_read_only(synced, admin_client):
    delivered = Alert.objects.create(event="run_failed", job_id=JOB, message="Run failed: boom",
                                     delivery=Alert.Delivery.DELIVERED,
                                     delivery_detail="email to ADMINS: delivered")
    failed = Alert.objects.create(
        event="job_overdue", job_id="cache.warm", message="No success for an hour",
        delivery=Alert.Delivery.FAILED,
        delivery_detail="webhook http://hooks.example/x: failed after 4 attempt(s): timed out",
    )

    assert shown_ids(admin_client, ALERTS) == [failed.id, delivered.id]
    assert shown_ids(admin_client, f"{ALERTS}?delivery=failed") == [failed.id]
    assert shown_ids(admin_client, f"{ALERTS}?event=run_failed") == [delivered.id]
    page = admin_client.get(ALERTS).content.decode()
    assert "Run failed: boom" in page and ">Failed</span>" in page and ">Delivered</span>" in page
    detail = admin_client.get(f"{ALERTS}{failed.id}/change/").content.decode()
    assert "failed after 4 attempt(s): timed out" in detail
    assert admin_client.post(f"{ALERTS}{failed.id}/delete/").status_code == 403
    assert staff_client("view_djangojob").get(ALERTS).status_code == 200
    assert staff_client().get(ALERTS).status_code == 403
