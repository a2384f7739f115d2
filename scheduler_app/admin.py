"""
The scheduler in Django's admin: jobs, their executions, the audit trail, a dashboard.

This replaces django-apscheduler's own registrations, which let a user edit
`next_run_time` without the pickled state (the scheduler then spins), run jobs inside
the web request, and show neither the trigger nor the paused state. Here every change
goes through `scheduler_app.services` with source "admin", every read through
`selectors` (and `dashboard` for the dashboard page), and the raw job state is never
editable. Permissions are the API's: viewing needs `django_apscheduler.view_djangojob`,
changing needs `django_apscheduler.change_djangojob`; nobody adds or deletes jobs here.
"""

from __future__ import annotations

import json
import zoneinfo
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.contrib import admin, messages
from django.contrib.admin.utils import quote, unquote
from django.contrib.admin.views.main import ChangeList
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.decorators import method_decorator
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString
from django.utils.text import Truncator
from django.utils.timesince import timesince, timeuntil
from django.views.decorators.http import require_POST
from django_apscheduler.models import DjangoJob, DjangoJobExecution

from scheduler_app import dashboard, selectors, services, triggers
from scheduler_app.conf import app_settings
from scheduler_app.exceptions import (
    InvalidTrigger,
    JobNotFound,
    JobStateConflict,
    SchedulerError,
    VersionConflict,
)
from scheduler_app.forms import FireTime, ScheduleForm
from scheduler_app.models import JobChange, Source
from scheduler_app.registry import TRIGGER_TYPES, registry

VIEW_JOBS = "django_apscheduler.view_djangojob"
CHANGE_JOBS = "django_apscheduler.change_djangojob"
RECENT_COUNT = 10
EXCEPTION_SUMMARY_LENGTH = 80
STATUS_LABELS = {
    "queued": "Queued",
    "running": "Running",
    "success": "Succeeded",
    "error": "Failed",
    "missed": "Missed",
    "max_instances": "Skipped: max instances",
    "lost": "Lost",
}
ADMIN_CSS = {"all": ("scheduler_app/admin.css",)}

# django-apscheduler's admin.py is imported first (its app comes first in
# INSTALLED_APPS); take its registrations back before making ours.
for _model in (DjangoJob, DjangoJobExecution):
    if admin.site.is_registered(_model):
        admin.site.unregister(_model)

# The admin index links to the dashboard. An app's admin/index.html cannot override
# django.contrib.admin's (which comes first in INSTALLED_APPS), so name ours on the site,
# unless the project already chose an index template of its own.
if admin.site.index_template is None:
    admin.site.index_template = "admin/scheduler_app/index.html"


def can_view_jobs(user: Any) -> bool:
    return user.has_perm(VIEW_JOBS) or user.has_perm(CHANGE_JOBS)


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
        return format_html('<span class="scheduler-muted">{}</span>', "no schedule change")
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
    return reverse("admin:django_apscheduler_djangojobexecution_change", args=[execution_id])


def job_url(job_id: str) -> str:
    return reverse("admin:django_apscheduler_djangojob_change", args=[quote(job_id)])


def _actor(request: HttpRequest) -> str:
    return request.user.get_username()


# Operations: the four things a user does to jobs, for list actions and change-page buttons.


@dataclass(frozen=True)
class JobOperation:
    """One service call on a job, and how to tell the user what it did to several."""

    name: str
    label: str
    call: Callable[..., bool]
    done: tuple[str, str]
    unchanged: tuple[str, str]


def _pause(**kwargs: Any) -> bool:
    return services.pause_job(**kwargs).changed


def _resume(**kwargs: Any) -> bool:
    return services.resume_job(**kwargs).changed


def _run_now(**kwargs: Any) -> bool:
    services.request_job_run(**kwargs)
    return True


def _reset(**kwargs: Any) -> bool:
    return services.reset_job(**kwargs).changed


