"""The job pages: the list with its columns and actions, the change page with its schedule
form, the live-preview endpoint and the operation buttons."""

from __future__ import annotations

import json
import zoneinfo
from collections.abc import Callable
from typing import Any

from django.contrib import admin, messages
from django.contrib.admin.utils import quote, unquote
from django.contrib.admin.views.main import ChangeList
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseBadRequest,
    JsonResponse,
)
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.decorators import method_decorator
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString
from django.utils.text import smart_split, unescape_string_literal
from django.views.decorators.http import require_POST
from django_apscheduler.models import DjangoJob

from scheduler_app import selectors, services, triggers
from scheduler_app.admin.base import (
    CHANGE_JOBS,
    DELETE_JOBS,
    SchedulerModelAdmin,
    actor,
    can_view_jobs,
)
from scheduler_app.admin.controls import (
    BackfillForm,
    JobControlsMixin,
    PauseForm,
    PolicyForm,
    RunForm,
)
from scheduler_app.admin.creation import JobCreationMixin, is_deletable
from scheduler_app.admin.dashboard import DashboardPageMixin
from scheduler_app.admin.display import (
    change_diff,
    execution_url,
    job_url,
    lateness,
    muted,
    relative_time,
    status_badge,
    time_cell,
)
from scheduler_app.admin.filters import (
    BrokenFilter,
    EnabledFilter,
    LastStatusFilter,
    OriginFilter,
    TriggerTypeFilter,
)
from scheduler_app.admin.operations import OPERATIONS, JobOperation, apply_operation
from scheduler_app.conf import app_settings
from scheduler_app.exceptions import InvalidTrigger, JobNotFound, JobStateConflict, VersionConflict
from scheduler_app.forms import FireTime, ScheduleForm
from scheduler_app.models import JobChange, Source
from scheduler_app.pagination import KeysFirstPaginator
from scheduler_app.policy import POLICY_FIELDS
from scheduler_app.registry import registry

RECENT_COUNT = 10


class JobChangeList(ChangeList):
    """The jobs changelist, with each row's `JobView` read in one batch for the page."""

    def get_results(self, request: HttpRequest) -> None:
        super().get_results(request)
        rows = list(self.result_list)
        for row, view in zip(rows, selectors.job_views(rows), strict=True):
            row.view = view
        self.result_list = rows


