"""Catch-up after a job fell behind: the runs it owes, counted, not walked."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from apscheduler.triggers.combining import OrTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger

from scheduler_app import catchup
from scheduler_app.catchup import due_runs

NOW = datetime(2030, 6, 1, 12, 0, tzinfo=UTC)


def every_second(**options) -> IntervalTrigger:
    return IntervalTrigger(seconds=1, start_date=NOW - timedelta(days=30), timezone=UTC, **options)


def walked(trigger, first: datetime, now: datetime) -> list[datetime]:
    """Every due fire time, walked one by one as APScheduler's `Job._get_run_times` does."""
    times = []
    while first is not None and first <= now:
        times.append(first)
        first = trigger.get_next_fire_time(first, now)
    return times


@pytest.mark.parametrize("behind", [timedelta(0), timedelta(seconds=3), timedelta(minutes=7)])
def test_interval_catch_up_matches_the_one_by_one_walk(behind) -> None:
    trigger = IntervalTrigger(minutes=1, start_date=NOW - timedelta(days=1), timezone=UTC)
    first = NOW - behind - timedelta(seconds=30)
    expected = walked(trigger, first, NOW)

    due = due_runs(trigger, first, NOW, coalesce=False, limit=1000)

    assert due.run_times == expected
    assert due.skipped == 0
    assert due.next_run_time == expected[-1] + timedelta(minutes=1)


def test_a_job_a_day_behind_gets_its_newest_runs_and_the_rest_are_counted() -> None:
    due = due_runs(every_second(), NOW - timedelta(days=1), NOW, coalesce=False, limit=10)

    assert due.run_times == [NOW - timedelta(seconds=s) for s in range(9, -1, -1)]
    assert due.skipped == 86_401 - 10
    assert due.next_run_time == NOW + timedelta(seconds=1)


def test_a_coalescing_job_runs_once_for_its_newest_missed_time() -> None:
    due = due_runs(every_second(), NOW - timedelta(hours=1), NOW, coalesce=True, limit=10)

    assert due.run_times == [NOW]
    assert due.skipped == 3600


def test_catch_up_stops_at_the_triggers_end_date() -> None:
    trigger = every_second(end_date=NOW - timedelta(minutes=1))

    due = due_runs(trigger, NOW - timedelta(hours=1), NOW, coalesce=False, limit=2)

    assert due.run_times == [NOW - timedelta(minutes=1, seconds=1), NOW - timedelta(minutes=1)]
    assert due.next_run_time is None


def test_a_job_not_yet_due_owes_nothing() -> None:
    due = due_runs(every_second(), NOW + timedelta(seconds=5), NOW, coalesce=False, limit=10)
    assert (due.run_times, due.skipped, due.next_run_time) == ([], 0, NOW + timedelta(seconds=5))


def test_cron_catch_up_is_walked_for_a_bounded_number_of_times_then_resumes_from_now() -> None:
    class CountedCron(CronTrigger):
        calls = 0

        def get_next_fire_time(self, previous_fire_time, now):
            CountedCron.calls += 1
            return super().get_next_fire_time(previous_fire_time, now)

    trigger = CountedCron(second="*", timezone=UTC)

    due = due_runs(trigger, NOW - timedelta(days=1), NOW, coalesce=False, limit=10)

    assert CountedCron.calls <= catchup.WALK_LIMIT + 1
    assert len(due.run_times) == 10 and due.skipped == catchup.WALK_LIMIT - 10
    assert due.next_run_time == NOW  # from now on, as if it had never been behind


def test_cron_and_combined_triggers_a_few_runs_behind_are_exact() -> None:
    for trigger in (CronTrigger(minute="*/5", timezone=UTC),
                    OrTrigger([CronTrigger(minute="1", timezone=UTC),
                               CronTrigger(minute="2", timezone=UTC)])):
        first = trigger.get_next_fire_time(None, NOW - timedelta(hours=1))
        expected = walked(trigger, first, NOW)

        due = due_runs(trigger, first, NOW, coalesce=False, limit=3)

        assert due.run_times == expected[-3:]
        assert due.skipped == max(len(expected) - 3, 0)
        assert due.next_run_time > NOW


def test_a_past_one_off_job_runs_once_and_is_done() -> None:
    due = due_runs(DateTrigger(NOW - timedelta(days=2), UTC), NOW - timedelta(days=2), NOW,
                   coalesce=False, limit=10)
    assert (due.run_times, due.skipped, due.next_run_time) == ([NOW - timedelta(days=2)], 0, None)


@pytest.mark.django_db
def test_the_history_says_how_many_runs_were_skipped_in_every_front_door(synced, admin_client):
    import json
    from io import StringIO

    from django.core.management import call_command
    from django.urls import reverse

    from scheduler_app.jobstore import JobStore
    from tests.conftest import edit_stored_job

    edit_stored_job("probe.noop", coalesce=True, trigger=every_second(),
                    next_run_time=NOW - timedelta(hours=1))
    JobStore().claim_due_jobs(NOW)

    [run] = admin_client.get("/api/scheduler/jobs/probe.noop/executions/").json()["results"]
    assert (run["run_time"][:19], run["skipped_runs"]) == ("2030-06-01T12:00:00", 3600)
    page = admin_client.get(reverse("admin:scheduler_app_run_changelist"))
    assert "3600 missed runs" in page.content.decode()
    text = StringIO()
    call_command("scheduler", "history", "probe.noop", stdout=text)
    assert re.search(r"SKIPPED BEFORE.*\n.* 3600\b", text.getvalue())
    text = StringIO()
    call_command("scheduler", "history", "probe.noop", "--json", stdout=text)
    assert json.loads(text.getvalue())[0]["skipped_runs"] == 3600
