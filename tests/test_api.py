"""The REST API: its contract, its errors, If-Match and ETag, who may call it, and its cost."""

from __future__ import annotations

import base64
import json
from datetime import datetime, timedelta
from io import StringIO
from typing import Any

import pytest
from django.contrib.auth.models import Permission, User
from django.core.management import call_command
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django_apscheduler.models import DjangoJob, DjangoJobExecution

from scheduler_app import services
from scheduler_app.api.parsers import MAX_BODY_BYTES
from scheduler_app.leadership import LEASE_NAME
from scheduler_app.models import (
    JobChange,
    JobRecord,
    RunRequest,
    SchedulerLease,
    SchedulerProcess,
)
from scheduler_app.state import dump_state, load_state
from tests.conftest import (
    break_function_reference,
    copy_job_with_record,
    count_queries,
    record_execution,
    run_in_threads,
    snapshot,
)

pytestmark = pytest.mark.django_db

API = "/api/scheduler"
JOB = "reports.weekly"
JOB_URL = f"{API}/jobs/{JOB}"
EVERY_FIVE_MINUTES = {"trigger": "cron", "trigger_args": {"crontab": "*/5 * * * *"}}
JOB_FIELDS = {
    "id", "name", "func", "trigger", "trigger_args", "description", "enabled", "state",
    "next_run_time",
    "upcoming", "version", "is_default_schedule", "broken", "max_instances",
    "misfire_grace_time", "coalesce", "pause_after_failures", "consecutive_failures",
    "paused_reason", "paused_by", "paused_at", "paused_until", "origin", "function", "kwargs",
    "last_execution",
}
LAST_EXECUTION_FIELDS = {
    "id", "status", "run_time", "started", "lateness", "finished", "duration", "exception",
    "skipped_runs",
}
PASSWORD = "correct horse battery staple"


# Helpers -------------------------------------------------------------------------------


def make_user(kind: str) -> User | None:
    """A user of one kind of the permission matrix; None for anonymous."""
    if kind == "anonymous":
        return None
    user = User.objects.create_user(
        kind,
        password=PASSWORD,
        is_staff=kind not in ("non_staff", "superuser"),
        # A superuser passes even without is_staff, as with Django's own checks.
        is_superuser=kind == "superuser",
    )
    codenames = {
        "non_staff": ["view_djangojob", "change_djangojob"],
        "staff_view": ["view_djangojob"],
        "staff_change": ["change_djangojob"],
    }.get(kind, [])
    user.user_permissions.add(
        *Permission.objects.filter(content_type__app_label="django_apscheduler",
                                   codename__in=codenames)
    )
    return user


def client_for(user: User | None, **options: Any) -> Client:
    client = Client(**options)
    if user is not None:
        client.force_login(user)
    return client


def basic(username: str, password: str) -> str:
    """An HTTP Basic Authorization header."""
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


@pytest.fixture
def admin_client(synced) -> Client:
    """A session-authenticated client of a staff user who may change jobs."""
    return client_for(make_user("staff_change"))


def send(client: Client, method: str, path: str, body: Any = None, **headers: str) -> Any:
    """A JSON request; `body` may be raw bytes or text to send as is."""
    if body is not None and not isinstance(body, str | bytes):
        body = json.dumps(body)
    return client.generic(
        method, path, body or "", content_type="application/json", headers=headers
    )


def version_of(job_id: str = JOB) -> int:
    return JobRecord.objects.get(job_id=job_id).version


def parse_time(value: str) -> datetime:
    moment = datetime.fromisoformat(value)
    assert moment.utcoffset() is not None, f"{value} has no offset"
    return moment


def add_copies_of_job(count: int) -> None:
    """`count` more jobs in the store, each a copy of the weekly report with one run."""
    for number in range(count):
        job_id = f"copies.job_{number:03}"
        copy_job_with_record(JOB, job_id, name=f"Copy {number}")
        record_execution(job_id, minutes_ago=number + 1)


# Contract: one test per row of the table ---------------------------------------


def test_job_list_is_paginated_and_each_job_has_the_contract_fields(admin_client):
    response = admin_client.get(f"{API}/jobs/")

    assert response.status_code == 200
    page = response.json()
    assert set(page) == {"count", "next", "previous", "results"}
    assert page["count"] == DjangoJob.objects.count() == len(page["results"])
    assert [job["id"] for job in page["results"]] == sorted(job["id"] for job in page["results"])
    assert all(JOB_FIELDS <= set(job) for job in page["results"])


def test_job_list_pages_follow_next_links(admin_client):
    first = admin_client.get(f"{API}/jobs/?page_size=3").json()
    second = admin_client.get(first["next"]).json()

    assert len(first["results"]) == 3 and first["previous"] is None
    assert first["count"] == second["count"] == DjangoJob.objects.count()
    assert not {j["id"] for j in first["results"]} & {j["id"] for j in second["results"]}


def test_job_list_filters_by_enabled_trigger_and_search(admin_client):
    send(admin_client, "POST", f"{JOB_URL}/pause/")
    send(admin_client, "POST", f"{API}/jobs/probe.slow/pause/")

    def ids(query: str) -> list[str]:
        response = admin_client.get(f"{API}/jobs/?{query}")
        assert response.status_code == 200, response.content
        return [job["id"] for job in response.json()["results"]]

    assert ids("enabled=false") == ["probe.slow", JOB]
    assert len(ids("enabled=true")) == DjangoJob.objects.count() - 2
    assert not {"probe.slow", JOB} & set(ids("enabled=true"))
    assert ids("trigger=interval") == ["cache.warm", "integrations.flaky_sync",
                                       "monitoring.heartbeat"]
    assert ids("search=WEEKLY") == [JOB]  # by id, any case
    assert ids("search=partner") == ["integrations.flaky_sync"]  # by name
    assert ids("trigger=cron&enabled=false&search=probe") == ["probe.slow"]


