"""
Health endpoints for load balancers and orchestrators: no authentication, no details.

    GET /healthz            200 while the database answers, else 503
    GET /healthz/scheduler  200 while an active scheduler's heartbeat is fresh, else 503

Mount them at the site's root with `path("", include("scheduler_app.health"))`.
Freshness is judged by the database's clock (`selectors.scheduler_is_running`), which
every host shares, not by the clock of the web host that answers.
"""

from __future__ import annotations

import logging

from django.db import DatabaseError, connection
from django.http import HttpRequest, HttpResponse
from django.urls import path
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from scheduler_app import selectors

logger = logging.getLogger(__name__)


def _answer(healthy: bool) -> HttpResponse:
    return HttpResponse(
        "ok\n" if healthy else "unavailable\n",
        status=200 if healthy else 503,
        content_type="text/plain; charset=utf-8",
    )


@never_cache
@require_safe
def database_health(request: HttpRequest) -> HttpResponse:
    """200 when the database answers a query."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except DatabaseError as error:
        logger.warning("Health check: the database does not answer (%s)", error)
        return _answer(False)
    return _answer(True)


@never_cache
@require_safe
def scheduler_health(request: HttpRequest) -> HttpResponse:
    """200 when an active scheduler holds the lease and its heartbeat is fresh."""
    try:
        running = selectors.scheduler_is_running()
    except DatabaseError as error:
        logger.warning("Health check: the database does not answer (%s)", error)
        running = False
    return _answer(running)


urlpatterns = [
    path("healthz", database_health, name="healthz"),
    path("healthz/scheduler", scheduler_health, name="healthz-scheduler"),
]
