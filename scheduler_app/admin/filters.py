"""The list filters: jobs by state, trigger, last run and whether they can run; history rows
by job and execution status."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from scheduler_app import selectors
from scheduler_app.admin.display import status_choices
from scheduler_app.registry import TRIGGER_TYPES


class YesNoFilter(admin.SimpleListFilter):
    """A filter with two choices, "yes" and "no", each with a label of its own."""

    yes_label = "Yes"
    no_label = "No"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("yes", self.yes_label), ("no", self.no_label)]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        if self.value() not in ("yes", "no"):
            return queryset
        return self.filter_rows(queryset, yes=self.value() == "yes")

    def filter_rows(self, queryset: QuerySet, *, yes: bool) -> QuerySet:
        """The rows for which the answer is `yes` (or not); subclasses say which those are."""
        raise NotImplementedError


class EnabledFilter(YesNoFilter):
    title = "enabled"
    parameter_name = "enabled"
    yes_label = "Running on schedule"
    no_label = "Paused"

    def filter_rows(self, queryset: QuerySet, *, yes: bool) -> QuerySet:
        return queryset.filter(next_run_time__isnull=not yes)


class TriggerTypeFilter(admin.SimpleListFilter):
    title = "trigger type"
    parameter_name = "trigger"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [(name, name) for name in TRIGGER_TYPES]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        if self.value():
            return queryset.filter(record__trigger_type=self.value())
        return queryset


class OriginFilter(admin.SimpleListFilter):
    title = "origin"
    parameter_name = "origin"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("code", "Declared in code"), ("runtime", "Created at runtime")]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        if self.value() in ("code", "runtime"):
            return queryset.filter(selectors.origin_is(self.value()))
        return queryset


class LastStatusFilter(admin.SimpleListFilter):
    title = "last run"
    parameter_name = "last_status"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [*status_choices(), ("never", "Never ran")]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        value = self.value()
        if value == "never":
            rows = queryset.alias(last_run_id=selectors.newest_execution("id"))
            return rows.filter(last_run_id__isnull=True)
        if value in selectors.EXECUTION_STATUSES_BY_SLUG:
            rows = queryset.alias(last_run_status=selectors.newest_execution("status"))
            return rows.filter(last_run_status=selectors.EXECUTION_STATUSES_BY_SLUG[value])
        return queryset


class BrokenFilter(YesNoFilter):
    title = "broken"
    parameter_name = "broken"
    yes_label = "Broken"
    no_label = "Can run"

    def filter_rows(self, queryset: QuerySet, *, yes: bool) -> QuerySet:
        # One query whatever the page: the page still costs a constant number of queries.
        broken = selectors.broken_job_ids()
        if yes:
            return queryset.filter(id__in=broken)
        return queryset.exclude(id__in=broken)


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