def test_job_list_orders_by_next_run_time_with_paused_jobs_last(admin_client):
    send(admin_client, "POST", f"{API}/jobs/cache.warm/pause/")

    for ordering in ("next_run_time", "-next_run_time"):
        jobs = admin_client.get(f"{API}/jobs/?ordering={ordering}").json()["results"]
        times = [parse_time(job["next_run_time"]) for job in jobs[:-1]]
        assert times == sorted(times, reverse=ordering.startswith("-"))
        assert jobs[-1]["id"] == "cache.warm" and jobs[-1]["next_run_time"] is None
    ids = [job["id"] for job in admin_client.get(f"{API}/jobs/?ordering=-id").json()["results"]]
    assert ids == sorted(ids, reverse=True)


def test_job_detail_reads_the_store_and_sends_its_version_as_etag(admin_client):
    response = admin_client.get(f"{JOB_URL}/")

    job = response.json()
    assert response.status_code == 200
    assert response.headers["ETag"] == f'"{version_of()}"' == f'"{job["version"]}"'
    assert JOB_FIELDS <= set(job)
    assert job["func"] == "project.jobs:weekly_report"
    assert job["trigger"] == "cron"
    assert job["trigger_args"]["day_of_week"] == "mon"
    assert (job["trigger_args"]["hour"], job["trigger_args"]["minute"]) == ("8", "30")
    assert job["description"] == "At 08:30, only on Monday (UTC)"
    assert job["enabled"] and job["is_default_schedule"] and not job["broken"]
    assert (job["max_instances"], job["misfire_grace_time"], job["coalesce"]) == (1, 3600, True)
    upcoming = [parse_time(moment) for moment in job["upcoming"]]
    assert len(upcoming) == 5 and upcoming[0] == parse_time(job["next_run_time"])
    assert all(moment.weekday() == 0 and moment.hour == 8 for moment in upcoming)
    assert job["last_execution"] is None


def test_job_detail_shows_the_newest_execution(admin_client):
    record_execution(JOB, minutes_ago=60)
    newest = record_execution(JOB, minutes_ago=5, status=DjangoJobExecution.ERROR,
                              exception="TimeoutError('partner')", lateness=0.75)

    last = admin_client.get(f"{JOB_URL}/").json()["last_execution"]
    executions = admin_client.get(f"{JOB_URL}/executions/").json()["results"]

    assert set(last) == LAST_EXECUTION_FIELDS
    assert last["id"] == newest.id
    assert last["status"] == "error"
    assert last["exception"] == "TimeoutError('partner')"
    assert last["duration"] == 1.5
    took = parse_time(last["finished"]) - parse_time(last["run_time"])
    assert abs(took - timedelta(seconds=1.5)) < timedelta(seconds=0.01)  # stored to 1/100 s
    # When it really started, and how late that was, in the job and in its history.
    assert last["lateness"] == 0.75
    assert parse_time(last["started"]) - parse_time(last["run_time"]) == timedelta(seconds=0.75)
    assert [(run["id"], run["lateness"]) for run in executions] == [
        (newest.id, 0.75), (newest.id - 1, None),
    ]


@pytest.mark.parametrize(
    ("spec", "expected_description", "expected_args"),
    [
        (EVERY_FIVE_MINUTES, "Every 5 minutes (UTC)", {"minute": "*/5"}),
        ({"trigger": "cron", "trigger_args": {"day_of_week": "fri", "hour": 17}},
         "At 17:00, only on Friday (UTC)", {"day_of_week": "fri", "hour": "17"}),
        ({"trigger": "interval", "trigger_args": {"hours": 2}}, "Every 2 hours", {"hours": 2}),
    ],
)
def test_schedule_put_replaces_the_trigger_and_answers_with_the_new_state(
    admin_client, spec, expected_description, expected_args
):
    before = version_of()

    response = send(admin_client, "PUT", f"{JOB_URL}/schedule/", spec)

    job = response.json()
    assert response.status_code == 200, job
    assert job["trigger"] == spec["trigger"]
    assert expected_args.items() <= job["trigger_args"].items()
    assert job["description"] == expected_description
    assert job["version"] == before + 1
    assert response.headers["ETag"] == f'"{before + 1}"'
    assert response.headers["X-Scheduler-Message"] == "Job rescheduled."
    assert not job["is_default_schedule"] and job["enabled"]
    assert admin_client.get(f"{JOB_URL}/").json() == job
    change = JobChange.objects.filter(job_id=JOB).first()
    assert (change.action, change.actor, change.source) == ("rescheduled", "staff_change", "api")


def test_schedule_put_accepts_a_date_trigger(admin_client):
    run_at = (timezone.now() + timedelta(days=2)).replace(microsecond=0)

    response = send(admin_client, "PUT", f"{JOB_URL}/schedule/",
                    {"trigger": "date", "trigger_args": {"run_date": run_at.isoformat()}})

    job = response.json()
    assert response.status_code == 200, job
    assert parse_time(job["next_run_time"]) == run_at
    assert [parse_time(moment) for moment in job["upcoming"]] == [run_at]


