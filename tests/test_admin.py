"""The Django admin for jobs: list, filters, actions, the schedule form, permissions, cost."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

import pytest
from django.contrib import admin
from django.contrib.admin.utils import quote
from django.contrib.auth.models import Permission, User
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from django_apscheduler.models import DjangoJob, DjangoJobExecution

from scheduler_app import selectors, services
from scheduler_app.admin import ExecutionAdmin, JobAdmin
from scheduler_app.models import Job, JobChange, Run, RunRequest
from tests.conftest import (
    break_function_reference,
    copy_job_with_record,
    count_queries,
    last_sunday,
    messages_of,
    record_execution,
    run_action,
    snapshot,
    staff_client,
)

pytestmark = pytest.mark.django_db

JOB = "reports.weekly"
CHANGELIST = "/admin/scheduler_app/job/"
EVERY_FIVE_MINUTES = {"trigger": "cron", "trigger_args": {"crontab": "*/5 * * * *"}}


# Helpers ---------------------------------------------------------------------------------


@pytest.fixture
def editor(synced) -> Client:
    """A staff user who may view and change jobs, and nothing else."""
    return staff_client("view_djangojob", "change_djangojob")


@pytest.fixture
def viewer(synced) -> Client:
    return staff_client("view_djangojob")


@pytest.fixture
def outsider(synced) -> Client:
    """Staff, but without any permission on jobs."""
    return staff_client()


def change_url(job_id: str = JOB) -> str:
    return reverse("admin:scheduler_app_job_change", args=[quote(job_id)])


def preview_url(job_id: str = JOB) -> str:
    return reverse("admin:scheduler_app_job_preview", args=[quote(job_id)])


def operation_url(operation: str, job_id: str = JOB) -> str:
    return reverse(
        "admin:scheduler_app_job_operation", args=[quote(job_id), operation]
    )


def schedule_data(version: int, trigger: str, **fields: Any) -> dict[str, Any]:
    return {"version": version, "trigger": trigger, **fields}


# Registration ----------------------------------------------------------------------------


def test_our_admins_replace_django_apschedulers_own():
    assert isinstance(admin.site._registry[Job], JobAdmin)
    assert isinstance(admin.site._registry[Run], ExecutionAdmin)
    assert not admin.site.is_registered(DjangoJob)
    assert not admin.site.is_registered(DjangoJobExecution)


def test_admin_index_speaks_the_schedulers_language(synced, admin_client):
    page = admin_client.get("/admin/").content.decode()

    section = page[page.index('class="app-scheduler_app'):]
    section = section[: section.index("</table>")]
    assert ">Scheduler<" in section
    names = re.findall(r'<a href="/admin/scheduler_app/\w+/">(\w+)</a>', section)
    assert names == ["Alerts", "Changes", "Jobs", "Runs"]
    assert "Django APScheduler" not in page and "Django jobs" not in page
    jobs_page = admin_client.get(CHANGELIST).content.decode()
    assert "<title>Jobs |" in jobs_page and "django job" not in jobs_page.lower()


def test_nobody_deletes_a_job_declared_in_code_through_the_admin(synced, admin_client):
    response = admin_client.post(change_url().replace("/change/", "/delete/"), {"post": "yes"})

    assert response.status_code == 403
    assert DjangoJob.objects.filter(id=JOB).exists()
    assert selectors.get_job(job_id=JOB).enabled


# The job list ----------------------------------------------------------------------------


def test_job_list_shows_schedule_in_words_next_run_and_last_run(editor):
    services.pause_job(job_id="cache.warm", actor="alice", source="api")
    record_execution("monitoring.heartbeat", minutes_ago=3, status=DjangoJobExecution.ERROR,
                     exception="TimeoutError")

    response = editor.get(CHANGELIST)

    assert response.status_code == 200
    rows = {row.id: row for row in response.context["cl"].result_list}
    page = response.content.decode()
    assert "At 08:30, only on Monday (UTC)" in page
    assert "Every minute" in page
    assert rows["cache.warm"].view.next_run_time is None and "paused" in page
    assert re.search(r"in \d+\xa0(minutes|hours|days)", page)  # "in 3 days, 14 hours"
    assert "Failed" in page and "3\xa0minutes ago" in page
    assert "Weekly report" in page


def test_job_list_flags_broken_orphaned_and_custom_schedules(editor):
    break_function_reference("cache.warm")
    copy_job_with_record(JOB, "old.removed_job")
    services.reschedule_job(job_id=JOB, trigger_spec=EVERY_FIVE_MINUTES, actor="a", source="api")

    page = editor.get(CHANGELIST).content.decode()

    assert page.count("scheduler-flag-broken") == 1
    assert page.count("scheduler-flag-orphaned") == 1
    assert page.count("scheduler-flag-custom") == 1


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("enabled=no", {"cache.warm"}),
        ("trigger=interval&enabled=yes", {"integrations.flaky_sync", "monitoring.heartbeat"}),
        ("last_status=error", {"monitoring.heartbeat"}),
        ("last_status=success", {"sessions.clear_expired"}),
        ("broken=yes", {"reports.weekly"}),
        ("q=weekly", {"reports.weekly"}),
        ("q=Heartbeat", {"monitoring.heartbeat"}),
        # Every word, in the id or the name; a quoted phrase is one word.
        ("q=report weekly", {"reports.weekly"}),
        ("q=warm+%22cache warm%22", set()),
        ("q=%22warm cache%22", {"cache.warm"}),
        ("q=monitoring heartbeat", {"monitoring.heartbeat"}),
    ],
)
def test_job_list_filters_and_search(editor, query, expected):
    services.pause_job(job_id="cache.warm", actor="alice", source="api")
    record_execution("monitoring.heartbeat", minutes_ago=9)
    record_execution("monitoring.heartbeat", minutes_ago=1, status=DjangoJobExecution.ERROR)
    record_execution("sessions.clear_expired", minutes_ago=5)
    break_function_reference(JOB)

    response = editor.get(f"{CHANGELIST}?{query}")

    shown = {row.id for row in response.context["cl"].result_list}
    assert {job_id for job_id in shown if not job_id.startswith("probe.")} == expected


def test_job_list_counts_the_jobs_behind_each_filter_choice(editor):
    services.pause_job(job_id="cache.warm", actor="alice", source="api")
    break_function_reference(JOB)
    record_execution(JOB, minutes_ago=1, status=DjangoJobExecution.ERROR)

    page = editor.get(f"{CHANGELIST}?_facets=True").content.decode()

    for choice in ("Paused (1)", "Broken (1)", "Failed (1)", "date (0)"):
        assert choice in page


@pytest.mark.parametrize("filters", ["", "&broken=no&last_status=success&enabled=yes"])
def test_job_list_page_costs_the_same_queries_for_5_or_45_jobs(editor, filters):
    for number in range(45):
        copy_job_with_record(JOB, f"copies.job_{number:03}")
        record_execution(f"copies.job_{number:03}", minutes_ago=number + 1)

    five = count_queries(editor, f"{CHANGELIST}?q=copies.job_00{filters}")
    everything = count_queries(editor, f"{CHANGELIST}?q=copies{filters}")

    assert five == everything


# Actions ---------------------------------------------------------------------------------


def test_pause_action_pauses_each_job_through_the_service_and_says_how_many(editor):
    messages = run_action(editor, "pause_jobs", JOB, "cache.warm")

    assert messages == ["2 jobs were paused: cache.warm, reports.weekly."]
    assert not selectors.get_job(job_id=JOB).enabled
    assert not selectors.get_job(job_id="cache.warm").enabled
    change = JobChange.objects.filter(job_id=JOB).first()
    assert (change.action, change.actor, change.source) == (
        "paused", "staff_view_djangojob_change_djangojob", "admin"
    )


def test_pausing_paused_jobs_again_reports_them_unchanged(editor):
    services.pause_job(job_id=JOB, actor="alice", source="api")
    before = snapshot(JOB)

    messages = run_action(editor, "pause_jobs", JOB, "cache.warm")

    assert messages == [
        "1 job was paused: cache.warm.",
        "1 job was already paused: reports.weekly.",
    ]
    assert snapshot(JOB) == before


def test_resume_action_puts_jobs_back_on_schedule(editor):
    services.pause_job(job_id=JOB, actor="alice", source="api")

    messages = run_action(editor, "resume_jobs", JOB)

    assert messages == ["1 job was resumed: reports.weekly."]
    job = selectors.get_job(job_id=JOB)
    assert job.enabled and job.next_run_time.weekday() == 0


def test_action_failures_say_which_job_failed_why_and_change_it_not(editor):
    services.pause_job(job_id="cache.warm", actor="alice", source="api")
    services.pause_job(job_id=JOB, actor="alice", source="api")
    break_function_reference("cache.warm")
    broken_before = snapshot("cache.warm")

    messages = run_action(editor, "resume_jobs", "cache.warm", JOB)

    assert messages[0] == "1 job was resumed: reports.weekly."
    assert messages[1].startswith("1 job could not be changed (resume): Job 'cache.warm' is broken")
    assert "project.jobs:function_renamed_away" in messages[1]
    assert snapshot("cache.warm") == broken_before


def test_run_now_action_asks_the_scheduler_and_runs_nothing_in_the_request(editor):
    messages = run_action(editor, "run_jobs_now", "probe.record", JOB)

    assert messages == [
        "2 jobs were sent to the scheduler process to run now: probe.record, reports.weekly.",
        "No scheduler process is running: the runs start when one does.",
    ]
    requests = RunRequest.objects.order_by("job_id")
    assert [(r.job_id, r.status, r.source) for r in requests] == [
        ("probe.record", "pending", "admin"), (JOB, "pending", "admin"),
    ]
    assert not DjangoJobExecution.objects.exists()
    assert selectors.get_job(job_id=JOB).enabled  # the schedule did not move


def test_reset_action_restores_the_code_default_and_reports_jobs_already_there(editor):
    services.reschedule_job(job_id=JOB, trigger_spec=EVERY_FIVE_MINUTES, actor="a", source="api")
    copy_job_with_record(JOB, "old.removed_job")

    messages = run_action(editor, "reset_jobs", JOB, "cache.warm", "old.removed_job")

    assert messages[:2] == [
        "1 job was reset to its code default: reports.weekly.",
        "1 job already had its code default: cache.warm.",
    ]
    assert "old.removed_job' is no longer declared in code" in messages[2]
    assert selectors.get_job(job_id=JOB).is_default_schedule


def test_view_only_user_gets_no_actions_and_cannot_run_one(viewer):
    page = viewer.get(CHANGELIST)
    assert page.status_code == 200
    assert "pause_jobs" not in page.content.decode()
    before = snapshot(JOB)

    response = viewer.post(CHANGELIST, {"action": "pause_jobs", "_selected_action": [JOB]})

    assert response.status_code in (200, 302)
    assert snapshot(JOB) == before


# The change page -------------------------------------------------------------------------


def test_change_page_shows_the_schedule_form_and_read_only_panels(editor):
    record_execution(JOB, minutes_ago=2, status=DjangoJobExecution.ERROR, exception="Boom")

    response = editor.get(change_url())

    assert response.status_code == 200
    form = response.context["form"]
    job = selectors.get_job(job_id=JOB)
    assert form.initial["version"] == job.version
    assert (form.initial["trigger"], form.initial["day_of_week"], form.initial["hour"]) == (
        "cron", "mon", "8"
    )
    page = response.content.decode()
    assert "project.jobs:weekly_report" in page  # function
    assert "Build the weekly activity report" in page  # its docstring
    assert "&quot;kwargs&quot;: {}" in page  # arguments
    assert "At 08:30, only on Monday (UTC)" in page  # code default
    assert "Boom" in page  # recent executions, with their status in words as elsewhere
    assert 'scheduler-status-error">Failed</span>' in page
    assert "Created" in page and "Code (scheduler start)" in page  # recent changes
    assert "job_state" not in page  # the raw state is never a field
    assert 'name="_save"' in page


def test_saving_the_form_reschedules_through_the_service(editor):
    version = selectors.get_job(job_id=JOB).version

    response = editor.post(
        change_url(), schedule_data(version, "interval", minutes=10, timezone="Europe/Paris")
    )

    assert response.status_code == 302 and response.url == CHANGELIST
    job = selectors.get_job(job_id=JOB)
    assert (job.trigger, job.trigger_args["minutes"], job.version) == ("interval", 10, version + 1)
    assert job.trigger_args["timezone"] == "Europe/Paris"
    change = JobChange.objects.filter(job_id=JOB).first()
    assert (change.action, change.source) == ("rescheduled", "admin")
    assert messages_of(response) == ["Job rescheduled. reports.weekly: Every 10 minutes."]


def test_save_and_continue_returns_to_the_job_page(editor):
    version = selectors.get_job(job_id=JOB).version

    response = editor.post(
        change_url(), {**schedule_data(version, "crontab", crontab="0 9 * * 1-5"), "_continue": 1}
    )

    assert response.status_code == 302 and response.url == change_url()
    job = selectors.get_job(job_id=JOB)
    assert (job.trigger_args["hour"], job.trigger_args["day_of_week"]) == ("9", "mon-fri")


def in_the_past() -> str:
    return (timezone.now() - timedelta(days=1)).replace(microsecond=0).isoformat()


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"trigger": "cron", "minute": "99"}, "minute", "higher than the maximum value (59)"),
        ({"trigger": "cron", "day_of_week": "funday"}, "day_of_week", "Invalid weekday name"),
        ({"trigger": "crontab", "crontab": "* * *"}, "crontab", "a crontab has 5 fields"),
        ({"trigger": "crontab", "crontab": "0 0 1 * 1"}, "crontab", "both day-of-month"),
        ({"trigger": "interval", "minutes": "-5"}, "minutes", "0 or more"),
        ({"trigger": "interval", "minutes": "ten"}, "minutes", "Enter a number."),
        ({"trigger": "interval"}, "__all__", "the interval must be longer than 0"),
        ({"trigger": "interval", "minutes": "5", "jitter": "-1"}, "jitter", "from 0 to"),
        ({"trigger": "date"}, "run_date", "is required"),
        ({"trigger": "date", "run_date": "tomorrow"}, "run_date", "not a valid ISO 8601"),
        ({"trigger": "date", "run_date": in_the_past()}, "run_date", "is in the past"),
        ({"trigger": "interval", "minutes": "5", "timezone": "Mars/Olympus"}, "timezone",
         "unknown time zone"),
        ({"trigger": "hourly"}, "trigger", "Select a valid choice"),
        ({"trigger": "interval", "seconds": "0.001"}, "seconds", "the shortest allowed is 1 s"),
    ],
)
def test_invalid_schedule_shows_the_error_on_its_field_and_changes_nothing(
    editor, fields, field, message
):
    before = snapshot(JOB)

    response = editor.post(change_url(), {"version": before[2], **fields})

    assert response.status_code == 200
    errors = response.context["form"].errors
    assert message in " ".join(errors.get(field, [])), errors
    assert "Please correct the errors below. Nothing was saved." in response.content.decode()
    assert snapshot(JOB) == before


def test_stale_form_changes_nothing_and_shows_who_changed_what(editor):
    loaded = editor.get(change_url()).context["form"].initial["version"]
    services.reschedule_job(job_id=JOB, trigger_spec=EVERY_FIVE_MINUTES, actor="bob", source="api")
    before = snapshot(JOB)

    response = editor.post(change_url(), schedule_data(loaded, "interval", minutes=10))

    assert response.status_code == 200
    assert snapshot(JOB) == before
    page = response.content.decode()
    assert "Someone else changed this job after you opened this page" in page
    (change, diff), = response.context["conflict"]
    assert (change.actor, change.source, change.action) == ("bob", "api", "rescheduled")
    assert "<b>minute</b> <del>30</del> → <ins>*/5</ins>" in diff
    assert "bob" in page and "<ins>*/5</ins>" in page

    # The user's edits are kept against the current version: saving again is deliberate.
    kept = response.context["form"]
    assert kept.data["minutes"] == "10" and kept.data["version"] == before[2]
    assert editor.post(change_url(), kept.data).status_code == 302
    assert selectors.get_job(job_id=JOB).trigger_args["minutes"] == 10


def test_rescheduling_a_broken_job_is_refused_with_the_reason(editor):
    break_function_reference(JOB)
    before = snapshot(JOB)

    response = editor.post(change_url(), schedule_data(before[2], "interval", minutes=10))

    assert response.status_code == 200
    assert "cannot be imported" in " ".join(response.context["form"].non_field_errors())
    assert snapshot(JOB) == before


def test_unknown_job_page_redirects_with_a_message(editor):
    response = editor.get(change_url("no.such_job"))

    assert response.status_code == 302
    assert "doesn’t exist" in messages_of(response)[0]


@pytest.mark.parametrize(
    ("operation", "check"),
    [
        ("pause", lambda job, requests: not job.enabled),
        ("run", lambda job, requests: requests == 1 and job.enabled),
    ],
)
def test_change_page_buttons_apply_the_operation_at_the_loaded_version(editor, operation, check):
    version = selectors.get_job(job_id=JOB).version

    response = editor.post(operation_url(operation), {"version": version})

    assert response.status_code == 302 and response.url == change_url()
    assert check(selectors.get_job(job_id=JOB), RunRequest.objects.filter(job_id=JOB).count())


def test_change_page_button_with_a_stale_version_changes_nothing(editor):
    version = selectors.get_job(job_id=JOB).version
    services.reschedule_job(job_id=JOB, trigger_spec=EVERY_FIVE_MINUTES, actor="bob", source="api")
    before = snapshot(JOB)

    response = editor.post(operation_url("pause"), {"version": version})

    assert snapshot(JOB) == before
    assert "someone else changed it" in messages_of(response)[0]


@pytest.mark.parametrize("version", ["", "²", "1.0", "-1", "x"])
def test_change_page_button_without_a_whole_version_is_refused_and_changes_nothing(
    editor, version
):
    before = snapshot(JOB)
    data = {"version": version} if version else {}

    response = editor.post(operation_url("pause"), data)

    assert response.status_code == 400
    assert b"version: a whole number is required." in response.content
    assert snapshot(JOB) == before


def test_a_nul_byte_in_an_admin_job_id_is_not_found(editor):
    version = selectors.get_job(job_id=JOB).version

    assert editor.post(operation_url("pause", "a\x00b"), {"version": version}).status_code == 404
    assert editor.get(change_url("a\x00b")).status_code == 404
    assert editor.get(preview_url("a\x00b")).status_code == 404


def test_change_page_buttons_only_take_posts(editor):
    assert editor.get(operation_url("pause")).status_code == 405
    assert editor.post(operation_url("explode"), {}).status_code == 404


# The live preview ------------------------------------------------------------------------


def test_preview_lists_the_next_five_runs_in_the_jobs_time_zone(editor):
    response = editor.get(
        preview_url(), {"trigger": "cron", "hour": "9", "minute": "0", "timezone": "Asia/Tokyo"}
    )

    assert response.status_code == 200
    data = response.json()
    assert data["valid"] and data["timezone"] == "Asia/Tokyo"
    assert data["description"] == "At 09:00 (Asia/Tokyo)"
    times = [datetime.fromisoformat(item["at"]) for item in data["times"]]
    assert len(times) == 5
    assert all((t.hour, t.utcoffset()) == (9, timedelta(hours=9)) for t in times)
    assert data["times"][0]["display"].endswith("09:00:00 JST")


def test_preview_of_an_invalid_schedule_names_the_field(editor):
    response = editor.get(preview_url(), {"trigger": "interval", "minutes": "-1"})

    assert response.status_code == 400
    assert response.json() == {
        "valid": False,
        "errors": {"minutes": ["must be a finite number, 0 or more, not -1."]},
    }


def test_preview_warns_about_a_run_in_the_hour_skipped_by_daylight_saving(editor):
    year = timezone.now().year + 1
    spring = last_sunday(year, 3)
    cron = {"trigger": "cron", "year": year, "month": 3, "day": spring.day, "hour": 2,
            "minute": 30, "timezone": "Europe/Paris"}
    once = {"trigger": "date", "run_date": f"{spring}T02:30:00", "timezone": "Europe/Paris"}

    for spec in (cron, once):
        (run,) = editor.get(preview_url(), spec).json()["times"]
        assert run["display"] == f"{spring:%a %Y-%m-%d} 03:30:00 CEST"
        assert run["warning"] == (
            f"Its wall time does not exist on {spring} (clocks go forward that night): "
            "it runs at 03:30 CEST instead."
        )


def test_preview_warns_about_both_runs_in_the_hour_repeated_by_daylight_saving(editor):
    year = timezone.now().year + 1
    autumn = last_sunday(year, 10)
    cron = {"trigger": "cron", "year": year, "month": 10, "day": autumn.day, "hour": 2,
            "minute": 30, "timezone": "Europe/Paris"}

    first, second = editor.get(preview_url(), cron).json()["times"]

    assert first["display"].endswith(" 02:30:00 CEST")
    assert second["display"].endswith(" 02:30:00 CET")
    assert "02:30 happens twice" in first["warning"] and "the first 02:30" in first["warning"]
    assert "the second 02:30, UTC+0100" in second["warning"]


def test_preview_of_regular_runs_has_no_warnings(editor):
    year = timezone.now().year + 1
    spring = last_sunday(year, 3)
    runs_at_three = {"trigger": "cron", "year": year, "month": 3, "day": spring.day, "hour": 3,
                     "minute": 30, "timezone": "Europe/Paris"}
    hourly = {"trigger": "interval", "hours": 1, "timezone": "Europe/Paris",
              "start_date": f"{spring}T00:30:00"}

    for spec in (runs_at_three, hourly):
        times = editor.get(preview_url(), spec).json()["times"]
        assert times and all(run["warning"] is None for run in times)


def test_preview_of_an_unknown_job_is_404(editor):
    assert editor.get(preview_url("no.such_job"), {"trigger": "cron"}).status_code == 404


# Permissions -----------------------------------------------------------------------------


def test_view_only_user_sees_the_job_page_but_cannot_change_it(viewer):
    page = viewer.get(change_url())
    assert page.status_code == 200
    text = page.content.decode()
    assert 'name="_save"' not in text and "scheduler-operation" not in text
    assert all(field.disabled for field in page.context["form"].fields.values())
    assert viewer.get(preview_url(), {"trigger": "interval", "minutes": 5}).status_code == 200
    before = snapshot(JOB)

    saving = viewer.post(change_url(), schedule_data(before[2], "interval", minutes=10))
    assert saving.status_code == 403
    assert viewer.post(operation_url("pause"), {"version": before[2]}).status_code == 403
    assert snapshot(JOB) == before


@pytest.mark.parametrize(
    "path",
    [
        CHANGELIST,
        f"{CHANGELIST}{JOB}/change/",
        f"{CHANGELIST}dashboard/",
        "/admin/scheduler_app/run/",
        "/admin/scheduler_app/jobchange/",
    ],
)
def test_staff_without_job_permissions_gets_403(outsider, path):
    assert outsider.get(path).status_code == 403


def test_staff_without_job_permissions_cannot_preview_or_operate(outsider):
    before = snapshot(JOB)

    assert outsider.get(preview_url(), {"trigger": "interval", "minutes": 5}).status_code == 403
    assert outsider.post(operation_url("pause"), {}).status_code == 403
    saving = outsider.post(change_url(), schedule_data(before[2], "interval", minutes=1))
    assert saving.status_code == 403
    assert snapshot(JOB) == before


def test_a_user_who_is_not_staff_is_sent_to_the_login_page(synced):
    user = User.objects.create_user("member")
    user.user_permissions.add(*Permission.objects.filter(codename="change_djangojob"))
    client = Client()
    client.force_login(user)

    response = client.get(CHANGELIST)

    assert response.status_code == 302 and response.url.startswith("/admin/login/")
