"""The dashboard page, served under the jobs' admin URLs; its read queries are in
`scheduler_app.dashboard`, this is only the view that puts them on the page."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse

from scheduler_app import dashboard
from scheduler_app.admin.display import relative_time


class DashboardPageMixin:
    """A `dashboard_view` for a ModelAdmin: who may view its model may view the dashboard."""

    dashboard_template = "admin/scheduler_app/dashboard.html"

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