def test_schedule_of_a_paused_job_keeps_it_paused(admin_client):
    send(admin_client, "POST", f"{JOB_URL}/pause/")

    job = send(admin_client, "PUT", f"{JOB_URL}/schedule/", EVERY_FIVE_MINUTES).json()

    assert job["trigger_args"]["minute"] == "*/5"
    assert not job["enabled"] and job["next_run_time"] is None and job["upcoming"] == []


def test_pause_stops_the_job_and_pausing_again_changes_nothing(admin_client):
    first = send(admin_client, "POST", f"{JOB_URL}/pause/")
    state = snapshot(JOB)
    again = send(admin_client, "POST", f"{JOB_URL}/pause/")

    assert first.status_code == again.status_code == 200
    job = first.json()
    assert not job["enabled"] and job["next_run_time"] is None and job["upcoming"] == []
    assert first.headers["X-Scheduler-Message"] == "Job paused."
    assert again.headers["X-Scheduler-Message"] == "Job is already paused."
    assert again.json() == job
    assert again.headers["ETag"] == first.headers["ETag"] == f'"{job["version"]}"'
    assert snapshot(JOB) == state


def test_resume_puts_the_job_back_on_its_schedule_and_resuming_again_changes_nothing(
    admin_client,
):
    send(admin_client, "POST", f"{JOB_URL}/pause/")

    first = send(admin_client, "POST", f"{JOB_URL}/resume/")
    state = snapshot(JOB)
    again = send(admin_client, "POST", f"{JOB_URL}/resume/")

    assert first.status_code == again.status_code == 200
    job = first.json()
    assert job["enabled"] and parse_time(job["next_run_time"]) > timezone.now()
    assert len(job["upcoming"]) == 5
    assert first.headers["X-Scheduler-Message"] == "Job resumed."
    assert again.headers["X-Scheduler-Message"] == "Job is already running on its schedule."
    assert again.json() == job and snapshot(JOB) == state


def test_trigger_queues_one_run_request_and_leaves_the_schedule_alone(admin_client):
    send(admin_client, "POST", f"{JOB_URL}/pause/")
    job_before = admin_client.get(f"{JOB_URL}/").json()

    response = send(admin_client, "POST", f"{JOB_URL}/trigger/")

    run = response.json()
    assert response.status_code == 202, run
    assert {"id", "status", "requested_at"} <= set(run)
    assert (run["status"], run["job"], run["requested_by"]) == ("pending", JOB, "staff_change")
    assert abs(parse_time(run["requested_at"]) - timezone.now()) < timedelta(seconds=10)
    assert RunRequest.objects.get(id=run["id"]).job_id == JOB
    assert response.headers["ETag"] == f'"{job_before["version"]}"'
    assert admin_client.get(f"{JOB_URL}/").json() == job_before


def test_reset_restores_the_code_default_and_keeps_a_paused_job_paused(admin_client):
    send(admin_client, "PUT", f"{JOB_URL}/schedule/", EVERY_FIVE_MINUTES)
    send(admin_client, "POST", f"{JOB_URL}/pause/")

    response = send(admin_client, "POST", f"{JOB_URL}/reset/")

    job = response.json()
    assert response.status_code == 200, job
    assert job["is_default_schedule"]
    assert job["description"] == "At 08:30, only on Monday (UTC)"
    assert not job["enabled"]
    assert response.headers["X-Scheduler-Message"] == "Job reset to its code default."
    assert response.headers["ETag"] == f'"{job["version"]}"'


def test_job_executions_are_that_jobs_runs_newest_first_and_paginated(admin_client):
    old = record_execution(JOB, minutes_ago=30)
    new = record_execution(JOB, minutes_ago=1, status=DjangoJobExecution.ERROR, exception="boom")
    record_execution("cache.warm", minutes_ago=2)

    page = admin_client.get(f"{JOB_URL}/executions/").json()
    first = admin_client.get(f"{JOB_URL}/executions/?page_size=1").json()

    assert page["count"] == 2
    assert [run["id"] for run in page["results"]] == [new.id, old.id]
    assert page["results"][0]["status"] == "error"
    assert page["results"][0]["exception"] == "boom" and page["results"][0]["job"] == JOB
    assert [run["id"] for run in first["results"]] == [new.id] and first["next"]


def test_job_changes_are_its_audit_trail_newest_first(admin_client):
    send(admin_client, "PUT", f"{JOB_URL}/schedule/", EVERY_FIVE_MINUTES)
    send(admin_client, "POST", f"{JOB_URL}/pause/")
    send(admin_client, "POST", f"{API}/jobs/cache.warm/pause/")

    page = admin_client.get(f"{JOB_URL}/changes/").json()

    assert [change["action"] for change in page["results"]] == ["paused", "rescheduled", "created"]
    paused = page["results"][0]
    assert (paused["job"], paused["actor"], paused["source"]) == (JOB, "staff_change", "api")
    assert paused["version"] == version_of()
    assert paused["before"]["enabled"] and not paused["after"]["enabled"]


