"""
Demo jobs: what a real project schedules, and one that fails so the error
history has something to show.
"""

import logging
import random

from django.contrib.sessions.models import Session
from django.utils import timezone

from scheduler_app import job_function, scheduled_job

logger = logging.getLogger(__name__)


@scheduled_job("cron", hour=3, minute=0, id="sessions.clear_expired", name="Clear expired sessions")
def clear_expired_sessions() -> int:
    """Delete expired sessions, as `manage.py clearsessions` does."""
    deleted, _ = Session.objects.filter(expire_date__lt=timezone.now()).delete()
    logger.info("Deleted %d expired sessions", deleted)
    return deleted


@scheduled_job("interval", minutes=1, id="monitoring.heartbeat", name="Heartbeat")
def heartbeat() -> None:
    """Log that the scheduler is alive, once a minute."""
    logger.info("Heartbeat at %s", timezone.now().isoformat())


@scheduled_job(
    "cron", day_of_week="mon", hour=8, minute=30, id="reports.weekly", name="Weekly report",
    max_instances=1, misfire_grace_time=3600, coalesce=True,
)
def weekly_report() -> str:
    """Build the weekly activity report every Monday morning."""
    report = f"Weekly report for the week ending {timezone.now().date()}"
    logger.info(report)
    return report


@scheduled_job("interval", minutes=5, id="integrations.flaky_sync", name="Flaky partner sync")
def flaky_partner_sync() -> None:
    """Pull updates from a partner API that times out now and then."""
    if random.random() < 0.5:
        raise TimeoutError("partner API did not answer within 10 s")
    logger.info("Partner sync done")


@scheduled_job("interval", seconds=30, id="cache.warm", name="Warm cache", args=("home",),
               kwargs={"depth": 2})
def warm_cache(page: str, depth: int = 1) -> None:
    """Render the busiest pages ahead of traffic."""
    logger.info("Warmed %s to depth %d", page, depth)


@job_function("reports.customer_report")
def customer_report(customer_id: int, fmt: str = "pdf") -> str:
    """Build one customer's report (schedule one job per customer, at the hour they chose).

    Create jobs that call it from the admin ("Add job"), the API (POST /api/scheduler/jobs/)
    or `manage.py scheduler create ID --function reports.customer_report --kwarg customer_id=42`.
    """
    report = f"Report for customer {customer_id} as {fmt}"
    logger.info(report)
    return report
