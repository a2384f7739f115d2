"""How the admin shows times, statuses, audit diffs and links: small HTML pieces for cells."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.contrib.admin.utils import quote
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString
from django.utils.timesince import timesince, timeuntil

from scheduler_app import selectors

STATUS_LABELS = {
    "queued": "Queued",
    "running": "Running",
    "success": "Succeeded",
    "error": "Failed",
    "missed": "Missed",
    "max_instances": "Skipped: max instances",
    "lost": "Lost",
    "expired": "Expired",
}


def relative_time(moment: datetime, *, now: datetime | None = None) -> str:
    """"in 4 minutes" or "3 hours, 2 minutes ago"."""
    now = now or timezone.now()
    if abs(moment - now) < timedelta(minutes=1):
        return "in under a minute" if moment >= now else "under a minute ago"
    if moment > now:
        return f"in {timeuntil(moment, now)}"
    return f"{timesince(moment, now)} ago"


def time_cell(moment: datetime | None) -> SafeString:
    """A moment in a list column: the local time, kept on one line."""
    if moment is None:
        return format_html("{}", "—")
    return format_html(
        '<time class="scheduler-time" datetime="{}">{}</time>',
        moment.isoformat(),
        f"{timezone.localtime(moment):%Y-%m-%d %H:%M:%S}",
    )


def lateness(execution: selectors.ExecutionView) -> str:
    """How late a run started, as "0.35 s late" ("—" if it has not started)."""
    if execution.lateness is None:
        return "—"
    return f"{execution.lateness:.2f} s"


def muted(text: str) -> SafeString:
    """A word standing in for a missing value ("never", "paused", "none")."""
    return format_html('<span class="scheduler-muted">{}</span>', text)


def status_label(status: str) -> str:
    return STATUS_LABELS.get(status, status.replace("_", " ").capitalize())


def status_choices() -> list[tuple[str, str]]:
    """Every execution status the store knows, as (slug, label) filter choices."""
    return [(slug, status_label(slug)) for slug in selectors.EXECUTION_STATUS_SLUGS.values()]


def status_badge(status: str) -> SafeString:
    return format_html(
        '<span class="scheduler-badge scheduler-status-{}">{}</span>', status, status_label(status)
    )


def change_diff(before: dict[str, Any] | None, after: dict[str, Any] | None) -> SafeString:
    """What an audit record changed, as "field: old → new" lines (just the values if new)."""
    old, new = _flatten(before or {}), _flatten(after or {})
    names = [*new, *(name for name in old if name not in new)]
    changed = [name for name in names if old.get(name) != new.get(name)]
    if not changed:
        return muted("no schedule change")
    if before is None:
        lines = format_html_join(
            "", "<li><b>{}</b> {}</li>", ((name, _shown(new.get(name))) for name in changed)
        )
    else:
        lines = format_html_join(
            "",
            "<li><b>{}</b> <del>{}</del> → <ins>{}</ins></li>",
            ((name, _shown(old.get(name)), _shown(new.get(name))) for name in changed),
        )
    return format_html('<ul class="scheduler-diff">{}</ul>', lines)


def _flatten(summary: dict[str, Any]) -> dict[str, Any]:
    # An audit summary is {"trigger", "trigger_args": {...}, "enabled", "next_run_time"};
    # the trigger's arguments read best as fields of their own.
    flat = {key: value for key, value in summary.items() if key != "trigger_args"}
    flat.update(summary.get("trigger_args") or {})
    return flat


def _shown(value: Any) -> str:
    return "—" if value is None else str(value)


def execution_url(execution_id: int) -> str:
    return reverse("admin:scheduler_app_run_change", args=[execution_id])


def job_url(job_id: str) -> str:
    return reverse("admin:scheduler_app_job_change", args=[quote(job_id)])