def test_execution_list_covers_all_jobs_and_filters_by_job_and_status(admin_client):
    ok = record_execution(JOB, minutes_ago=3)
    failed = record_execution("cache.warm", minutes_ago=2, status=DjangoJobExecution.ERROR,
                              exception="boom")
    missed = record_execution("cache.warm", minutes_ago=1, status=DjangoJobExecution.MISSED)

    def ids(query: str = "") -> list[int]:
        response = admin_client.get(f"{API}/executions/?{query}")
        assert response.status_code == 200, response.content
        return [run["id"] for run in response.json()["results"]]

    assert ids() == [missed.id, failed.id, ok.id]
    assert ids("job=cache.warm") == [missed.id, failed.id]
    assert ids("status=error") == [failed.id]
    assert ids("status=success&job=cache.warm") == []


def start_scheduler_process(*, heartbeat: datetime, lease_expires: datetime) -> None:
    """The rows a `runscheduler` process keeps: its heartbeat and the lease it holds."""
    SchedulerProcess.objects.create(
        instance="worker-1:4242:abc", host="worker-1", pid=4242, role="active", epoch=3,
        notification_mode="poll", started_at=heartbeat, last_heartbeat=heartbeat,
    )
    SchedulerLease.objects.create(
        name=LEASE_NAME, holder="worker-1:4242:abc", epoch=3, expires_at=lease_expires
    )


def test_status_reports_the_active_scheduler_as_running_with_job_counts(admin_client):
    send(admin_client, "POST", f"{JOB_URL}/pause/")
    break_function_reference("cache.warm")
    assert admin_client.get(f"{API}/status/").json()["running"] is False
    now = timezone.now()
    start_scheduler_process(heartbeat=now, lease_expires=now + timedelta(seconds=30))

    status = admin_client.get(f"{API}/status/").json()

    assert status["running"] is True
    assert (status["pid"], status["host"]) == (4242, "worker-1")
    assert parse_time(status["last_heartbeat"]) == now
    assert parse_time(status["started_at"]) == now
    assert (status["jobs_total"], status["jobs_paused"], status["jobs_broken"]) == (
        DjangoJob.objects.count(), 1, 1
    )
    assert [(i["pid"], i["role"], i["epoch"]) for i in status["instances"]] == [
        (4242, "active", 3)
    ]


def test_status_is_not_running_when_the_heartbeat_is_stale(admin_client):
    stale = timezone.now() - timedelta(minutes=10)
    start_scheduler_process(heartbeat=stale, lease_expires=stale + timedelta(seconds=30))

    status = admin_client.get(f"{API}/status/").json()

    assert status["running"] is False and status["instances"] == []


def test_openapi_schema_describes_every_operation(admin_client):
    response = admin_client.get("/api/schema/?format=json")

    schema = response.json()
    assert response.status_code == 200 and schema["openapi"].startswith("3.")
    operations = {(method.upper(), path) for path, item in schema["paths"].items()
                  for method in item}
    jobs = f"{API}/jobs/{{id}}/"
    assert operations == {
        ("GET", f"{API}/jobs/"), ("POST", f"{API}/jobs/"), ("GET", jobs), ("PATCH", jobs),
        ("DELETE", jobs), ("PUT", f"{jobs}schedule/"),
        ("PUT", f"{jobs}policy/"), ("POST", f"{jobs}pause/"), ("POST", f"{jobs}resume/"),
        ("POST", f"{jobs}trigger/"), ("POST", f"{jobs}reset/"), ("POST", f"{jobs}revert/"),
        ("POST", f"{jobs}backfill/"), ("GET", f"{jobs}executions/"),
        ("GET", f"{jobs}changes/"),
        ("GET", f"{API}/executions/"), ("GET", f"{API}/status/"),
    }
    assert set(schema["components"]["schemas"]["Job"]["properties"]) >= JOB_FIELDS
    assert schema["paths"][f"{jobs}trigger/"]["post"]["responses"].keys() >= {"202", "412"}


def test_swagger_ui_is_served_from_local_static_files(admin_client):
    response = admin_client.get("/api/docs/")

    page = response.content.decode()
    assert response.status_code == 200
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js" in page
    assert "cdn" not in page.lower() and "https://" not in page
    assert "/api/schema/" in page


# The browsable API ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/", 200), ("/jobs/", 200), (f"/jobs/{JOB}/", 200), (f"/jobs/{JOB}/schedule/", 405),
        (f"/jobs/{JOB}/pause/", 405), (f"/jobs/{JOB}/resume/", 405),
        (f"/jobs/{JOB}/trigger/", 405), (f"/jobs/{JOB}/reset/", 405),
        (f"/jobs/{JOB}/executions/", 200), (f"/jobs/{JOB}/changes/", 200),
        ("/executions/", 200), ("/status/", 200),
    ],
)
def test_browsable_api_renders_every_endpoint(admin_client, path, status):
    response = admin_client.get(f"{API}{path}", headers={"accept": "text/html"})

    assert response.status_code == status
    assert response["Content-Type"].startswith("text/html")
    assert "Scheduler" in response.content.decode() or "Job" in response.content.decode()


def test_browsable_schedule_form_starts_from_the_current_schedule_as_json(admin_client):
    send(admin_client, "PUT", f"{JOB_URL}/schedule/", EVERY_FIVE_MINUTES)

    page = admin_client.get(f"{JOB_URL}/schedule/", headers={"accept": "text/html"})

    html = page.content.decode()
    assert 'name="_content_type"' in html and "application/json" in html
    assert "&quot;trigger&quot;: &quot;cron&quot;" in html
    assert "&quot;minute&quot;: &quot;*/5&quot;" in html


