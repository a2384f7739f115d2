"""
Settings for scheduler_app, read from the `SCHEDULER_APP` dict in Django settings.

Every key has its default here and is checked by the system checks in
`scheduler_app.checks`, so `manage.py check` names a bad value before anything runs.
Access them as attributes: `app_settings.POLL_INTERVAL`.
"""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo

from django.conf import settings

DEFAULTS: dict[str, Any] = {
    # Time zone the scheduler computes fire times in; None means settings.TIME_ZONE.
    "TIMEZONE": None,
    # How change notifications reach the scheduler: "auto" (LISTEN/NOTIFY on
    # PostgreSQL, polling elsewhere), "notify" or "poll".
    "NOTIFICATIONS": "auto",
    # Seconds between two looks at the change marker when polling.
    "POLL_INTERVAL": 0.2,
    # Longest the scheduler sleeps without looking at the store (the safety net
    # for a lost notification).
    "MAX_SLEEP": 10.0,
    # Seconds between two heartbeats of the scheduler process.
    "HEARTBEAT_INTERVAL": 5.0,
    # A heartbeat older than this means the scheduler is not running.
    "HEARTBEAT_TIMEOUT": 30.0,
    # Longest back-off after a database error in the scheduler loop.
    "MAX_RETRY_DELAY": 10.0,
    # Seconds a scheduler's leadership lease lasts; renewed every third of it.
    "LEASE_TTL": 10.0,
    # Where runs execute: "threads" (the scheduler's own thread pool) or "tasks"
    # (Django's Tasks framework, e.g. django-tasks-db workers on many machines).
    "EXECUTION": "threads",
    # The TASKS backend alias runs are enqueued on in "tasks" mode.
    "TASK_BACKEND": "default",
    # A running run with no heartbeat for this many seconds is marked lost (its
    # process died); runs send one every quarter of it while they execute.
    "LOST_RUN_TIMEOUT": 3600.0,
    # Seconds a run handed to the task backend may wait for a worker to start it; an
    # older one ends as "expired" instead of starting late, and frees its place.
    "QUEUED_RUN_TIMEOUT": 3600.0,
    # Worker threads that run jobs in the scheduler process.
    "THREADS": 10,
    # Seconds ahead of their time the scheduler claims runs in "threads" mode, so
    # that the claim's commit is paid before a run is due; each still starts at its
    # time, after a look at whether its job changed since (`scheduler_app.launcher`).
    # 0 claims runs when they are due. At most 1.
    "CLAIM_AHEAD": 0.05,
    # PostgreSQL channel for change notifications.
    "CHANNEL": "scheduler_app_changes",
    # Default misfire grace time (seconds) for declared jobs.
    "MISFIRE_GRACE_TIME": 60,
    # Most runs one backfill may queue; a longer range is refused.
    "BACKFILL_LIMIT": 1000,
    # Seconds a run-now request waits for a scheduler to claim it; an older one ends
    # as "expired" instead of running hours late when a scheduler comes back.
    "RUN_REQUEST_TIMEOUT": 300.0,
    # Days the active scheduler keeps history before pruning it (about hourly); 0
    # keeps it forever. Runs (executions, with their run-now requests):
    "EXECUTION_RETENTION_DAYS": 90,
    # The audit trail (JobChange):
    "CHANGE_RETENTION_DAYS": 365,
    # Rows of scheduler processes whose heartbeat stopped (SchedulerProcess):
    "PROCESS_RETENTION_DAYS": 7,
    # Seconds after a run was due with no successful run since before the job is
    # overdue (`job_overdue`); a job's `alert_after` (code or run policy) wins.
    "ALERT_AFTER": 3600,
    # Where alerts go (see `scheduler_app.alerts`): {"email": True} mails
    # settings.ADMINS; {"webhooks": [{"url": ..., "secret": ...}]} POSTs signed JSON.
    # "timeout" (seconds per attempt, default 5) and "retries" (after the first
    # attempt, default 3, with doubling back-off) apply to every channel.
    "ALERTS": {},
    # Bearer token that may read GET /metrics (besides staff who may view jobs);
    # None: staff sessions only.
    "METRICS_TOKEN": None,
    # Shortest interval (seconds) any front door accepts for an interval trigger:
    # shorter ones cost the scheduler a core and flood the history.
    "MIN_INTERVAL": 1.0,
    # Most catch-up runs a job that does not coalesce gets after being behind (a long
    # downtime); the older missed runs are skipped and counted on the first run.
    "MAX_CATCH_UP_RUNS": 10,
}

# What SCHEDULER_APP["ALERTS"] holds when a key is left out.
ALERT_DEFAULTS: dict[str, Any] = {"email": False, "webhooks": [], "timeout": 5.0, "retries": 3}


class AppSettings:
    """Attribute access to SCHEDULER_APP with defaults filled in."""

    def __getattr__(self, name: str) -> Any:
        if name not in DEFAULTS:
            raise AttributeError(f"Unknown SCHEDULER_APP setting {name!r}")
        return getattr(settings, "SCHEDULER_APP", {}).get(name, DEFAULTS[name])

    @property
    def alerts(self) -> dict[str, Any]:
        """SCHEDULER_APP["ALERTS"] with its defaults filled in."""
        return {**ALERT_DEFAULTS, **self.ALERTS}

    @property
    def timezone(self) -> ZoneInfo:
        """The scheduler's time zone as a tzinfo."""
        return ZoneInfo(self.TIMEZONE or settings.TIME_ZONE)


app_settings = AppSettings()
