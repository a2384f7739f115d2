"""URL configuration of the demo project."""

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from scheduler_app.metrics import metrics_view

urlpatterns = [
    # GET /healthz and /healthz/scheduler, for load balancers and orchestrators.
    path("", include("scheduler_app.health")),
    path("admin/", admin.site.urls),
    path("api/scheduler/", include("scheduler_app.api.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="swagger-ui"),
    # Log in and out of the browsable API.
    path("api/auth/", include("rest_framework.urls")),
    # Prometheus scrapes the store here (bearer token or staff session).
    path("metrics", metrics_view, name="scheduler-metrics"),
]