def test_browsable_put_form_content_can_be_sent_back_unchanged(admin_client):
    job = admin_client.get(f"{JOB_URL}/").json()
    form = {"trigger": job["trigger"], "trigger_args": job["trigger_args"]}

    response = send(admin_client, "PUT", f"{JOB_URL}/schedule/", form)

    assert response.status_code == 200, response.json()
    assert response.json()["trigger_args"] == job["trigger_args"]


def test_browsable_writes_from_an_html_page_render_their_result(admin_client):
    response = admin_client.post(
        f"{JOB_URL}/pause/", "{}", content_type="application/json",
        headers={"accept": "text/html"},
    )

    assert response.status_code == 200
    assert not DjangoJob.objects.get(id=JOB).next_run_time


# Errors ---------------------------------------------------------------------------------


BAD_SCHEDULES = [
    ("unknown trigger", {"trigger": "weekly"}, "trigger"),
    ("missing trigger", {"trigger_args": {"minutes": 5}}, "trigger"),
    ("unknown argument", {"trigger": "interval", "trigger_args": {"minutes": 5, "hourz": 1}},
     "trigger_args.hourz"),
    ("missing argument", {"trigger": "date", "trigger_args": {}}, "trigger_args.run_date"),
    ("negative interval", {"trigger": "interval", "trigger_args": {"minutes": -5}},
     "trigger_args.minutes"),
    ("zero interval", {"trigger": "interval", "trigger_args": {"seconds": 0}}, "trigger_args"),
    ("cron value out of range", {"trigger": "cron", "trigger_args": {"hour": 25}},
     "trigger_args.hour"),
    ("crontab value out of range", {"trigger": "cron", "trigger_args": {"crontab": "61 * * * *"}},
     "trigger_args.crontab"),
    ("unknown time zone",
     {"trigger": "cron", "trigger_args": {"hour": 1, "timezone": "Mars/Olympus"}},
     "trigger_args.timezone"),
    ("date in the past", {"trigger": "date", "trigger_args": {"run_date": "2000-01-01T00:00:00"}},
     "trigger_args.run_date"),
    ("schedule that never fires", {"trigger": "cron", "trigger_args": {"month": 2, "day": 31}},
     "trigger_args"),
    ("schedule that fired for the last time", {"trigger": "cron", "trigger_args": {"year": 2001}},
     "trigger_args"),
    ("wrong type of trigger_args", {"trigger": "cron", "trigger_args": ["*/5"]}, "trigger_args"),
    ("interval of a microsecond",
     {"trigger": "interval", "trigger_args": {"seconds": 0.000001}}, "trigger_args.seconds"),
    ("interval below MIN_INTERVAL",
     {"trigger": "interval", "trigger_args": {"seconds": 0.5}}, "trigger_args.seconds"),
    ("wrong type of a value", {"trigger": "interval", "trigger_args": {"minutes": "five"}},
     "trigger_args.minutes"),
    ("wrong type of jitter", {"trigger": "interval", "trigger_args": {"minutes": 5, "jitter": "x"}},
     "trigger_args.jitter"),
    ("body not an object", ["cron"], "body"),
    ("function path", {"trigger": "interval", "trigger_args": {"minutes": 5}, "func": "os:system"},
     "func"),
    ("malformed JSON", '{"trigger": "cron", ', "body"),
    ("JSON nested too deeply", "[" * 5000 + "]" * 5000, "body"),
    ("empty body", "", "trigger"),
    ("oversized body",
     {"trigger": "interval", "trigger_args": {"minutes": 5}, "padding": "x" * MAX_BODY_BYTES},
     "body"),
]


@pytest.mark.parametrize(("body", "field"), [case[1:] for case in BAD_SCHEDULES],
                         ids=[case[0] for case in BAD_SCHEDULES])
def test_bad_schedule_gets_400_naming_the_field_and_changes_nothing(admin_client, body, field):
    before = snapshot(JOB)

    response = send(admin_client, "PUT", f"{JOB_URL}/schedule/", body)

    error = response.json()
    assert response.status_code == 400, error
    assert field in error["errors"], error
    assert error["detail"] and error["errors"][field][0] in error["detail"]
    assert snapshot(JOB) == before


def test_oversized_body_is_refused_by_its_declared_length(admin_client):
    body = json.dumps({"trigger": "interval", "trigger_args": {"minutes": 5}}).ljust(
        MAX_BODY_BYTES + 1
    )

    response = send(admin_client, "PUT", f"{JOB_URL}/schedule/", body)

    assert response.status_code == 400
    assert response.json()["code"] == "body_too_large"


@pytest.mark.parametrize(
    ("query", "parameter"),
    [
        ("enabled=maybe", "enabled"), ("trigger=weekly", "trigger"),
        ("ordering=name", "ordering"), ("search=%00", "search"),
    ],
)
def test_bad_job_list_filter_gets_400_naming_it(admin_client, query, parameter):
    response = admin_client.get(f"{API}/jobs/?{query}")

    assert response.status_code == 400
    assert list(response.json()["errors"]) == [parameter]


def test_bad_execution_filter_gets_400_naming_it(admin_client):
    response = admin_client.get(f"{API}/executions/?status=exploded")

    assert response.status_code == 400
    assert list(response.json()["errors"]) == ["status"]


