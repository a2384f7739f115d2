"""System checks for the SCHEDULER_APP settings: `manage.py check` names a bad value."""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.conf import settings
from django.core.checks import Error, register

from scheduler_app.conf import DEFAULTS

POSITIVE_NUMBERS = (
    "POLL_INTERVAL", "MAX_SLEEP", "HEARTBEAT_INTERVAL", "HEARTBEAT_TIMEOUT", "MAX_RETRY_DELAY",
    "LEASE_TTL", "LOST_RUN_TIMEOUT",
)


@register()
def check_scheduler_settings(app_configs: Any, **kwargs: Any) -> list[Error]:
    configured = getattr(settings, "SCHEDULER_APP", {})
    if not isinstance(configured, dict):
        return [Error("SCHEDULER_APP must be a dict.", id="scheduler_app.E001")]
    errors = [
        Error(f"SCHEDULER_APP has an unknown key {key!r}.", id="scheduler_app.E002")
        for key in configured
        if key not in DEFAULTS
    ]
    for key in POSITIVE_NUMBERS:
        value = configured.get(key, DEFAULTS[key])
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            errors.append(
                Error(f"SCHEDULER_APP[{key!r}] must be a positive number.", id="scheduler_app.E003")
            )
    threads = configured.get("THREADS", DEFAULTS["THREADS"])
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        errors.append(
            Error("SCHEDULER_APP['THREADS'] must be an integer >= 1.", id="scheduler_app.E004")
        )
    if configured.get("NOTIFICATIONS", "auto") not in ("auto", "notify", "poll"):
        errors.append(
            Error("SCHEDULER_APP['NOTIFICATIONS'] must be 'auto', 'notify' or 'poll'.",
                  id="scheduler_app.E005")
        )
    if configured.get("EXECUTION", "threads") not in ("threads", "tasks"):
        errors.append(
            Error("SCHEDULER_APP['EXECUTION'] must be 'threads' or 'tasks'.",
                  id="scheduler_app.E007")
        )
    timezone_name = configured.get("TIMEZONE") or settings.TIME_ZONE
    try:
        ZoneInfo(timezone_name)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        errors.append(
            Error(f"SCHEDULER_APP['TIMEZONE'] {timezone_name!r} is not a known time zone.",
                  id="scheduler_app.E006")
        )
    return errors
