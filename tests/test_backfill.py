"""Backfill: every run the schedule would have made in a range, queued once per run time
through the API, the admin and the CLI, refused when bad with nothing queued, and run by
a real scheduler in scheduled-time order within max_instances, never twice."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime, timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.urls import reverse
from django.utils import timezone
from django_apscheduler.models import DjangoJobExecution

from scheduler_app import selectors, services
from scheduler_app.models import ExecutionRecord, JobChange, RunRequest
from tests.conftest import messages_of, record_execution, snapshot, staff_client, wait_for
from tests.testapp.models import ProbeRun

JOB = "reports.weekly"
JOB_URL = f"/api/scheduler/jobs/{JOB}"
EVERY_TEN_MINUTES = {"trigger": "cron", "trigger_args": {"minute": "*/10"}}
# Yesterday, 10:00 to 11:00 UTC: seven runs of an every-ten-minutes job.
START = (datetime.now(UTC) - timedelta(days=1)).replace(hour=10, minute=0, second=0,
                                                        microsecond=0)
END = START + timedelta(hours=1)


def change(job_id: str = JOB, **fields: object) -> dict[str, object]:
    return {"job_id": job_id, "actor": "alice", "source": "api", **fields}


@pytest.fixture
def every_ten_minutes(synced) -> None:
    services.reschedule_job(trigger_spec=EVERY_TEN_MINUTES, **change())


def queued_times(job_id: str = JOB) -> list[datetime]:
    return list(RunRequest.objects.filter(job_id=job_id, cause="backfill")
                .order_by("run_time").values_list("run_time", flat=True))


def post(client, body: object):
    return client.post(f"{JOB_URL}/backfill/", json.dumps(body), content_type="application/json")


def test_backfill_queues_each_run_time_once_and_counts_the_rest(every_ten_minutes):
    version = selectors.get_job(job_id=JOB).version
    record_execution(JOB, minutes_ago=0)  # unrelated
    DjangoJobExecution.objects.create(job_id=JOB, run_time=START + timedelta(minutes=20),
                                      status=DjangoJobExecution.SUCCESS)

    first = services.backfill_job(start=START, end=END, **change())
    overlapping = services.backfill_job(start=START + timedelta(minutes=30),
                                        end=END + timedelta(minutes=30), **change())

    assert (len(first.queued), len(first.already_there)) == (6, 1)
    assert (len(overlapping.queued), len(overlapping.already_there)) == (3, 4)
    expected = [START + timedelta(minutes=10 * step) for step in range(10) if step != 2]
    assert queued_times() == expected
    assert selectors.get_job(job_id=JOB).version == version, "the schedule did not change"
    audit = JobChange.objects.filter(job_id=JOB).first()
    assert audit.action == "backfill_requested"
    assert audit.after["backfill"]["queued"] == 3


def test_backfill_of_a_paused_job_leaves_it_paused(every_ten_minutes):
    services.pause_job(**change(), reason="outage")

    outcome = services.backfill_job(start=START, end=END, **change())

    assert len(outcome.queued) == 7
    job = selectors.get_job(job_id=JOB)
    assert not job.enabled and job.paused_reason == "outage"


def test_dry_run_queues_nothing(every_ten_minutes):
    before = snapshot(JOB)

    outcome = services.backfill_job(start=START, end=END, dry_run=True, **change())

    assert len(outcome.queued) == 7 and snapshot(JOB) == before


def test_api_backfill_answers_with_the_counts(every_ten_minutes):
    client = staff_client("view_djangojob", "change_djangojob")

    response = post(client, {"start": START.isoformat(), "end": END.isoformat()})
    again = post(client, {"start": START.isoformat(), "end": END.isoformat(), "dry_run": True})

    assert response.status_code == 202, response.json()
    body = response.json()
    assert (body["queued"], body["already_there"], body["dry_run"]) == (7, 0, False)
    assert len(body["queued_run_times"]) == 7
    assert again.status_code == 200
    assert (again.json()["queued"], again.json()["already_there"]) == (0, 7)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"start": END.isoformat(), "end": START.isoformat()}, "end"),
        ({"start": START.isoformat(), "end": "2999-01-01T00:00:00Z"}, "end"),
        ({"start": (START - timedelta(days=30)).isoformat(), "end": END.isoformat()}, "end"),
        ({"start": "yesterday", "end": END.isoformat()}, "start"),
        ({"end": END.isoformat()}, "start"),
        ({"start": START.isoformat(), "end": END.isoformat(), "until": 1}, "until"),
    ],
)
def test_bad_backfill_is_a_400_naming_the_field_and_queues_nothing(every_ten_minutes, body,
                                                                   field, settings):
    settings.SCHEDULER_APP = {**settings.SCHEDULER_APP, "BACKFILL_LIMIT": 100}
    client = staff_client("view_djangojob", "change_djangojob")
    before = snapshot(JOB)

    response = post(client, body)

    assert response.status_code == 400, response.json()
    assert field in response.json()["errors"], response.json()
    assert snapshot(JOB) == before


def test_cli_backfill_and_its_dry_run(every_ten_minutes):
    stdout = StringIO()
    call_command("scheduler", "backfill", JOB, "--from", START.isoformat(), "--to",
                 END.isoformat(), "--dry-run", stdout=stdout)
    assert "7 run(s) would be queued" in stdout.getvalue() and queued_times() == []

    stdout = StringIO()
    call_command("scheduler", "backfill", JOB, "--from", START.isoformat(), "--to",
                 END.isoformat(), stdout=stdout)

    assert "7 run(s) queued" in stdout.getvalue() and len(queued_times()) == 7
    with pytest.raises(CommandError, match="end: must not be before start"):
        call_command("scheduler", "backfill", JOB, "--from", END.isoformat(), "--to",
                     START.isoformat(), stdout=StringIO())
    with pytest.raises(CommandError, match="--from"):
        call_command("scheduler", "backfill", JOB, "--from", "soon", "--to",
                     END.isoformat(), stdout=StringIO())
    assert len(queued_times()) == 7


def test_admin_backfill_form(every_ten_minutes):
    editor = staff_client("view_djangojob", "change_djangojob")
    page = editor.get(reverse("admin:scheduler_app_job_change", args=[JOB])).content.decode()
    assert 'id="backfill"' in page
    url = reverse("admin:scheduler_app_job_backfill", args=[JOB])
    naive = "%Y-%m-%dT%H:%M:%S"
    zone = timezone.get_default_timezone()

    response = editor.post(url, {"start": START.astimezone(zone).strftime(naive),
                                 "end": END.astimezone(zone).strftime(naive)})
    bad = editor.post(url, {"start": END.astimezone(zone).strftime(naive),
                            "end": START.astimezone(zone).strftime(naive)})

    assert messages_of(response)[0] == f"{JOB}: backfill queued 7 run(s); 0 already ran or queued."
    assert "end: must not be before start" in messages_of(bad)[-1]
    assert len(queued_times()) == 7


@pytest.mark.slow
def test_scheduler_runs_backfilled_runs_in_order_one_at_a_time_and_the_job_stays_paused(
    start_scheduler,
):
    services.sync_jobs_from_code()
    services.reschedule_job(trigger_spec={"trigger": "cron", "trigger_args": {"minute": "*"}},
                            **change("probe.slow"))
    services.pause_job(**change("probe.slow"))
    minute = timezone.now().replace(second=0, microsecond=0)
    start_scheduler()

    outcome = services.backfill_job(start=minute - timedelta(minutes=3),
                                     end=minute - timedelta(minutes=1), **change("probe.slow"))
    assert len(outcome.queued) == 3

    done = DjangoJobExecution.objects.filter(job_id="probe.slow",
                                             status=DjangoJobExecution.SUCCESS)
    wait_for(lambda: done.count() == 3, timeout=30)
    assert sorted(done.values_list("run_time", flat=True)) == outcome.queued
    assert set(ExecutionRecord.objects.filter(execution__job_id="probe.slow")
               .values_list("cause", flat=True)) == {"backfill"}
    starts = list(ProbeRun.objects.filter(job_id="probe.slow")
                  .order_by("started_at").values_list("started_at", flat=True))
    # max_instances is 1: each run waited for the one before (about a second each).
    assert all(later - earlier >= timedelta(seconds=0.9)
               for earlier, later in zip(starts, starts[1:], strict=False))
    assert not DjangoJobExecution.objects.filter(
        job_id="probe.slow", status=DjangoJobExecution.MAX_INSTANCES).exists()
    assert not selectors.get_job(job_id="probe.slow").enabled


@pytest.mark.slow
def test_a_backfill_and_a_scheduled_run_for_the_same_time_fire_once(start_scheduler):
    services.sync_jobs_from_code()
    start_scheduler()
    services.reschedule_job(trigger_spec={"trigger": "cron", "trigger_args": {"second": "*"}},
                            **change("probe.scheduled"))
    began = timezone.now()
    wait_for(lambda: ProbeRun.objects.filter(job_id="probe.scheduled").count() >= 2, timeout=15)

    outcome = services.backfill_job(start=began - timedelta(seconds=5), end=timezone.now(),
                                     **change("probe.scheduled"))
    assert outcome.already_there, "the scheduled runs of the range are there already"
    services.pause_job(**change("probe.scheduled"))
    wait_for(lambda: not RunRequest.objects.filter(status="pending").exists(), timeout=15)
    wait_for(lambda: not DjangoJobExecution.objects.filter(
        job_id="probe.scheduled", status=DjangoJobExecution.SENT).exists(), timeout=15)

    labels = Counter(ProbeRun.objects.filter(job_id="probe.scheduled")
                     .values_list("label", flat=True))
    assert labels and max(labels.values()) == 1, labels
    runs = DjangoJobExecution.objects.filter(job_id="probe.scheduled")
    assert len(labels) == runs.filter(status=DjangoJobExecution.SUCCESS).count()


def test_a_job_with_unreadable_state_does_not_stop_other_jobs_backfills(every_ten_minutes):
    from django_apscheduler.models import DjangoJob

    from scheduler_app.jobstore import JobStore

    services.backfill_job(start=START, end=END, **change())
    services.reschedule_job(trigger_spec=EVERY_TEN_MINUTES, **change("cache.warm"))
    services.backfill_job(start=START, end=END, **change("cache.warm"))
    DjangoJob.objects.filter(id=JOB).update(job_state=b"not a pickle")

    claimed = JobStore()._claim_backfills(timezone.now())

    assert {run.job.id for run in claimed} == {"cache.warm"}
    assert set(RunRequest.objects.filter(job_id=JOB).values_list("status", flat=True)) == {
        "skipped"}