@pytest.mark.parametrize(
    ("method", "suffix"),
    [
        ("GET", ""), ("GET", "executions/"), ("GET", "changes/"), ("PUT", "schedule/"),
        ("POST", "pause/"), ("POST", "resume/"), ("POST", "trigger/"), ("POST", "reset/"),
        ("PATCH", ""),
    ],
)
@pytest.mark.parametrize("job_id", ["no.such.job", "nul%00byte"])
def test_unknown_job_gets_404_on_every_job_endpoint(admin_client, method, suffix, job_id):
    response = send(admin_client, method, f"{API}/jobs/{job_id}/{suffix}",
                    EVERY_FIVE_MINUTES if method == "PUT" else None)

    assert response.status_code == 404
    assert response.json()["code"] == "job_not_found"


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", f"{API}/nothing/here/"), ("POST", f"{JOB_URL}/pause"), ("GET", f"{JOB_URL}")],
)
def test_unknown_path_under_the_api_gets_a_json_404_and_changes_nothing(
    admin_client, method, path
):
    before = snapshot(JOB)

    response = send(admin_client, method, path)

    assert response.status_code == 404
    assert "end with a slash" in response.json()["detail"]
    assert snapshot(JOB) == before


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("PUT", f"{JOB_URL}/"), ("PUT", f"{API}/jobs/"), ("DELETE", f"{API}/jobs/"),
        ("GET", f"{JOB_URL}/schedule/"), ("POST", f"{JOB_URL}/schedule/"),
        ("GET", f"{JOB_URL}/pause/"), ("PUT", f"{JOB_URL}/trigger/"), ("POST", f"{API}/status/"),
        ("DELETE", f"{API}/executions/"),
    ],
)
def test_wrong_method_gets_405_and_changes_nothing(admin_client, method, path):
    before = snapshot(JOB)

    response = send(admin_client, method, path, EVERY_FIVE_MINUTES)

    assert response.status_code == 405
    assert response.json()["code"] == "method_not_allowed"
    assert snapshot(JOB) == before


@pytest.mark.parametrize(
    ("method", "suffix"),
    [("PUT", "schedule/"), ("POST", "trigger/"), ("POST", "resume/")],
)
def test_operation_on_a_broken_job_gets_409_and_changes_nothing(admin_client, method, suffix):
    send(admin_client, "POST", f"{JOB_URL}/pause/")
    break_function_reference(JOB)
    before = snapshot(JOB)
    body = EVERY_FIVE_MINUTES if suffix == "schedule/" else None

    response = send(admin_client, method, f"{JOB_URL}/{suffix}", body)

    assert response.status_code == 409
    assert response.json()["code"] == "job_broken"
    assert "function_renamed_away" in response.json()["detail"]
    assert snapshot(JOB) == before
    assert admin_client.get(f"{JOB_URL}/").json()["broken"] is True


def test_reset_of_a_job_no_longer_in_code_gets_409(admin_client):
    row = DjangoJob.objects.get(id=JOB)
    DjangoJob.objects.create(id="old.removed", job_state=row.job_state, next_run_time=None)

    response = send(admin_client, "POST", f"{API}/jobs/old.removed/reset/")

    assert response.status_code == 409
    assert response.json()["code"] == "job_state_conflict"
    assert "no longer declared" in response.json()["detail"]


@pytest.mark.parametrize(
    "content_type",
    ["application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "text/plain",
     "application/xml"],
)
@pytest.mark.parametrize(("method", "suffix"), [("PUT", "schedule/"), ("POST", "pause/")])
def test_writes_accept_only_json(admin_client, content_type, method, suffix):
    before = snapshot(JOB)

    response = admin_client.generic(
        method, f"{JOB_URL}/{suffix}", "trigger=cron&trigger_args=x", content_type=content_type
    )

    assert response.status_code == 415
    assert response.json()["code"] == "unsupported_media_type"
    assert snapshot(JOB) == before


def test_a_pickle_is_not_a_body(admin_client):
    before = snapshot(JOB)

    response = admin_client.put(
        f"{JOB_URL}/schedule/", dump_state({"trigger": "cron"}),
        content_type="application/python-pickle",
    )

    assert response.status_code == 415 and snapshot(JOB) == before


# If-Match and ETag ------------------------------------------------------------------------


@pytest.mark.parametrize("form", ['"{v}"', "{v}", " {v} ", "*"])
def test_write_with_current_if_match_succeeds_and_returns_the_new_etag(admin_client, form):
    current = version_of()
    if_match = form.format(v=current)

    response = send(admin_client, "POST", f"{JOB_URL}/pause/", **{"If-Match": if_match})

    assert response.status_code == 200
    assert response.headers["ETag"] == f'"{current + 1}"' == f'"{version_of()}"'


@pytest.mark.parametrize(
    ("method", "suffix"),
    [("PUT", "schedule/"), ("PUT", "policy/"), ("POST", "pause/"), ("POST", "resume/"),
     ("POST", "trigger/"), ("POST", "reset/")],
)
def test_stale_if_match_gets_412_with_the_current_version_and_changes_nothing(
    admin_client, method, suffix
):
    stale = version_of()
    send(admin_client, "PUT", f"{JOB_URL}/schedule/", EVERY_FIVE_MINUTES)
    send(admin_client, "POST", f"{JOB_URL}/pause/")
    before = snapshot(JOB)
    bodies = {"schedule/": EVERY_FIVE_MINUTES, "policy/": {"max_instances": 3}}

    response = send(admin_client, method, f"{JOB_URL}/{suffix}", bodies.get(suffix),
                    **{"If-Match": f'"{stale}"'})

    body = response.json()
    assert response.status_code == 412, body
    assert body["code"] == "version_conflict"
    assert body["current_version"] == stale + 2 == version_of()
    assert response.headers["ETag"] == f'"{stale + 2}"'
    assert snapshot(JOB) == before


