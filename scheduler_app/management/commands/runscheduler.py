"""`manage.py runscheduler`: the one process that runs scheduled jobs."""

from __future__ import annotations

import logging
import signal
import time
from typing import Any

from django.core.management.base import BaseCommand
from django.db import DatabaseError, InterfaceError, connection, connections

from scheduler_app import selectors, services
from scheduler_app.conf import app_settings
from scheduler_app.notifications import uses_listen_notify
from scheduler_app.scheduler import Scheduler, run_scheduler

logger = logging.getLogger("scheduler_app.runscheduler")


class Command(BaseCommand):
    help = (
        "Run the scheduler: add jobs declared in code that are new to the store, then run "
        "due jobs and run-now requests until SIGTERM or SIGINT (running jobs finish first)."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "--log-level",
            default="INFO",
            type=str.upper,
            choices=["DEBUG", "INFO", "WARNING", "ERROR"],
            help="Log level of the scheduler_app loggers (default INFO; any case).",
        )

    def handle(self, *args: Any, log_level: str, **options: Any) -> None:
        logging.getLogger("scheduler_app").setLevel(log_level)
        scheduler = Scheduler()
        for stop_signal in (signal.SIGTERM, signal.SIGINT):
            signal.signal(stop_signal, lambda *_: scheduler.request_stop())
        report = self._sync_until_database_answers(scheduler)
        if report is None:
            return
        self._print_summary(report, log_level=log_level)
        run_scheduler(scheduler)
        self.stdout.write("Scheduler stopped.")

    def _sync_until_database_answers(self, scheduler: Scheduler) -> services.SyncReport | None:
        delay = 0.5
        while not scheduler.stop_requested.is_set():
            try:
                return services.sync_jobs_from_code()
            except (DatabaseError, InterfaceError) as error:
                logger.warning("Database unavailable at start (%s); retrying in %.1fs",
                               error, delay)
                connections.close_all()
                time.sleep(delay)
                delay = min(delay * 2, app_settings.MAX_RETRY_DELAY)
        return None

    def _print_summary(self, report: services.SyncReport, *, log_level: str) -> None:
        loaded = len(report.added) + len(report.updated) + len(report.unchanged)
        lines = [
            f"Jobs declared in code: {loaded} ({len(report.added)} new, "
            f"{len(report.updated)} updated from code)",
            f"Jobs in the store: {selectors.job_queryset().count()} "
            f"({selectors.job_queryset(enabled=False).count()} paused)",
            f"Orphaned (in the store, no longer in code): {_listing(report.orphaned)}",
            f"Broken (function cannot be imported): {_listing(report.broken)}",
            f"Database: {_database_label()}",
            "Change notifications: "
            + ("PostgreSQL LISTEN/NOTIFY" if uses_listen_notify()
               else f"polling every {app_settings.POLL_INTERVAL}s"),
            f"Time zone: {app_settings.timezone}",
            f"Log level: {log_level}",
        ]
        for line in lines:
            self.stdout.write(line)
        self.stdout.flush()


def _database_label() -> str:
    """Which database this process uses, without credentials."""
    database = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite {database['NAME']}"
    port = f":{database['PORT']}" if database.get("PORT") else ""
    return f"{connection.vendor} {database['NAME']} on {database.get('HOST') or 'localhost'}{port}"


# Job ids a start-up summary line names; the rest are counted (a store of 100,000
# jobs left from old code made one line of 1.4 MB).
LISTED_IDS = 20


def _listing(job_ids: list[str]) -> str:
    if not job_ids:
        return "0"
    named = ", ".join(job_ids[:LISTED_IDS])
    more = len(job_ids) - LISTED_IDS
    return f"{len(job_ids)} ({named}" + (f", and {more} more)" if more > 0 else ")")
