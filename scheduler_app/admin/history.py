"""The history pages, read-only for whoever may view jobs: every recorded run, the audit
trail of who changed which job, and the alert log with each alert's delivery."""

from __future__ import annotations

import json
from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.utils.text import Truncator
from django.utils.translation import ngettext
from django_apscheduler.models import DjangoJobExecution

from scheduler_app import selectors
from scheduler_app.admin.base import SchedulerModelAdmin, can_view_jobs
from scheduler_app.admin.display import (
    change_diff,
    job_url,
    lateness,
    muted,
    status_badge,
    time_cell,
)
from scheduler_app.admin.filters import ExecutionStatusFilter, JobIdFilter
from scheduler_app.models import Alert, JobChange

EXCEPTION_SUMMARY_LENGTH = 80


class JobHistoryAdmin(SchedulerModelAdmin):
    """Read-only rows about jobs, visible with the permission to view jobs."""

    def has_module_permission(self, request: HttpRequest) -> bool:
        return can_view_jobs(request.user)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return can_view_jobs(request.user)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="Job", ordering="job_id")
    def job_link(self, row: Any) -> SafeString:
        return format_html('<a href="{}">{}</a>', job_url(row.job_id), row.job_id)


class ExecutionAdmin(JobHistoryAdmin):
    """Every recorded run, newest first; the traceback on the detail page."""

    changelist_title = "Runs"
    list_display = (
        "scheduled", "job_link", "status_badge", "ran", "lateness", "duration_seconds", "skipped",
        "exception_summary",
    )
    list_display_links = ("scheduled",)
    list_filter = (ExecutionStatusFilter, JobIdFilter, "run_time")
    search_fields = ("job__id", "exception")
    fields = (
        "job_link", "status_badge", "cause", "run_arguments", "scheduled", "started", "lateness",
        "finished_at", "duration_seconds", "skipped", "exception", "traceback_block",
    )
    readonly_fields = fields

    def get_queryset(self, request: HttpRequest) -> QuerySet[DjangoJobExecution]:
        return selectors.execution_queryset()

    @admin.display(description="Status", ordering="status")
    def status_badge(self, row: DjangoJobExecution) -> SafeString:
        return status_badge(selectors.ExecutionView.from_row(row).status)

    @admin.display(description="Cause")
    def cause(self, row: DjangoJobExecution) -> str:
        cause = selectors.ExecutionView.from_row(row).cause
        return cause.replace("_", " ") if cause else "—"

    @admin.display(description="Arguments for this run")
    def run_arguments(self, row: DjangoJobExecution) -> SafeString:
        kwargs = selectors.ExecutionView.from_row(row).kwargs
        if not kwargs:
            return muted("none: the job's own")
        text = json.dumps(kwargs, indent=2)
        return format_html('<pre class="scheduler-arguments">{}</pre>', text)

    @admin.display(description="Scheduled for", ordering="run_time")
    def scheduled(self, row: DjangoJobExecution) -> SafeString:
        return time_cell(row.run_time)

    @admin.display(description="Started")
    def started(self, row: DjangoJobExecution) -> SafeString:
        return time_cell(selectors.ExecutionView.from_row(row).started)

    @admin.display(description="Lateness")
    def lateness(self, row: DjangoJobExecution) -> str:
        return lateness(selectors.ExecutionView.from_row(row))

    @admin.display(description="Finished", ordering="finished")
    def finished_at(self, row: DjangoJobExecution) -> SafeString:
        return time_cell(selectors.ExecutionView.from_row(row).finished)

    @admin.display(description="Started → finished")
    def ran(self, row: DjangoJobExecution) -> SafeString:
        # Times of day only: a run starts and ends close to its scheduled time, whose
        # date is in the column before.
        execution = selectors.ExecutionView.from_row(row)
        started, finished = execution.started, execution.finished
        if started is None or finished is None:
            return format_html("{}", "—")
        return format_html(
            '<span class="scheduler-time" title="{} → {}">{} → {}</span>',
            started.isoformat(), finished.isoformat(),
            f"{timezone.localtime(started):%H:%M:%S}", f"{timezone.localtime(finished):%H:%M:%S}",
        )

    @admin.display(description="Exception", ordering="exception")
    def exception_summary(self, row: DjangoJobExecution) -> str:
        return Truncator(row.exception or "").chars(EXCEPTION_SUMMARY_LENGTH)

    @admin.display(description="Skipped before")
    def skipped(self, row: DjangoJobExecution) -> str:
        count = selectors.ExecutionView.from_row(row).skipped_runs
        if not count:
            return "—"
        return ngettext("%(count)d missed run", "%(count)d missed runs", count) % {"count": count}

    @admin.display(description="Duration", ordering="duration")
    def duration_seconds(self, row: DjangoJobExecution) -> str:
        return "—" if row.duration is None else f"{row.duration} s"

    @admin.display(description="Traceback")
    def traceback_block(self, row: DjangoJobExecution) -> SafeString:
        if not row.traceback:
            return muted("none")
        return format_html('<pre class="scheduler-traceback">{}</pre>', row.traceback)


class JobChangeAdmin(JobHistoryAdmin):
    """The audit trail: who changed which job, when, through which front door, and how."""

    changelist_title = "Changes"
    list_display = (
        "created_at", "job_link", "action", "actor", "source", "version", "before_after",
    )
    list_filter = ("action", "source", JobIdFilter, "created_at")
    search_fields = ("job_id", "actor")
    fields = (
        "job_link", "version", "action", "actor", "source", "created_at", "before_after",
        "before_json", "after_json",
    )
    readonly_fields = fields

    def get_queryset(self, request: HttpRequest) -> QuerySet[JobChange]:
        return selectors.change_queryset()

    @admin.display(description="Before → after")
    def before_after(self, row: JobChange) -> SafeString:
        return change_diff(row.before, row.after)

    @admin.display(description="Before")
    def before_json(self, row: JobChange) -> SafeString:
        return format_html("<pre>{}</pre>", json.dumps(row.before, indent=2))

    @admin.display(description="After")
    def after_json(self, row: JobChange) -> SafeString:
        return format_html("<pre>{}</pre>", json.dumps(row.after, indent=2))


# Delivery outcomes drawn with the run statuses' badge colours.
DELIVERY_BADGES = {
    Alert.Delivery.DELIVERED: "success",
    Alert.Delivery.FAILED: "error",
    Alert.Delivery.PENDING: "running",
    Alert.Delivery.NO_CHANNELS: "missed",
}


class AlertAdmin(JobHistoryAdmin):
    """Every alert raised, newest first, and whether its channels took it."""

    changelist_title = "Alert log"
    list_display = ("occurred_at", "event", "job_link", "run_time", "delivery_badge", "message")
    list_display_links = ("occurred_at",)
    list_filter = ("event", "delivery", JobIdFilter, "occurred_at")
    search_fields = ("job_id", "message")
    fields = (
        "job_link", "event", "run_time", "occurred_at", "message", "delivery_badge",
        "delivery_detail",
    )
    readonly_fields = fields

    def get_queryset(self, request: HttpRequest) -> QuerySet[Alert]:
        return selectors.alert_queryset()

    @admin.display(description="Delivery", ordering="delivery")
    def delivery_badge(self, row: Alert) -> SafeString:
        return format_html(
            '<span class="scheduler-badge scheduler-status-{}" title="{}">{}</span>',
            DELIVERY_BADGES.get(row.delivery, ""), row.delivery_detail, row.get_delivery_display(),
        )