class JobAdmin(JobControlsMixin, DashboardPageMixin, JobCreationMixin, SchedulerModelAdmin):
    """Jobs: list, filter, add, delete, pause, resume, run now, reset and reschedule."""

    changelist_title = "Jobs"
    list_display = (
        "id", "job_name", "schedule", "next_run", "state", "last_run", "flags",
    )
    list_display_links = ("id",)
    list_filter = (EnabledFilter, TriggerTypeFilter, OriginFilter, LastStatusFilter, BrokenFilter)
    search_fields = ("id", "record__name")
    search_help_text = "Search by job id or name."
    ordering = ("id",)
    list_per_page = 50
    paginator = KeysFirstPaginator
    actions = ("pause_jobs", "resume_jobs", "run_jobs_now", "reset_jobs")
    change_list_template = "admin/scheduler_app/job_change_list.html"
    change_template = "admin/scheduler_app/job_change.html"

    def get_queryset(self, request: HttpRequest) -> QuerySet[DjangoJob]:
        return selectors.job_queryset()

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[ChangeList]:
        return JobChangeList

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet, search_term: str
    ) -> tuple[QuerySet, bool]:
        # As Django's search over `search_fields` (every word, or quoted phrase, in
        # the id or the name), each word through the API's indexed lookups.
        for word in smart_split(search_term):
            if word.startswith(('"', "'")) and word[0] == word[-1]:
                word = unescape_string_literal(word)
            queryset = queryset.filter(selectors.job_matches(word))
        return queryset, False

    # django-apscheduler's permissions on its job model, not the proxy's own.

    def has_module_permission(self, request: HttpRequest) -> bool:
        return can_view_jobs(request.user)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return can_view_jobs(request.user)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return request.user.has_perm(CHANGE_JOBS)

    # Columns: each row carries the JobView that JobChangeList attached.

    @admin.display(description="Name")
    def job_name(self, row: DjangoJob) -> str:
        return row.view.name

    @admin.display(description="Schedule")
    def schedule(self, row: DjangoJob) -> str:
        return row.view.description

    @admin.display(description="Next run", ordering="next_run_time")
    def next_run(self, row: DjangoJob) -> SafeString:
        view = row.view
        moment = view.next_run_time
        if moment is None:
            if view.paused_reason:
                return format_html(
                    '{}<br><small class="scheduler-paused-reason">{}</small>',
                    muted("paused"), view.paused_reason,
                )
            return muted("finished" if view.state == "finished" else "paused")
        return format_html("{}<br><small>{}</small>", relative_time(moment), time_cell(moment))

    @admin.display(description="State")
    def state(self, row: DjangoJob) -> SafeString:
        return format_html('<span class="scheduler-state scheduler-state-{0}">{0}</span>',
                           row.view.state)

    @admin.display(description="Last run")
    def last_run(self, row: DjangoJob) -> SafeString:
        execution = row.view.last_execution
        if execution is None:
            return muted("never")
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
                (view.origin == "runtime", "runtime", "runtime",
                 f"Created at runtime; calls {view.function}."),
                (
                    view.origin == "code" and not view.orphaned
                    and not view.is_default_schedule,
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
            path("add/preview/", wrap(self.preview_view), name=f"{prefix}_add_preview"),
            path("<path:object_id>/preview/", wrap(self.preview_view), name=f"{prefix}_preview"),
            path(
                "<path:object_id>/operations/<str:operation>/",
                wrap(self.operation_view),
                name=f"{prefix}_operation",
            ),
            *self.control_urls(wrap, prefix),
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
        job_id = _job_id(object_id)
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
            actor=actor(request),
            source=Source.ADMIN,
            expected_version=form.cleaned_data["version"],
        )
        self.message_user(
            request, f"{outcome.message} {job.id}: {outcome.job.description}.", messages.SUCCESS
        )
        if "_continue" in request.POST:
            return redirect(job_url(job.id))
        return redirect("admin:scheduler_app_job_changelist")

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
        function = registry.get_function(job.function)
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
            "policy_form": PolicyForm.for_job(job),
            "pause_form": PauseForm(initial={"version": job.version}),
            "run_form": RunForm(initial={"version": job.version}),
            "backfill_form": BackfillForm(initial={"version": job.version}),
            "can_delete": request.user.has_perm(DELETE_JOBS) and is_deletable(job),
            "conflict": _with_diffs(conflict),
            "function": function,
            "default_schedule": _describe_spec(job.default_schedule),
            "arguments": _arguments(job),
            "executions": [
                (execution, status_badge(execution.status), lateness(execution),
                 relative_time(execution.run_time))
                for execution in executions
            ],
            "changes": _with_diffs(changes),
            "preview_url": reverse(
                "admin:scheduler_app_job_preview", args=[quote(job.id)]
            ),
            "time_zones": sorted(zoneinfo.available_timezones()),
            "scheduler_zone": app_settings.timezone.key,
            "upcoming": [FireTime(at=moment, warning=None).display for moment in job.upcoming],
            "next_run_relative": job.next_run_time and relative_time(job.next_run_time),
        }
        return TemplateResponse(request, self.change_template, context)

    @staticmethod
    def _operations_for(job: selectors.JobView) -> list[JobOperation]:
        # A running job's Pause is a form of its own (reason, until): see the template.
        buttons = [] if job.enabled else [OPERATIONS["resume"]]
        buttons.append(OPERATIONS["run"])
        declaration = registry.get(job.id) if job.origin == "code" else None
        if declaration is not None and (
            not job.is_default_schedule or _policy_of(job) != declaration.policy
        ):
            buttons.append(OPERATIONS["reset"])
        return buttons

    def preview_view(self, request: HttpRequest, object_id: str | None = None) -> JsonResponse:
        """The next fire times of the schedule the form holds, for the live preview
        (of a job's page, or of the "Add job" page without an `object_id`)."""
        if not (self.has_view_or_change_permission(request) or self.has_add_permission(request)):
            raise PermissionDenied
        if object_id is not None and not selectors.job_exists(job_id=_job_id(object_id)):
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
    ) -> HttpResponse:
        """A change-page button: the list action's operation, for one job at one version."""
        if operation not in OPERATIONS:
            raise Http404("No such operation.")
        if not self.has_change_permission(request):
            raise PermissionDenied
        job_id = _job_id(object_id)
        version = request.POST.get("version", "")
        # The button always sends the version the page showed: without one (or with
        # '²', which str.isdigit() accepts and int() does not) the check would be skipped.
        if not (version.isascii() and version.isdigit()):
            return HttpResponseBadRequest("version: a whole number is required.")
        apply_operation(request, OPERATIONS[operation], [job_id], expected_version=int(version))
        return redirect(job_url(job_id))


def _policy_of(job: selectors.JobView) -> dict[str, Any]:
    return {name: getattr(job, name) for name in POLICY_FIELDS}


def _job_id(object_id: str) -> str:
    """The job id in an admin URL; 404 for one no stored job can have."""
    job_id = unquote(object_id)
    if selectors.impossible_job_id(job_id):
        raise Http404("No such job.")
    return job_id


def _describe_spec(spec: dict[str, Any] | None) -> str | None:
    if spec is None:
        return None
    trigger = triggers.build_trigger(spec, timezone=app_settings.timezone, allow_past=True)
    return triggers.describe_trigger(trigger)


def _arguments(job: selectors.JobView) -> str:
    return json.dumps({"args": list(job.args), "kwargs": job.kwargs}, indent=2, default=repr)


def _with_diffs(changes: list[JobChange]) -> list[tuple[JobChange, SafeString]]:
    return [(change, change_diff(change.before, change.after)) for change in changes]