@pytest.mark.parametrize(
    "if_match", ['W/"1"', '"1", "2"', "one", '"1', "-1", "1.0", "99999999999999999999", ""]
)
def test_malformed_if_match_gets_400_naming_the_header_and_changes_nothing(admin_client, if_match):
    before = snapshot(JOB)

    response = send(admin_client, "POST", f"{JOB_URL}/pause/", **{"If-Match": if_match})

    assert response.status_code == 400
    assert list(response.json()["errors"]) == ["If-Match"]
    assert response.json()["code"] == "invalid_if_match"
    assert snapshot(JOB) == before


def test_etag_from_a_read_lets_exactly_one_of_two_writers_through(admin_client):
    etag = admin_client.get(f"{JOB_URL}/").headers["ETag"]

    first = send(admin_client, "PUT", f"{JOB_URL}/schedule/", EVERY_FIVE_MINUTES,
                 **{"If-Match": etag})
    second = send(admin_client, "POST", f"{JOB_URL}/pause/", **{"If-Match": etag})

    assert (first.status_code, second.status_code) == (200, 412)
    assert second.json()["current_version"] == first.json()["version"]
    assert DjangoJob.objects.get(id=JOB).next_run_time is not None


# Who may do what ----------------------------------------------------------------------------

USER_KINDS = ["anonymous", "non_staff", "staff_without_permission", "staff_view",
              "staff_change", "superuser"]
# (method, path, body, status on success, is a write)
ENDPOINTS = [
    ("GET", f"{API}/", None, 200, False),
    ("GET", f"{API}/jobs/", None, 200, False),
    ("GET", f"{JOB_URL}/", None, 200, False),
    ("PUT", f"{JOB_URL}/schedule/", EVERY_FIVE_MINUTES, 200, True),
    ("POST", f"{JOB_URL}/pause/", None, 200, True),
    ("POST", f"{JOB_URL}/resume/", None, 200, True),
    ("POST", f"{JOB_URL}/trigger/", None, 202, True),
    ("POST", f"{JOB_URL}/reset/", None, 200, True),
    ("GET", f"{JOB_URL}/executions/", None, 200, False),
    ("GET", f"{JOB_URL}/changes/", None, 200, False),
    ("GET", f"{API}/executions/", None, 200, False),
    ("GET", f"{API}/status/", None, 200, False),
    ("GET", "/api/schema/", None, 200, False),
    ("GET", "/api/docs/", None, 200, False),
]


def expected_status(kind: str, success: int, is_write: bool) -> int:
    if kind == "anonymous":
        return 401
    if kind in ("non_staff", "staff_without_permission"):
        return 403
    if kind == "staff_view" and is_write:
        return 403
    return success


@pytest.mark.parametrize("kind", USER_KINDS)
@pytest.mark.parametrize(("method", "path", "body", "success", "is_write"), ENDPOINTS,
                         ids=[f"{e[0]} {e[1]}" for e in ENDPOINTS])
def test_permission_matrix(synced, kind, method, path, body, success, is_write):
    client = client_for(make_user(kind))
    before = snapshot(JOB)

    response = send(client, method, path, body)

    expected = expected_status(kind, success, is_write)
    assert response.status_code == expected, response.content[:300]
    if expected in (401, 403):
        assert snapshot(JOB) == before
    if expected in (401, 403) and response["Content-Type"] == "application/json":
        assert response.json()["code"] in ("not_authenticated", "permission_denied")
    if expected == 401:
        assert response.headers["WWW-Authenticate"] == 'Basic realm="api"'


def test_http_basic_authentication_works_and_a_wrong_password_gets_401(synced):
    make_user("staff_change")
    good = Client().get(f"{JOB_URL}/", headers={"authorization": basic("staff_change", PASSWORD)})
    bad = Client().get(f"{JOB_URL}/", headers={"authorization": basic("staff_change", "nope")})

    assert good.status_code == 200
    assert bad.status_code == 401


def test_http_basic_writes_need_no_csrf_token(synced):
    make_user("staff_change")

    client = Client(enforce_csrf_checks=True)
    response = send(client, "POST", f"{JOB_URL}/pause/",
                    authorization=basic("staff_change", PASSWORD))

    assert response.status_code == 200


def test_session_writes_need_a_csrf_token(synced):
    client = client_for(make_user("staff_change"), enforce_csrf_checks=True)
    before = snapshot(JOB)

    refused = send(client, "POST", f"{JOB_URL}/pause/")
    assert refused.status_code == 403 and "CSRF" in refused.json()["detail"]
    assert snapshot(JOB) == before

    client.get(f"{JOB_URL}/", headers={"accept": "text/html"})  # sets the csrftoken cookie
    token = client.cookies["csrftoken"].value
    accepted = send(client, "POST", f"{JOB_URL}/pause/", **{"X-CSRFToken": token})
    assert accepted.status_code == 200


# Cost and consistency of reads -------------------------------------------------------------


