"""The job page's operator controls beyond the schedule form: the run policy, a pause with
a reason and an end, a run with arguments, a restore of an earlier version, a backfill.
Each is a small form posted to its own URL, a thin caller of one service, answered with
a message and a redirect back to the job page."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponseRedirect
from django.shortcuts import redirect
from django.urls import path
from django.utils import timezone
from django.utils.decorators import method_decorator
from django.views.decorators.http import require_POST

from scheduler_app import services
from scheduler_app.admin.base import actor
from scheduler_app.admin.display import job_url
from scheduler_app.conf import app_settings
from scheduler_app.exceptions import SchedulerError
from scheduler_app.models import Source
from scheduler_app.selectors import JobView


class _JobControlForm(forms.Form):
    """A control's form: its fields, and the job version the page was loaded with."""

    version = forms.IntegerField(widget=forms.HiddenInput, min_value=0, required=False)

    def first_error(self) -> str:
        field, errors = next(iter(self.errors.items()))
        return f"{field}: {errors[0]}" if field != "__all__" else errors[0]


class PolicyForm(_JobControlForm):
    """The "Run policy" section: all four fields, shown with the job's current values."""

    max_instances = forms.IntegerField(
        label="Max instances", min_value=1, help_text="Runs of this job that may overlap."
    )
    coalesce = forms.BooleanField(
        label="Coalesce missed runs", required=False, help_text="Several missed runs run once."
    )
    misfire_grace_time = forms.IntegerField(
        label="Misfire grace time (s)", min_value=1, required=False,
        help_text="How late a run may start; empty: late runs always run.",
    )
    pause_after_failures = forms.IntegerField(
        label="Pause after failures", min_value=1, required=False,
        help_text="Pause the job when this many runs in a row fail; empty: never.",
    )
    alert_after = forms.IntegerField(
        label="Alert after (s)", min_value=1, required=False,
        help_text="Overdue when no run succeeds this long after one was due; "
        "empty: the default.",
    )

    @classmethod
    def for_job(cls, job: JobView) -> PolicyForm:
        return cls(initial={
            "version": job.version,
            "max_instances": job.max_instances,
            "coalesce": job.coalesce,
            "misfire_grace_time": job.misfire_grace_time,
            "pause_after_failures": job.pause_after_failures,
            "alert_after": job.alert_after,
        })

    @property
    def policy(self) -> dict[str, Any]:
        return {name: self.cleaned_data[name] for name in self.fields if name != "version"}


class PauseForm(_JobControlForm):
    """The Pause button's optional note and end."""

    reason = forms.CharField(label="Reason", required=False, max_length=500)
    until = forms.DateTimeField(
        label="Until", required=False,
        help_text=f"Resume by itself then (time in {app_settings.timezone}).",
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}),
    )

    def clean_until(self) -> datetime | None:
        until = self.cleaned_data["until"]
        if until is not None and timezone.is_naive(until):
            # A datetime-local input has no offset: it is a wall time in the scheduler's zone.
            until = until.replace(tzinfo=app_settings.timezone)
        return until


class _ArgumentsField(forms.JSONField):
    """Django's JSONField, showing an empty box (and its placeholder) rather than
    `null` while no arguments are given."""

    def prepare_value(self, value: Any) -> Any:
        return "" if value is None else super().prepare_value(value)


class RunForm(_JobControlForm):
    """Run now with keyword arguments for this run only, typed as a JSON object."""

    kwargs = _ArgumentsField(
        label="Arguments", required=False,
        help_text='A JSON object, e.g. {"limit": 100}; on top of the job\'s own arguments.',
        widget=forms.Textarea(attrs={"rows": 2, "cols": 40, "placeholder": '{"limit": 100}'}),
    )


class RevertForm(_JobControlForm):
    """A "Restore" button of the job's changes: the version to go back to."""

    to_version = forms.IntegerField(min_value=1, widget=forms.HiddenInput)


class BackfillForm(_JobControlForm):
    """Run what the schedule would have run between two times (wall times in the
    scheduler's zone)."""

    start = forms.DateTimeField(
        label="From", widget=forms.DateTimeInput(attrs={"type": "datetime-local", "step": 1})
    )
    end = forms.DateTimeField(
        label="To", widget=forms.DateTimeInput(attrs={"type": "datetime-local", "step": 1})
    )
    dry_run = forms.BooleanField(label="Only count them", required=False)

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        for name in ("start", "end"):
            if cleaned.get(name) is not None and timezone.is_naive(cleaned[name]):
                cleaned[name] = cleaned[name].replace(tzinfo=app_settings.timezone)
        return cleaned


