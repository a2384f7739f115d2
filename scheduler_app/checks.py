"""
System checks: `manage.py check` names a missing piece of the installation and a bad
SCHEDULER_APP value before anything runs.
"""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.apps import apps
from django.conf import settings
from django.core.checks import Error, Tags, Warning, register
from django.urls import NoReverseMatch, reverse

from scheduler_app.conf import ALERT_DEFAULTS, DEFAULTS

POSITIVE_NUMBERS = (
    "POLL_INTERVAL", "MAX_SLEEP", "HEARTBEAT_INTERVAL", "HEARTBEAT_TIMEOUT", "MAX_RETRY_DELAY",
    "LEASE_TTL", "LOST_RUN_TIMEOUT", "QUEUED_RUN_TIMEOUT", "RUN_REQUEST_TIMEOUT",
    "MIN_INTERVAL",
)
RETENTION_DAYS = ("EXECUTION_RETENTION_DAYS", "CHANGE_RETENTION_DAYS", "PROCESS_RETENTION_DAYS")


# What a project must add to INSTALLED_APPS, besides Django's own auth and contenttypes
# (which every startproject has): in this order, though any order works.
REQUIRED_APPS = ("rest_framework", "django_apscheduler")
API_URL_LINE = 'path("api/scheduler/", include("scheduler_app.api.urls"))'


def missing_app_message(app_name: str) -> str:
    return (
        f'scheduler_app needs "{app_name}" in INSTALLED_APPS: add "rest_framework", '
        '"django_apscheduler" and "scheduler_app" to INSTALLED_APPS.'
    )


@register()
def check_installed_apps(app_configs: Any, **kwargs: Any) -> list[Error]:
    return [
        Error(missing_app_message(app_name), id="scheduler_app.E010")
        for app_name in REQUIRED_APPS
        if not apps.is_installed(app_name)
    ]


@register(Tags.urls)
def check_api_urls(app_configs: Any, **kwargs: Any) -> list[Warning]:
    try:
        reverse("scheduler_api:api-root")
    except NoReverseMatch:
        return [
            Warning(
                "The scheduler API is not in the URLconf.",
                hint=f"Add {API_URL_LINE} to your project's urlpatterns.",
                id="scheduler_app.W001",
            )
        ]
    return []


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
    for key in RETENTION_DAYS:
        value = configured.get(key, DEFAULTS[key])
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            errors.append(
                Error(f"SCHEDULER_APP[{key!r}] must be a number of days >= 0 (0 keeps forever).",
                      id="scheduler_app.E008")
            )
    for key in ("THREADS", "BACKFILL_LIMIT", "MAX_CATCH_UP_RUNS"):
        count = configured.get(key, DEFAULTS[key])
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            errors.append(
                Error(f"SCHEDULER_APP[{key!r}] must be an integer >= 1.", id="scheduler_app.E004")
            )
    claim_ahead = configured.get("CLAIM_AHEAD", DEFAULTS["CLAIM_AHEAD"])
    if (isinstance(claim_ahead, bool) or not isinstance(claim_ahead, int | float)
            or not 0 <= claim_ahead <= 1):
        errors.append(
            Error("SCHEDULER_APP['CLAIM_AHEAD'] must be a number of seconds from 0 to 1.",
                  id="scheduler_app.E012")
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
    errors += _check_alerts(configured)
    token = configured.get("METRICS_TOKEN")
    if token is not None and (not isinstance(token, str) or not token):
        errors.append(
            Error("SCHEDULER_APP['METRICS_TOKEN'] must be a non-empty string or None.",
                  id="scheduler_app.E011")
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


def _positive(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, int | float) and value > 0


def _check_alerts(configured: dict[str, Any]) -> list[Error]:
    errors = []
    alert_after = configured.get("ALERT_AFTER", DEFAULTS["ALERT_AFTER"])
    if not _positive(alert_after):
        errors.append(Error("SCHEDULER_APP['ALERT_AFTER'] must be a positive number of seconds.",
                            id="scheduler_app.E008"))
    alerts = configured.get("ALERTS", DEFAULTS["ALERTS"])
    if not isinstance(alerts, dict):
        return [*errors, Error("SCHEDULER_APP['ALERTS'] must be a dict.", id="scheduler_app.E009")]

    def problem(text: str) -> None:
        errors.append(Error(f"SCHEDULER_APP['ALERTS']: {text}", id="scheduler_app.E009"))

    for key in alerts:
        if key not in ALERT_DEFAULTS:
            problem(f"unknown key {key!r} (known: {', '.join(ALERT_DEFAULTS)}).")
    if not isinstance(alerts.get("email", False), bool):
        problem("'email' must be true or false.")
    elif alerts.get("email") and not settings.ADMINS:
        problem("'email' is on but settings.ADMINS is empty: nobody would get the mail.")
    for key in ("timeout",):
        if not _positive(alerts.get(key, ALERT_DEFAULTS[key])):
            problem(f"{key!r} must be a positive number of seconds.")
    retries = alerts.get("retries", ALERT_DEFAULTS["retries"])
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        problem("'retries' must be an integer >= 0.")
    webhooks = alerts.get("webhooks", [])
    if not isinstance(webhooks, list | tuple):
        problem("'webhooks' must be a list of {'url': ..., 'secret': ...}.")
        return errors
    for index, webhook in enumerate(webhooks):
        if not isinstance(webhook, dict) or set(webhook) != {"url", "secret"}:
            problem(f"webhooks[{index}] must be a dict with exactly 'url' and 'secret'.")
            continue
        url, secret = webhook["url"], webhook["secret"]
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            problem(f"webhooks[{index}]['url'] must be an http:// or https:// URL.")
        if not isinstance(secret, str) or not secret:
            problem(f"webhooks[{index}]['secret'] must be a non-empty string.")
    return errors