OPERATIONS = {
    operation.name: operation
    for operation in (
        JobOperation(
            "pause", "Pause", _pause,
            done=("%(count)d job was paused: %(jobs)s.", "%(count)d jobs were paused: %(jobs)s."),
            unchanged=(
                "%(count)d job was already paused: %(jobs)s.",
                "%(count)d jobs were already paused: %(jobs)s.",
            ),
        ),
        JobOperation(
            "resume", "Resume", _resume,
            done=(
                "%(count)d job was resumed: %(jobs)s.",
                "%(count)d jobs were resumed: %(jobs)s.",
            ),
            unchanged=(
                "%(count)d job was not paused: %(jobs)s.",
                "%(count)d jobs were not paused: %(jobs)s.",
            ),
        ),
        JobOperation(
            "run", "Run now", _run_now,
            done=(
                "%(count)d job was sent to the scheduler process to run now: %(jobs)s.",
                "%(count)d jobs were sent to the scheduler process to run now: %(jobs)s.",
            ),
            unchanged=("", ""),
        ),
        JobOperation(
            "reset", "Reset to code default", _reset,
            done=(
                "%(count)d job was reset to its code default: %(jobs)s.",
                "%(count)d jobs were reset to their code defaults: %(jobs)s.",
            ),
            unchanged=(
                "%(count)d job already had its code default: %(jobs)s.",
                "%(count)d jobs already had their code defaults: %(jobs)s.",
            ),
        ),
    )
}


FAILED = (
    "%(count)d job could not be changed (%(operation)s): ",
    "%(count)d jobs could not be changed (%(operation)s): ",
)


def _plural(count: int, forms: tuple[str, str]) -> str:
    return forms[0] if count == 1 else forms[1]


def apply_operation(
    request: HttpRequest,
    operation: JobOperation,
    job_ids: Iterable[str],
    *,
    expected_version: int | None = None,
) -> None:
    """Run an operation on each job in turn and report, pluralised, what happened to which."""
    changed, unchanged, failed = [], [], []
    for job_id in job_ids:
        try:
            did_change = operation.call(
                job_id=job_id,
                actor=_actor(request),
                source=Source.ADMIN,
                expected_version=expected_version,
            )
        except SchedulerError as error:
            failed.append(error.message)
        else:
            (changed if did_change else unchanged).append(job_id)
    for jobs, forms, level in (
        (changed, operation.done, messages.SUCCESS),
        (unchanged, operation.unchanged, messages.INFO),
    ):
        if jobs:
            values = {"count": len(jobs), "jobs": ", ".join(jobs)}
            messages.add_message(request, level, _plural(len(jobs), forms) % values)
    if failed:
        text = _plural(len(failed), FAILED)
        values = {"count": len(failed), "operation": operation.label.lower()}
        messages.error(request, text % values + " ".join(failed))
    if operation.name == "run" and changed and not selectors.scheduler_status().running:
        messages.warning(
            request, "No scheduler process is running: the runs start when one does."
        )


# Jobs


class EnabledFilter(admin.SimpleListFilter):
    title = "enabled"
    parameter_name = "enabled"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("yes", "Running on schedule"), ("no", "Paused")]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        if self.value() in ("yes", "no"):
            return queryset.filter(next_run_time__isnull=self.value() == "no")
        return queryset


class TriggerTypeFilter(admin.SimpleListFilter):
    title = "trigger type"
    parameter_name = "trigger"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [(name, name) for name in TRIGGER_TYPES]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        if self.value():
            return queryset.filter(record__trigger_type=self.value())
        return queryset


class LastStatusFilter(admin.SimpleListFilter):
    title = "last run"
    parameter_name = "last_status"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [*status_choices(), ("never", "Never ran")]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        value = self.value()
        if value == "never":
            return queryset.filter(last_execution_id__isnull=True)
        if value in selectors.EXECUTION_STATUSES_BY_SLUG:
            with_status = selectors.execution_queryset(status=value).order_by().values("id")
            return queryset.filter(last_execution_id__in=with_status)
        return queryset


