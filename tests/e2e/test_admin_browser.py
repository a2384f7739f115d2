"""The admin in a real browser: what an operator does, end to end, against a live server."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime, timedelta
from itertools import pairwise

import pytest
from django.contrib.auth.models import Permission, User
from django.utils import timezone
from django_apscheduler.models import DjangoJobExecution
from playwright.sync_api import Locator, Page, expect

from scheduler_app import selectors
from tests.conftest import last_sunday
from tests.e2e.conftest import PASSWORD
from tests.testapp.models import ProbeRun

pytestmark = pytest.mark.django_db(transaction=True)

JOBS = "/admin/scheduler_app/job/"
EXECUTIONS = "/admin/scheduler_app/run/"
PROBE = "probe.record"


def apply_action(page: Page, action: str, *job_ids: str) -> None:
    for job_id in job_ids:
        page.check(f'input[name="_selected_action"][value="{job_id}"]')
    page.select_option('select[name="action"]', action)
    page.click('button[name="index"]')


def reload_until_visible(page: Page, locator: Locator, *, timeout: float) -> None:
    """Reload the page until `locator` shows up, as a person waiting for a run would."""
    deadline = time.monotonic() + timeout
    while not locator.count():
        assert time.monotonic() < deadline, f"{locator} did not appear within {timeout}s"
        page.wait_for_timeout(250)
        page.reload()
    expect(locator.first).to_be_visible()


def record_history() -> None:
    """An hour of past runs of three demo jobs, a third of the partner syncs failing."""
    timeout = "TimeoutError: partner API did not answer within 10 s"
    for minutes_ago in range(60, 0, -5):
        failed = minutes_ago % 15 == 0
        runs = [
            ("monitoring.heartbeat", DjangoJobExecution.SUCCESS, 0.02, None),
            ("cache.warm", DjangoJobExecution.SUCCESS, 0.4 + minutes_ago % 7 / 10, None),
            ("integrations.flaky_sync", DjangoJobExecution.ERROR, 10.0, timeout)
            if failed
            else ("integrations.flaky_sync", DjangoJobExecution.SUCCESS, 1.5, None),
        ]
        run_time = timezone.now() - timedelta(minutes=minutes_ago)
        for job_id, status, duration, exception in runs:
            DjangoJobExecution.objects.create(
                job_id=job_id, status=status, run_time=run_time, duration=duration,
                finished=run_time.timestamp() + duration, exception=exception,
                traceback=f"Traceback (most recent call last):\n  ...\n{exception}"
                if exception else None,
            )


def preview_times(page: Page) -> list[datetime]:
    items = page.locator(".scheduler-preview-times li").all_inner_texts()
    return [datetime.strptime(item.split("\n")[0][4:23], "%Y-%m-%d %H:%M:%S") for item in items]


def job_row(page: Page, job_id: str) -> Locator:
    return page.locator("#result_list tr", has=page.locator(f'a:text-is("{job_id}")'))


def test_operator_pauses_a_job_from_the_list(signed_in: Page, live_server, screenshot):
    record_history()
    page = signed_in
    page.goto(f"{live_server.url}{JOBS}")
    row = job_row(page, PROBE)
    expect(row).to_contain_text("Probe")
    expect(job_row(page, "integrations.flaky_sync").locator(".field-last_run")).to_contain_text(
        "Succeeded5\xa0minutes ago"
    )

    apply_action(page, "pause_jobs", PROBE)

    expect(page.locator(".messagelist")).to_contain_text("1 job was paused: probe.record.")
    expect(row.locator(".field-next_run")).to_have_text("paused")
    assert not selectors.get_job(job_id=PROBE).enabled
    screenshot("jobs-list")


def test_operator_reschedules_through_the_form_and_sees_the_preview(
    signed_in: Page, live_server, screenshot
):
    page = signed_in
    page.goto(f"{live_server.url}{JOBS}{PROBE}/change/")
    preview = page.locator("#schedule-preview")
    # The current schedule first: once a year, in 2099.
    expect(preview.locator(".scheduler-preview-times li").first).to_contain_text("2099-01-01")

    page.check('input[name="trigger"][value="interval"]')
    expect(page.locator('.scheduler-mode[data-modes="cron"]')).to_be_hidden()
    page.fill("#id_minutes", "15")

    expect(preview.locator(".scheduler-preview-description")).to_have_text("Every 15 minutes")
    expect(preview.locator(".scheduler-preview-times li")).to_have_count(5)
    times = preview_times(page)
    assert [later - earlier for earlier, later in pairwise(times)] == [timedelta(minutes=15)] * 4
    screenshot("job-change-preview", page.locator("#content h1"),
               page.locator(".scheduler-columns"))

    page.fill("#id_minutes", "-3")
    expect(preview.locator(".scheduler-preview-errors")).to_contain_text(
        "minutes: must be a finite number, 0 or more"
    )
    page.fill("#id_minutes", "15")
    expect(preview.locator(".scheduler-preview-description")).to_have_text("Every 15 minutes")

    page.click('input[name="_save"]')

    expect(page.locator(".messagelist")).to_contain_text(
        "Job rescheduled. probe.record: Every 15 minutes."
    )
    job = selectors.get_job(job_id=PROBE)
    assert (job.trigger, job.trigger_args["minutes"]) == ("interval", 15)


def test_preview_warns_of_a_run_in_the_daylight_saving_gap(signed_in: Page, live_server):
    page = signed_in
    page.goto(f"{live_server.url}{JOBS}{PROBE}/change/")
    spring = last_sunday(timezone.now().year + 1, 3)

    page.check('input[name="trigger"][value="date"]')
    page.fill("#id_timezone", "Europe/Paris")
    page.fill("#id_run_date", f"{spring:%Y-%m-%d}T02:30:00")

    warning = page.locator(".scheduler-preview-times .scheduler-dst")
    expect(warning).to_have_text(
        f"Its wall time does not exist on {spring:%Y-%m-%d} (clocks go forward that night): "
        "it runs at 03:30 CEST instead."
    )


@pytest.mark.slow
def test_operator_runs_a_job_now_and_sees_its_execution(
    signed_in: Page, live_server, start_scheduler, screenshot
):
    start_scheduler()
    record_history()
    page = signed_in
    page.goto(f"{live_server.url}{JOBS}")

    apply_action(page, "run_jobs_now", PROBE)

    expect(page.locator(".messagelist")).to_contain_text(
        "1 job was sent to the scheduler process to run now: probe.record."
    )
    page.goto(f"{live_server.url}{EXECUTIONS}?job_id={PROBE}")
    row = page.locator("#result_list tbody tr", has_text="Succeeded")
    reload_until_visible(page, row, timeout=20)
    expect(row).to_contain_text(PROBE)
    assert ProbeRun.objects.filter(job_id=PROBE).count() == 1
    assert selectors.get_job(job_id=PROBE).next_run_time.year == 2099  # schedule untouched
    page.goto(f"{live_server.url}{EXECUTIONS}")
    expect(page.locator("#result_list tbody tr").first).to_contain_text(PROBE)
    screenshot("executions")


@pytest.mark.slow
def test_operator_opens_the_dashboard_from_the_admin_index(
    signed_in: Page, live_server, start_scheduler, screenshot
):
    start_scheduler()
    record_history()
    page = signed_in

    page.click("#scheduler-dashboard-link a")

    expect(page.locator("h1")).to_have_text("Scheduler dashboard")
    expect(page.locator(".scheduler-health-state")).to_have_text("Running")
    expect(page.locator("#scheduler-failures")).to_contain_text("TimeoutError: partner API")
    timeline = page.locator("#scheduler-timeline")
    expect(timeline.locator("tr", has_text="Heartbeat")).to_contain_text("1440")
    expect(timeline.locator("rect.scheduler-band").first).to_be_visible()
    trends = page.locator("#scheduler-trends tr", has_text="Flaky partner sync")
    expect(trends).to_contain_text("67% (8/12)")
    expect(trends.locator("polyline")).to_be_visible()
    screenshot("dashboard")


def test_view_only_operator_sees_a_read_only_job_page(sign_in: Callable[..., Page]):
    viewer = User.objects.create_user("viewer", password=PASSWORD, is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_djangojob"))

    page = sign_in(viewer, next_path=f"{JOBS}{PROBE}/change/")

    expect(page.locator("h1")).to_have_text(f"Job {PROBE}")
    expect(page.locator("#id_minute")).to_be_disabled()
    expect(page.locator('input[name="_save"]')).to_have_count(0)
    expect(page.locator(".scheduler-operation")).to_have_count(0)
