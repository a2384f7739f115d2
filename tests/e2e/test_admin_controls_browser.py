"""The operator controls of issue 14 in a real browser: the job page's run policy, a
pause with a reason and an end (and the reason in the job list), run now with arguments,
Restore on the job's changes, backfill; and the "Add job" page and the alert log.

Each test checks what the operator sees after each step; with E2E_SCREENSHOTS set they
also keep the pictures of the README.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from django.utils import timezone
from django_apscheduler.models import DjangoJob
from playwright.sync_api import Locator, Page, expect

from scheduler_app import alerts, selectors, services
from scheduler_app.conf import app_settings
from scheduler_app.models import JobChange, RunRequest
from tests.e2e.test_admin_browser import EXECUTIONS, JOBS, PROBE, job_row, reload_until_visible
from tests.testapp.models import ProbeRun

pytestmark = pytest.mark.django_db(transaction=True)

JOB_PAGE = f"{JOBS}{PROBE}/change/"
ALERTS = "/admin/scheduler_app/alert/"
EVERY_QUARTER_HOUR = {"trigger": "cron", "trigger_args": {"crontab": "*/15 * * * *"}}
# How the admin's messages name the job: Django's admin capitalizes a message's first
# letter, and these messages start with the job id.
SHOWN_ID = "Probe.record"


def wall_time(moment: datetime) -> str:
    """`moment` as a datetime-local input takes it: a wall time in the scheduler's zone."""
    return timezone.localtime(moment, app_settings.timezone).strftime("%Y-%m-%dT%H:%M")


def section(page: Page, title: str) -> Locator:
    """A section of the job page, by the start of its heading ("Recent changes")."""
    return page.locator("section", has=page.locator(f'h2:text-matches("^{title}")'))


def change_as(actor: str, service, **arguments) -> None:
    """A change by another operator, through the API, before the page is opened."""
    service(job_id=PROBE, actor=actor, source="api", **arguments)


def test_operator_changes_the_run_policy_on_the_job_page(signed_in: Page, live_server, screenshot):
    page = signed_in
    page.goto(f"{live_server.url}{JOB_PAGE}")
    policy = page.locator("#run-policy")
    expect(policy.locator("h2")).to_have_text("Run policy")
    expect(policy.locator('input[name="max_instances"]')).to_have_value("1")
    expect(policy.locator('input[name="pause_after_failures"]')).to_have_value("")

    policy.locator('input[name="max_instances"]').fill("2")
    policy.locator('input[name="pause_after_failures"]').fill("3")
    policy.locator('input[name="misfire_grace_time"]').fill("300")
    policy.locator('input[name="_policy"]').click()

    expect(page.locator(".messagelist")).to_have_text(f"{SHOWN_ID}: Run policy changed.")
    expect(policy.locator('input[name="max_instances"]')).to_have_value("2")
    expect(policy.locator('input[name="pause_after_failures"]')).to_have_value("3")
    expect(policy.locator('input[name="misfire_grace_time"]')).to_have_value("300")
    newest_change = section(page, "Recent changes").locator("tbody tr").first
    expect(newest_change).to_contain_text("operator")
    expect(newest_change).to_contain_text("Run policy changed")
    job = selectors.get_job(job_id=PROBE)
    assert (job.max_instances, job.pause_after_failures, job.misfire_grace_time) == (2, 3, 300)
    screenshot("job-run-policy", policy)