class BrokenFilter(admin.SimpleListFilter):
    title = "broken"
    parameter_name = "broken"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("yes", "Broken"), ("no", "Can run")]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        if self.value() not in ("yes", "no"):
            return queryset
        # Whether a job can run is only known by unpickling its state and importing its
        # function, which SQL cannot do. This reads every job's state in one query and
        # checks it here: linear in the number of jobs, fine for the hundreds a
        # scheduler holds, and the page still costs a constant number of queries.
        states = DjangoJob.objects.values_list("id", "job_state")
        broken = [
            job_id
            for job_id, job_state in states
            if selectors.broken_func_ref(job_state=job_state) is not None
        ]
        if self.value() == "yes":
            return queryset.filter(id__in=broken)
        return queryset.exclude(id__in=broken)


class JobChangeList(ChangeList):
    """The jobs changelist, with each row's `JobView` read in one batch for the page."""

    def get_results(self, request: HttpRequest) -> None:
        super().get_results(request)
        rows = list(self.result_list)
        for row, view in zip(rows, selectors.job_views(rows), strict=True):
            row.view = view
        self.result_list = rows


class SchedulerModelAdmin(admin.ModelAdmin):
    """Our admin pages: our style sheet, and a plain title on the list."""

    changelist_title = ""

    class Media:
        css = ADMIN_CSS

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        context = {"title": self.changelist_title, **(extra_context or {})}
        return super().changelist_view(request, context)


