"""What every scheduler admin page shares: the permissions, the acting user, the style sheet."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest, HttpResponse

VIEW_JOBS = "django_apscheduler.view_djangojob"
CHANGE_JOBS = "django_apscheduler.change_djangojob"
ADD_JOBS = "django_apscheduler.add_djangojob"
DELETE_JOBS = "django_apscheduler.delete_djangojob"
ADMIN_CSS = {"all": ("scheduler_app/admin.css",)}


def can_view_jobs(user: Any) -> bool:
    return user.has_perm(VIEW_JOBS) or user.has_perm(CHANGE_JOBS)


def actor(request: HttpRequest) -> str:
    """Who the audit trail names for a change made in this request."""
    return request.user.get_username()


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
