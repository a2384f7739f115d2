"""The demo project's URLs plus the benchmark floor at `/bench/items/`."""

from rest_framework.routers import SimpleRouter

from project.urls import urlpatterns as project_urlpatterns
from tests.testapp.floor import BenchItemViewSet

router = SimpleRouter()
router.register("bench/items", BenchItemViewSet, basename="bench-item")

urlpatterns = [*project_urlpatterns, *router.urls]