@admin.register(DjangoJob)
class JobAdmin(SchedulerModelAdmin):
    """Jobs: list, filter, pause, resume, run now, reset and reschedule."""

    changelist_title = "Scheduled jobs"
    list_display = (
        "id", "job_name", "schedule", "next_run", "enabled", "last_run", "flags",
    )
    list_display_links = ("id",)
    list_filter = (EnabledFilter, TriggerTypeFilter, LastStatusFilter, BrokenFilter)
    search_fields = ("id", "record__name")
    search_help_text = "Search by job id or name."
    ordering = ("id",)
    list_per_page = 50
    actions = ("pause_jobs", "resume_jobs", "run_jobs_now", "reset_jobs")
    change_list_template = "admin/scheduler_app/job_change_list.html"
    change_template = "admin/scheduler_app/job_change.html"
    dashboard_template = "admin/scheduler_app/dashboard.html"

    def get_queryset(self, request: HttpRequest) -> QuerySet[DjangoJob]:
        return selectors.job_queryset()

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[ChangeList]:
        return JobChangeList

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    # Columns: each row carries the JobView that JobChangeList attached.

    @admin.display(description="Name")
    def job_name(self, row: DjangoJob) -> str:
        return row.view.name

    @admin.display(description="Schedule")
    def schedule(self, row: DjangoJob) -> str:
        return row.view.description

    @admin.display(description="Next run", ordering="next_run_time")
    def next_run(self, row: DjangoJob) -> SafeString:
        moment = row.view.next_run_time
        if moment is None:
            return format_html('<span class="scheduler-muted">{}</span>', "paused")
        return format_html("{}<br><small>{}</small>", relative_time(moment), time_cell(moment))

    @admin.display(description="Enabled", boolean=True)
    def enabled(self, row: DjangoJob) -> bool:
        return row.view.enabled

    @admin.display(description="Last run")
    def last_run(self, row: DjangoJob) -> SafeString:
        execution = row.view.last_execution
        if execution is None:
            return format_html('<span class="scheduler-muted">{}</span>', "never")
        return format_html(
            '<a href="{}">{}</a><br><small>{}</small>',
            execution_url(execution.id),
            status_badge(execution.status),
            relative_time(execution.run_time),
        )

    @admin.display(description="Flags")
    def flags(self, row: DjangoJob) -> SafeString:
        view = row.view
        flags = [
            (name, help_text, label)
            for shown, name, label, help_text in (
                (view.broken, "broken", "broken", "Its function cannot be imported."),
                (view.orphaned, "orphaned", "orphaned", "No longer declared in code."),
                (
                    not view.orphaned and not view.is_default_schedule,
                    "custom", "custom schedule", "Not the schedule its code declares.",
                ),
            )
            if shown
        ]
        return format_html_join(
            " ", '<span class="scheduler-badge scheduler-flag-{}" title="{}">{}</span>', flags
        )

    # Actions: one line each; the services do the work.

    @admin.action(description="Pause selected jobs", permissions=["change"])
    def pause_jobs(self, request: HttpRequest, queryset: QuerySet) -> None:
        apply_operation(request, OPERATIONS["pause"], self._ids(queryset))

    @admin.action(description="Resume selected jobs", permissions=["change"])
    def resume_jobs(self, request: HttpRequest, queryset: QuerySet) -> None:
        apply_operation(request, OPERATIONS["resume"], self._ids(queryset))

    @admin.action(description="Run selected jobs now (in the scheduler process)",
                  permissions=["change"])
    def run_jobs_now(self, request: HttpRequest, queryset: QuerySet) -> None:
        apply_operation(request, OPERATIONS["run"], self._ids(queryset))

    @admin.action(description="Reset selected jobs to their code default",
                  permissions=["change"])
    def reset_jobs(self, request: HttpRequest, queryset: QuerySet) -> None:
        apply_operation(request, OPERATIONS["reset"], self._ids(queryset))

    @staticmethod
    def _ids(queryset: QuerySet) -> list[str]:
        return list(queryset.order_by("id").values_list("id", flat=True))

    # Pages of our own: the change page, its preview endpoint and buttons, the dashboard.

    def get_urls(self) -> list[Any]:
        def wrap(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
            return self.admin_site.admin_view(view)

        prefix = f"{self.opts.app_label}_{self.opts.model_name}"
        return [
            path("dashboard/", wrap(self.dashboard_view), name=f"{prefix}_dashboard"),
            path("<path:object_id>/preview/", wrap(self.preview_view), name=f"{prefix}_preview"),
            path(
                "<path:object_id>/operations/<str:operation>/",
                wrap(self.operation_view),
                name=f"{prefix}_operation",
            ),
            *super().get_urls(),
        ]

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        """The job page: its schedule form, and read-only panels on everything else."""
        if not self.has_view_or_change_permission(request):
            raise PermissionDenied
        job_id = unquote(object_id)
        try:
            job = selectors.get_job(job_id=job_id)
        except JobNotFound:
            return self._get_obj_does_not_exist_redirect(request, self.opts, object_id)
        conflict: list[JobChange] = []
        if request.method == "POST":
            if not self.has_change_permission(request):
                raise PermissionDenied
            form = ScheduleForm(request.POST)
            if form.is_valid():
                try:
                    return self._save_schedule(request, job, form)
                except VersionConflict as error:
                    conflict = list(
                        selectors.change_queryset(job_id=job_id).filter(
                            version__gt=form.cleaned_data["version"]
                        )[:RECENT_COUNT]
                    )
                    job = selectors.get_job(job_id=job_id)
                    # Keep the user's edits, now against the current version: saving
                    # again is a deliberate choice made after seeing the other change.
                    form = ScheduleForm({**request.POST.dict(), "version": error.current})
                except InvalidTrigger as error:
                    form.add_trigger_error(error)
                except (JobStateConflict, JobNotFound) as error:
                    form.add_error(None, error.message)
        else:
            form = ScheduleForm(initial=ScheduleForm.initial_for(job))
        return self._render_change_page(request, job, form, conflict)

    def _save_schedule(self, request: HttpRequest, job: selectors.JobView, form: ScheduleForm
                       ) -> HttpResponse:
        outcome = services.reschedule_job(
            job_id=job.id,
            trigger_spec=form.trigger_spec,
            actor=_actor(request),
            source=Source.ADMIN,
            expected_version=form.cleaned_data["version"],
        )
        self.message_user(
            request, f"{outcome.message} {job.id}: {outcome.job.description}.", messages.SUCCESS
        )
        if "_continue" in request.POST:
            return redirect(job_url(job.id))
        return redirect("admin:django_apscheduler_djangojob_changelist")

    def _render_change_page(
        self,
        request: HttpRequest,
        job: selectors.JobView,
        form: ScheduleForm,
        conflict: list[JobChange],
    ) -> HttpResponse:
        can_change = self.has_change_permission(request)
        if not can_change:
            for field in form.fields.values():
                field.disabled = True
        declaration = registry.get(job.id)
        executions = [
            selectors.ExecutionView.from_row(row)
            for row in selectors.execution_queryset(job_id=job.id)[:RECENT_COUNT]
        ]
        changes = list(selectors.change_queryset(job_id=job.id)[:RECENT_COUNT])
        context = {
            **self.admin_site.each_context(request),
            "title": f"Job {job.id}",
            "subtitle": job.name,
            "opts": self.opts,
            "media": self.media + form.media,
            "job": job,
            "form": form,
            "can_change": can_change,
            "operations": self._operations_for(job) if can_change else [],
            "conflict": [(change, change_diff(change.before, change.after)) for change in conflict],
            "declaration": declaration,
            "default_schedule": _describe_spec(job.default_schedule),
            "arguments": _arguments(job),
            "executions": [
                (execution, _started(execution), relative_time(execution.run_time))
                for execution in executions
            ],
            "changes": [(change, change_diff(change.before, change.after)) for change in changes],
            "preview_url": reverse(
                "admin:django_apscheduler_djangojob_preview", args=[quote(job.id)]
            ),
            "time_zones": sorted(zoneinfo.available_timezones()),
            "scheduler_zone": app_settings.timezone.key,
            "upcoming": [FireTime(at=moment, warning=None).display for moment in job.upcoming],
            "next_run_relative": job.next_run_time and relative_time(job.next_run_time),
        }
        return TemplateResponse(request, self.change_template, context)

    @staticmethod
    def _operations_for(job: selectors.JobView) -> list[JobOperation]:
        toggle = OPERATIONS["pause"] if job.enabled else OPERATIONS["resume"]
        buttons = [toggle, OPERATIONS["run"]]
        if not job.orphaned and not job.is_default_schedule:
            buttons.append(OPERATIONS["reset"])
        return buttons

    def preview_view(self, request: HttpRequest, object_id: str) -> JsonResponse:
        """The next fire times of the schedule the form holds, for the live preview."""
        if not self.has_view_or_change_permission(request):
            raise PermissionDenied
        if not selectors.job_exists(job_id=unquote(object_id)):
            raise Http404("No such job.")
        data = request.GET.copy()
        data.setdefault("version", "0")  # the preview does not save: any version will do
        form = ScheduleForm(data)
        if not form.is_valid():
            return JsonResponse({"valid": False, "errors": form.errors}, status=400)
        times = form.preview()
        zone = triggers.trigger_fields(form.built_trigger)["trigger_args"].get("timezone")
        return JsonResponse(
            {
                "valid": True,
                "description": triggers.describe_trigger(form.built_trigger),
                "timezone": zone or app_settings.timezone.key,
                "times": [moment.as_json() for moment in times],
            }
        )

    @method_decorator(require_POST)
    def operation_view(
        self, request: HttpRequest, object_id: str, operation: str
    ) -> HttpResponseRedirect:
        """A change-page button: the list action's operation, for one job at one version."""
        if operation not in OPERATIONS:
            raise Http404("No such operation.")
        if not self.has_change_permission(request):
            raise PermissionDenied
        job_id = unquote(object_id)
        version = request.POST.get("version", "")
        apply_operation(
            request,
            OPERATIONS[operation],
            [job_id],
            expected_version=int(version) if version.isdigit() else None,
        )
        return redirect(job_url(job_id))

    def dashboard_view(self, request: HttpRequest) -> HttpResponse:
        if not self.has_view_or_change_permission(request):
            raise PermissionDenied
        context = {
            **self.admin_site.each_context(request),
            "title": "Scheduler dashboard",
            "opts": self.opts,
            "media": self.media,
            "health": dashboard.scheduler_health(),
            "timeline": dashboard.timeline(),
            "failures": [
                (execution, relative_time(execution.run_time))
                for execution in dashboard.recent_failures()
            ],
            "trends": dashboard.job_trends(),
            "trend_window": dashboard.TREND_WINDOW,
            "sparkline_size": (dashboard.SPARKLINE_WIDTH, dashboard.SPARKLINE_HEIGHT),
        }
        return TemplateResponse(request, self.dashboard_template, context)


def _describe_spec(spec: dict[str, Any] | None) -> str | None:
    if spec is None:
        return None
    trigger = triggers.build_trigger(spec, timezone=app_settings.timezone, allow_past=True)
    return triggers.describe_trigger(trigger)


def _arguments(job: selectors.JobView) -> str:
    return json.dumps({"args": list(job.args), "kwargs": job.kwargs}, indent=2, default=repr)


def _started(execution: selectors.ExecutionView) -> datetime | None:
    # django-apscheduler records when a run finished and how long it took, not its start.
    if execution.finished is None or execution.duration is None:
        return None
    return execution.finished - timedelta(seconds=execution.duration)


# History: executions and the audit trail, read-only, for whoever may view jobs.


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


class JobIdFilter(admin.SimpleListFilter):
    """Rows of one job; lists the job ids the rows mention (one query)."""

    title = "job"
    parameter_name = "job_id"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        ids = model_admin.model.objects.order_by("job_id").values_list("job_id", flat=True)
        return [(job_id, job_id) for job_id in ids.distinct()]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        return queryset.filter(job_id=self.value()) if self.value() else queryset


class ExecutionStatusFilter(admin.SimpleListFilter):
    """Every status an execution can have (the model's choices omit missed and max-instances)."""

    title = "status"
    parameter_name = "status"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return status_choices()

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        if self.value() in selectors.EXECUTION_STATUSES_BY_SLUG:
            return queryset.filter(status=selectors.EXECUTION_STATUSES_BY_SLUG[self.value()])
        return queryset


@admin.register(DjangoJobExecution)
class ExecutionAdmin(JobHistoryAdmin):
    """Every recorded run, newest first; the traceback on the detail page."""

    changelist_title = "Job executions"
    list_display = (
        "scheduled", "job_link", "status_badge", "ran", "duration_seconds", "exception_summary",
    )
    list_display_links = ("scheduled",)
    list_filter = (ExecutionStatusFilter, JobIdFilter, "run_time")
    search_fields = ("job__id", "exception")
    fields = (
        "job_link", "status_badge", "scheduled", "started", "finished_at", "duration_seconds",
        "exception", "traceback_block",
    )
    readonly_fields = fields

    def get_queryset(self, request: HttpRequest) -> QuerySet[DjangoJobExecution]:
        return selectors.execution_queryset()

    @admin.display(description="Status", ordering="status")
    def status_badge(self, row: DjangoJobExecution) -> SafeString:
        return status_badge(selectors.ExecutionView.from_row(row).status)

    @admin.display(description="Scheduled for", ordering="run_time")
    def scheduled(self, row: DjangoJobExecution) -> SafeString:
        return time_cell(row.run_time)

    @admin.display(description="Started")
    def started(self, row: DjangoJobExecution) -> SafeString:
        return time_cell(_started(selectors.ExecutionView.from_row(row)))

    @admin.display(description="Finished", ordering="finished")
    def finished_at(self, row: DjangoJobExecution) -> SafeString:
        return time_cell(selectors.ExecutionView.from_row(row).finished)

    @admin.display(description="Started → finished")
    def ran(self, row: DjangoJobExecution) -> SafeString:
        # Times of day only: a run starts and ends close to its scheduled time, whose
        # date is in the column before.
        execution = selectors.ExecutionView.from_row(row)
        started, finished = _started(execution), execution.finished
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

    @admin.display(description="Duration", ordering="duration")
    def duration_seconds(self, row: DjangoJobExecution) -> str:
        return "—" if row.duration is None else f"{row.duration} s"

    @admin.display(description="Traceback")
    def traceback_block(self, row: DjangoJobExecution) -> SafeString:
        if not row.traceback:
            return format_html('<span class="scheduler-muted">{}</span>', "none")
        return format_html('<pre class="scheduler-traceback">{}</pre>', row.traceback)


@admin.register(JobChange)
class JobChangeAdmin(JobHistoryAdmin):
    """The audit trail: who changed which job, when, through which front door, and how."""

    changelist_title = "Audit trail"
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