class JobControlsMixin:
    """URLs and views of the controls, for `JobAdmin`."""

    def control_urls(self, wrap: Callable[..., Any], prefix: str) -> list[Any]:
        return [
            path("<path:object_id>/policy/", wrap(self.policy_view), name=f"{prefix}_policy"),
            path("<path:object_id>/pause/", wrap(self.pause_view), name=f"{prefix}_pause"),
            path("<path:object_id>/run/", wrap(self.run_view), name=f"{prefix}_run"),
            path("<path:object_id>/revert/", wrap(self.revert_view), name=f"{prefix}_revert"),
            path(
                "<path:object_id>/backfill/", wrap(self.backfill_view), name=f"{prefix}_backfill"
            ),
        ]

    @method_decorator(require_POST)
    def policy_view(self, request: HttpRequest, object_id: str) -> HttpResponseRedirect:
        """Save the "Run policy" section."""
        return self._control(request, object_id, PolicyForm, lambda form, change: (
            services.set_job_policy(policy=form.policy, **change).message
        ))

    @method_decorator(require_POST)
    def pause_view(self, request: HttpRequest, object_id: str) -> HttpResponseRedirect:
        """Pause the job, with the reason and end the form holds."""
        return self._control(request, object_id, PauseForm, lambda form, change: (
            services.pause_job(
                reason=form.cleaned_data["reason"] or None,
                until=form.cleaned_data["until"],
                **change,
            ).message
        ))

    @method_decorator(require_POST)
    def run_view(self, request: HttpRequest, object_id: str) -> HttpResponseRedirect:
        """Ask the scheduler to run the job now, with the arguments the form holds."""
        def run(form: RunForm, change: dict[str, Any]) -> str:
            kwargs = form.cleaned_data["kwargs"]
            run_request = services.request_job_run(kwargs=kwargs, **change)
            arguments = f" with {json.dumps(kwargs)}" if kwargs else ""
            return (
                f"sent to the scheduler process to run now{arguments} "
                f"(request #{run_request.id})."
            )

        return self._control(request, object_id, RunForm, run)

    @method_decorator(require_POST)
    def revert_view(self, request: HttpRequest, object_id: str) -> HttpResponseRedirect:
        """A "Restore" button: give the job back the state of one of its versions."""
        return self._control(request, object_id, RevertForm, lambda form, change: (
            services.revert_job(version=form.cleaned_data["to_version"], **change).message
            + "."
        ))

    @method_decorator(require_POST)
    def backfill_view(self, request: HttpRequest, object_id: str) -> HttpResponseRedirect:
        """Queue the runs the job's schedule would have made in the form's range."""
        def backfill(form: BackfillForm, change: dict[str, Any]) -> str:
            data = form.cleaned_data
            outcome = services.backfill_job(
                start=data["start"], end=data["end"], dry_run=data["dry_run"], **change
            )
            queued, there = len(outcome.queued), len(outcome.already_there)
            if outcome.dry_run:
                return f"a backfill would queue {queued} run(s); {there} already ran or queued."
            return f"backfill queued {queued} run(s); {there} already ran or queued."

        return self._control(request, object_id, BackfillForm, backfill)

    def _control(
        self,
        request: HttpRequest,
        object_id: str,
        form_class: type[_JobControlForm],
        call: Callable[[Any, dict[str, Any]], str],
    ) -> HttpResponseRedirect:
        """Check the permission and the form, call the service, say what it did."""
        if not self.has_change_permission(request):  # type: ignore[attr-defined]
            raise PermissionDenied
        job_id = unquote(object_id)
        form = form_class(request.POST)
        if not form.is_valid():
            messages.error(request, f"Nothing was changed: {form.first_error()}")
            return redirect(job_url(job_id))
        change = {
            "job_id": job_id,
            "actor": actor(request),
            "source": Source.ADMIN,
            "expected_version": form.cleaned_data.get("version"),
        }
        try:
            message = call(form, change)
        except SchedulerError as error:
            messages.error(request, f"Nothing was changed: {error.message}")
        else:
            messages.success(request, f"{job_id}: {message}")
        return redirect(job_url(job_id))
