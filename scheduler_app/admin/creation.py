"""The job pages' "Add job" and delete: runtime jobs made and removed in the admin.

"Add job" picks a registered function (each shown with its docstring and parameters),
takes its keyword arguments as JSON, a run policy and the schedule form with its live
preview, and saves through `services.create_job`, which checks all of it as the API
does. Delete is Django's confirmation page, with the deletion done by
`services.delete_job`: only runtime jobs (and jobs no longer declared in code) can be
deleted, and their runs and audit trail stay.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.translation import ngettext

from scheduler_app import selectors, services
from scheduler_app.admin.base import ADD_JOBS, DELETE_JOBS, actor
from scheduler_app.admin.display import job_url
from scheduler_app.binding import describe_parameter
from scheduler_app.conf import app_settings
from scheduler_app.exceptions import (
    InvalidInput,
    InvalidTrigger,
    JobAlreadyExists,
    SchedulerError,
)
from scheduler_app.forms import JobDefinitionForm, ScheduleForm
from scheduler_app.models import Source
from scheduler_app.registry import registry


class JobCreationMixin:
    """`add_view` and deletion for `JobAdmin`."""

    add_template = "admin/scheduler_app/job_add.html"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(ADD_JOBS)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        if not request.user.has_perm(DELETE_JOBS):
            return False
        return obj is None or is_deletable(selectors.job_views([obj])[0])

    def add_view(
        self, request: HttpRequest, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        if not self.has_add_permission(request):
            raise PermissionDenied
        if request.method == "POST":
            form = JobDefinitionForm(request.POST)
            schedule = ScheduleForm({**request.POST.dict(), "version": "0"})
            if form.is_valid() and schedule.is_valid():
                response = self._create(request, form, schedule)
                if response is not None:
                    return response
        else:
            form = JobDefinitionForm()
            schedule = ScheduleForm(initial={"version": 0, "trigger": "cron"})
        context = {
            **self.admin_site.each_context(request),
            "title": "Add job",
            "opts": self.opts,
            "form": form,
            "schedule": schedule,
            "functions": [
                (function, [describe_parameter(p) for p in function.parameters])
                for function in registry.functions()
            ],
            "media": self.media + form.media,
            "preview_url": reverse("admin:scheduler_app_job_add_preview"),
            "scheduler_zone": app_settings.timezone.key,
        }
        return TemplateResponse(request, self.add_template, context)

    def _create(
        self, request: HttpRequest, form: JobDefinitionForm, schedule: ScheduleForm
    ) -> HttpResponse | None:
        """Create the job; None (with the errors on the forms) if it was refused."""
        try:
            outcome = services.create_job(
                definition=form.definition(schedule.trigger_spec),
                actor=actor(request),
                source=Source.ADMIN,
            )
        except InvalidTrigger as error:
            schedule.add_trigger_error(error)
        except InvalidInput as error:
            form.add_definition_error(error.field, error.detail)
        except JobAlreadyExists as error:
            form.add_error("id", error.message)
        else:
            job = outcome.job
            self.message_user(request, f"Job created: {job.id}, {job.description}.",
                              messages.SUCCESS)
            return redirect(job_url(job.id))
        return None

    # Deletion: Django's confirmation pages, our service.

    def get_actions(self, request: HttpRequest) -> dict[str, Any]:
        actions = super().get_actions(request)
        if "delete_selected" in actions:
            function, name, _ = actions["delete_selected"]
            actions["delete_selected"] = (function, name, "Delete selected runtime jobs")
        return actions

    def get_deleted_objects(self, objs: Any, request: HttpRequest) -> tuple[Any, ...]:
        # Django would list, and check permissions on, every row that cascades from the
        # job; ours go nowhere: the runs and the audit trail are kept.
        jobs = list(objs)
        refused = {"job declared in code"} if any(
            not self.has_delete_permission(request, job) for job in jobs
        ) else set()
        return [f"Job {job.pk}" for job in jobs], {"jobs": len(jobs)}, refused, []

    def delete_model(self, request: HttpRequest, obj: Any) -> None:
        services.delete_job(job_id=obj.pk, actor=actor(request), source=Source.ADMIN)
        self.message_user(request, "Its runs and changes stay readable.", messages.INFO)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet) -> None:
        deleted, failed = [], []
        for job_id in queryset.order_by("id").values_list("id", flat=True):
            try:
                services.delete_job(job_id=job_id, actor=actor(request), source=Source.ADMIN)
            except SchedulerError as error:
                failed.append(error.message)
            else:
                deleted.append(job_id)
        if deleted:
            self.message_user(request, ngettext(
                "%(count)d job deleted: %(jobs)s. Its runs and changes stay readable.",
                "%(count)d jobs deleted: %(jobs)s. Their runs and changes stay readable.",
                len(deleted),
            ) % {"count": len(deleted), "jobs": ", ".join(deleted)}, messages.SUCCESS)
        if failed:
            self.message_user(request, " ".join(failed), messages.ERROR)

    def delete_view(
        self, request: HttpRequest, object_id: str, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        try:
            return super().delete_view(request, object_id, extra_context)
        except SchedulerError as error:
            # Changed or deleted by someone else between the confirmation and the click.
            self.message_user(request, error.message, messages.ERROR)
            return redirect("admin:scheduler_app_job_changelist")


def is_deletable(job: selectors.JobView) -> bool:
    """Whether a job may be deleted: created at runtime, or no longer declared in code."""
    return job.origin == "runtime" or job.orphaned