def test_operator_pauses_with_a_reason_until_tomorrow_and_the_list_shows_why(
    signed_in: Page, live_server, screenshot
):
    page = signed_in
    page.goto(f"{live_server.url}{JOB_PAGE}")
    until = timezone.localtime(timezone.now() + timedelta(days=1), app_settings.timezone).replace(
        hour=6, minute=0, second=0, microsecond=0
    )
    pause = page.locator(".scheduler-pause-form")
    pause.locator('input[name="reason"]').fill("Partner API maintenance")
    pause.locator('input[name="until"]').fill(wall_time(until))
    reason_box, button_box = (pause.locator('input[name="reason"]').bounding_box(),
                              pause.locator("button").bounding_box())
    assert abs(reason_box["y"] - button_box["y"]) < reason_box["height"], "Pause wrapped"
    screenshot("job-pause", page.locator("#content h1"), page.locator(".scheduler-operations"),
               page.locator(".scheduler-summary"))

    pause.locator('button[value="pause"]').click()

    expect(page.locator(".messagelist")).to_have_text(f"{SHOWN_ID}: Job paused.")
    summary = page.locator(".scheduler-summary")
    expect(summary.locator(".scheduler-badge").first).to_have_text("paused")
    expect(summary.locator(".scheduler-paused-reason")).to_have_text("Partner API maintenance")
    expect(summary).to_contain_text("by operator")
    expect(summary).to_contain_text(f"resumes at {until:%Y-%m-%d %H:%M:%S}")
    job = selectors.get_job(job_id=PROBE)
    assert (job.enabled, job.paused_reason, job.paused_until) == (
        False, "Partner API maintenance", until)

    page.goto(f"{live_server.url}{JOBS}")
    row = job_row(page, PROBE)
    expect(row.locator(".field-next_run")).to_contain_text("paused")
    expect(row.locator(".scheduler-paused-reason")).to_have_text("Partner API maintenance")
    expect(job_row(page, "probe.slow").locator(".field-next_run")).not_to_contain_text("paused")
    screenshot("jobs-list-paused", page.locator("#result_list thead"), row)


@pytest.mark.slow
def test_operator_runs_a_job_now_with_arguments_and_finds_them_on_the_run(
    signed_in: Page, live_server, start_scheduler, screenshot
):
    start_scheduler()
    page = signed_in
    page.goto(f"{live_server.url}{JOB_PAGE}")
    run = page.locator("#run-with-arguments")
    expect(run.locator("textarea")).to_have_value("")
    expect(run.locator("textarea")).to_have_attribute("placeholder", '{"limit": 100}')

    run.locator("textarea").fill('{"label": "rerun for ACME"}')
    run.locator('input[name="_run"]').click()

    expect(page.locator(".messagelist")).to_contain_text(
        f'{SHOWN_ID}: sent to the scheduler process to run now with {{"label": "rerun for ACME"}}'
    )
    recent_run = section(page, "Recent runs").locator("tbody tr", has_text="Succeeded")
    reload_until_visible(page, recent_run, timeout=20)
    assert ProbeRun.objects.get(job_id=PROBE).label == "rerun for ACME"
    assert selectors.get_job(job_id=PROBE).kwargs == {}  # the job's own arguments stay

    page.goto(f"{live_server.url}{EXECUTIONS}?job_id={PROBE}")
    page.locator("#result_list tbody tr").first.locator("th a").click()
    expect(page.locator(".field-cause .readonly")).to_have_text("run now")
    expect(page.locator(".field-run_arguments pre")).to_have_text(
        '{\n  "label": "rerun for ACME"\n}'
    )
    expect(page.locator(".field-status_badge")).to_contain_text("Succeeded")
    screenshot("run-with-arguments", page.locator("#content"))


def test_operator_restores_an_earlier_version_from_the_job_changes(
    signed_in: Page, live_server, screenshot
):
    change_as("alice", services.reschedule_job, trigger_spec=EVERY_QUARTER_HOUR)
    change_as("bob", services.set_job_policy, policy={"max_instances": 4})
    rescheduled = selectors.get_job(job_id=PROBE).version - 1
    page = signed_in
    page.goto(f"{live_server.url}{JOB_PAGE}")
    changes = section(page, "Recent changes")
    expect(changes.locator("tbody tr").first).to_contain_text("bob")
    # The version the job is at has nothing to restore; each earlier one has.
    expect(changes.locator("tbody tr").first.locator("button")).to_have_count(0)
    restore = changes.locator("tbody tr", has_text="alice").locator("button")
    expect(restore).to_have_text("Restore")

    restore.click()

    expect(page.locator(".messagelist")).to_have_text(
        f"{SHOWN_ID}: Reverted to version {rescheduled}."
    )
    expect(changes.locator("tbody tr").first).to_contain_text(f"Reverted to version {rescheduled}")
    expect(changes.locator("tbody tr").first).to_contain_text("operator")
    job = selectors.get_job(job_id=PROBE)
    assert (job.trigger_args["minute"], job.max_instances) == ("*/15", 1)
    assert JobChange.objects.filter(job_id=PROBE, action="reverted").count() == 1
    screenshot("job-changes-restore", changes)


