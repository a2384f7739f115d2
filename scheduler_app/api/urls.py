"""
URLs of the scheduler API; the demo project mounts them at `/api/scheduler/`.

    jobs/                        GET   list
    jobs/{id}/                   GET   one job (ETag: its version)
    jobs/{id}/schedule/          PUT   new trigger spec
    jobs/{id}/policy/            PUT   run policy (max_instances, coalesce, ...)
    jobs/{id}/pause/             POST  optional reason and until
    jobs/{id}/resume/            POST
    jobs/{id}/trigger/           POST  run once now (202, the run request)
    jobs/{id}/reset/             POST  back to the code default
    jobs/{id}/revert/            POST  back to the state right after a version
    jobs/{id}/backfill/          POST  run what the schedule would have run in a range
    jobs/{id}/executions/        GET
    jobs/{id}/changes/           GET   audit trail
    executions/                  GET
    status/                      GET   the scheduler process

Any other path under the prefix is a JSON 404.
"""

from __future__ import annotations

from typing import Any

from django.urls import path, re_path
from rest_framework.routers import DefaultRouter

from scheduler_app.api import views

app_name = "scheduler_api"


class SchedulerRouter(DefaultRouter):
    """DefaultRouter whose browsable root also links to the status endpoint."""

    APIRootView = views.SchedulerRootView
    # Job ids contain dots: "jobs/reports.weekly/" must not read as a ".weekly" format.
    include_format_suffixes = False

    def get_api_root_view(self, api_urls: Any = None) -> Any:
        api_root = {prefix: f"{basename}-list" for prefix, _, basename in self.registry}
        return self.APIRootView.as_view(api_root_dict={**api_root, "status": "status"})


router = SchedulerRouter()
router.register("jobs", views.JobViewSet, basename="job")
router.register("executions", views.ExecutionViewSet, basename="execution")

urlpatterns = [
    path("status/", views.SchedulerStatusViewSet.as_view({"get": "retrieve"}), name="status"),
    *router.urls,
    re_path(r"^.*$", views.UnknownEndpointView.as_view(), name="unknown"),
]