def test_a_job_list_page_costs_the_same_queries_for_5_or_50_jobs(admin_client):
    add_copies_of_job(50)

    five = count_queries(admin_client, f"{API}/jobs/?search=copies&page_size=5")
    fifty = count_queries(admin_client, f"{API}/jobs/?search=copies&page_size=50")

    assert five == fifty


def test_execution_pages_cost_the_same_queries_for_5_or_50_runs(admin_client):
    for minutes_ago in range(50):
        record_execution(JOB, minutes_ago=minutes_ago)

    five = count_queries(admin_client, f"{JOB_URL}/executions/?page_size=5")
    fifty = count_queries(admin_client, f"{JOB_URL}/executions/?page_size=50")

    assert five == fifty


@pytest.mark.postgres_only
def test_job_detail_reads_its_rows_under_their_locks_inside_a_transaction(admin_client):
    with CaptureQueriesContext(connection) as queries:
        admin_client.get(f"{JOB_URL}/")

    sql = [query["sql"] for query in queries.captured_queries]
    job_reads = [q for q in sql if 'FROM "django_apscheduler_djangojob"' in q]
    # One statement locks and reads the job row and its record, so that after waiting
    # for a writer it reads both at their newest versions (see selectors.get_job).
    [read] = job_reads
    assert read.endswith(
        'FOR UPDATE OF "django_apscheduler_djangojob", "scheduler_app_jobrecord"'
    )
    assert any(q.startswith("SAVEPOINT") or q == "BEGIN" for q in sql[:sql.index(read)])


# Concurrent writers (PostgreSQL row locks) --------------------------------------------------


def interval_minutes(job: dict[str, Any]) -> int:
    return job["trigger_args"]["minutes"]


@pytest.mark.postgres_only
@pytest.mark.django_db(transaction=True)
def test_concurrent_schedule_puts_serialize_and_the_last_committed_one_wins():
    services.sync_jobs_from_code()
    user = make_user("staff_change")
    start = version_of()
    writers = 8

    def put(index: int) -> tuple[int, dict[str, Any], str]:
        client = client_for(user)
        spec = {"trigger": "interval", "trigger_args": {"minutes": index + 1}}
        response = send(client, "PUT", f"{JOB_URL}/schedule/", spec)
        return response.status_code, response.json(), response.headers["ETag"]

    results = run_in_threads(writers, put)

    assert all(isinstance(result, tuple) and result[0] == 200 for result in results), results
    # Each response shows its own change, at its own version.
    for index, (_, job, etag) in enumerate(results):
        assert interval_minutes(job) == index + 1
        assert etag == f'"{job["version"]}"'
    versions = sorted(job["version"] for _, job, _ in results)
    assert versions == list(range(start + 1, start + writers + 1))
    last = max((job for _, job, _ in results), key=lambda job: job["version"])
    final = client_for(user).get(f"{JOB_URL}/").json()
    assert final == last
    # The audit trail has every change once, in commit order, versions strictly increasing.
    trail = list(JobChange.objects.filter(job_id=JOB, action="rescheduled").order_by("id"))
    assert [change.version for change in trail] == versions
    assert [change.after["trigger_args"]["minutes"] for change in trail] == [
        interval_minutes(job) for job in sorted((r[1] for r in results), key=lambda j: j["version"])
    ]


@pytest.mark.postgres_only
@pytest.mark.django_db(transaction=True)
def test_concurrent_puts_with_the_same_if_match_let_exactly_one_through():
    services.sync_jobs_from_code()
    user = make_user("staff_change")
    start = version_of()

    def put(index: int) -> tuple[int, dict[str, Any]]:
        spec = {"trigger": "interval", "trigger_args": {"minutes": index + 1}}
        response = send(client_for(user), "PUT", f"{JOB_URL}/schedule/", spec,
                        **{"If-Match": f'"{start}"'})
        return response.status_code, response.json()

    results = run_in_threads(8, put)

    statuses = sorted(status for status, _ in results)
    assert statuses == [200] + [412] * 7, results
    winner = next(job for status, job in results if status == 200)
    assert winner["version"] == start + 1
    assert all(body["current_version"] == start + 1 for status, body in results if status == 412)
    assert client_for(user).get(f"{JOB_URL}/").json() == winner
    assert JobChange.objects.filter(job_id=JOB, action="rescheduled").count() == 1


def test_arguments_json_cannot_hold_are_shown_as_their_repr_not_a_failed_list(admin_client):
    # Stored through the job store by other code: front doors only take JSON values.
    copy_job_with_record(JOB, "other.app.job")
    row = DjangoJob.objects.get(id="other.app.job")
    state = load_state(row.job_state)
    when = datetime(2030, 1, 1)
    state["kwargs"] = {"blob": b"\x80\x81", "when": when, "ratio": float("nan"), 7: "seven"}
    DjangoJob.objects.filter(id="other.app.job").update(job_state=dump_state(state))

    listing = admin_client.get(f"{API}/jobs/?page_size=100")
    detail = admin_client.get(f"{API}/jobs/other.app.job/")
    command = StringIO()
    call_command("scheduler", "show", "other.app.job", "--json", stdout=command)

    assert listing.status_code == 200 and detail.status_code == 200
    assert JOB in {job["id"] for job in listing.json()["results"]}
    expected = {"blob": "b'\\x80\\x81'", "when": repr(when), "ratio": "nan", "7": "seven"}
    assert detail.json()["kwargs"] == expected
    assert json.loads(command.getvalue())["kwargs"] == expected