def test_operator_counts_then_queues_a_backfill(signed_in: Page, live_server, screenshot):
    change_as("alice", services.reschedule_job, trigger_spec=EVERY_QUARTER_HOUR)
    start = timezone.now().replace(minute=0, second=0, microsecond=0) - timedelta(hours=2)
    page = signed_in
    page.goto(f"{live_server.url}{JOB_PAGE}")
    backfill = page.locator("#backfill")
    backfill.locator('input[name="start"]').fill(wall_time(start))
    backfill.locator('input[name="end"]').fill(wall_time(start + timedelta(minutes=59)))
    backfill.locator('input[name="dry_run"]').check()

    backfill.locator('input[name="_backfill"]').click()

    expect(page.locator(".messagelist")).to_have_text(
        f"{SHOWN_ID}: a backfill would queue 4 run(s); 0 already ran or queued."
    )
    assert not RunRequest.objects.filter(job_id=PROBE).exists()

    backfill.locator('input[name="start"]').fill(wall_time(start))
    backfill.locator('input[name="end"]').fill(wall_time(start + timedelta(minutes=59)))
    screenshot("job-backfill", backfill)
    backfill.locator('input[name="_backfill"]').click()

    expect(page.locator(".messagelist")).to_have_text(
        f"{SHOWN_ID}: backfill queued 4 run(s); 0 already ran or queued."
    )
    newest_change = section(page, "Recent changes").locator("tbody tr").first
    expect(newest_change).to_contain_text("Backfill of 4 run(s)")
    queued = RunRequest.objects.filter(job_id=PROBE).order_by("run_time")
    assert [request.run_time for request in queued] == [
        start + timedelta(minutes=15 * i) for i in range(4)
    ]


def test_operator_adds_a_runtime_job_with_its_arguments(signed_in: Page, live_server, screenshot):
    page = signed_in
    page.goto(f"{live_server.url}{JOBS}")
    page.locator(".object-tools a.addlink").click()
    expect(page.locator("#job-functions")).to_contain_text("reports.customer_report")

    page.fill("#id_id", "reports.customer.42")
    page.fill("#id_name", "Report for ACME")
    page.select_option("#id_function", "reports.customer_report")
    page.fill("#id_kwargs", '{"customer_id": 42}')
    page.check('input[name="trigger"][value="cron"]')
    page.fill("#id_hour", "7")
    page.fill("#id_minute", "30")
    expect(page.locator(".scheduler-preview-description")).to_have_text("At 07:30 (UTC)")
    screenshot("job-add", page.locator("#content h1"), page.locator("#schedule-form"),
               page.locator("#schedule-preview"))

    page.click('input[name="_save"]')

    expect(page.locator("h1")).to_have_text("Job reports.customer.42")
    expect(page.locator(".scheduler-summary")).to_contain_text("created at runtime")
    job = selectors.get_job(job_id="reports.customer.42")
    assert (job.origin, job.function, job.kwargs) == (
        "runtime", "reports.customer_report", {"customer_id": 42})
    assert DjangoJob.objects.filter(id="reports.customer.42").exists()


def test_operator_reads_the_alert_log(signed_in: Page, live_server, screenshot):
    failed_at = timezone.now() - timedelta(minutes=20)
    alerts.raise_alert(event="run_failed", job_id="integrations.flaky_sync", run_time=failed_at,
                       message="Run of job 'integrations.flaky_sync' failed: TimeoutError: "
                       "partner API did not answer within 10 s")
    alerts.raise_alert(event="job_recovered", job_id="integrations.flaky_sync",
                       message="Job 'integrations.flaky_sync' succeeded again.")
    alerts.raise_alert(event="job_overdue", job_id="reports.weekly",
                       message="Job 'reports.weekly' has not succeeded for 2 hours.")
    page = signed_in

    page.goto(f"{live_server.url}{ALERTS}")

    expect(page.locator("h1")).to_have_text("Alert log")
    rows = page.locator("#result_list tbody tr")
    expect(rows).to_have_count(3)
    expect(rows.nth(0)).to_contain_text("Job overdue")
    expect(rows.nth(0)).to_contain_text("reports.weekly")
    expect(rows.nth(1)).to_contain_text("Job recovered")
    expect(rows.nth(2)).to_contain_text("Run failed")
    expect(rows.nth(2)).to_contain_text("TimeoutError: partner API")
    expect(rows.nth(2).locator(".field-delivery_badge")).to_have_text("No channel configured")
    screenshot("alerts", page.locator("#content"))
