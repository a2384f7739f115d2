"""
`GET /metrics`: the store as Prometheus metrics, computed at scrape time.

Nothing is counted in process memory: every scrape reads the store (through
`selectors.job_metrics` and `selectors.scheduler_metrics`), so any web process
answers the same and a restart loses nothing. Per-job gauges follow
kube-state-metrics' CronJob metrics, labelled `job` (the job id). Run counters come
from `JobHealth`, which recording an outcome increments, so they never go down when
history is pruned.

Access: `Authorization: Bearer <SCHEDULER_APP["METRICS_TOKEN"]>` (compared in
constant time), or a logged-in staff session that may view jobs; anything else
gets 401.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterator
from datetime import datetime

from django.http import HttpRequest, HttpResponse
from django.views.decorators.http import require_GET
from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector

from scheduler_app import selectors
from scheduler_app.api.permissions import CHANGE_JOBS, VIEW_JOBS
from scheduler_app.conf import app_settings


class StoreCollector(Collector):
    """Reads jobs, their run counters and the scheduler processes from the store."""

    def collect(self) -> Iterator[Metric]:
        yield from self._job_metrics(selectors.job_metrics())
        yield from self._scheduler_metrics(selectors.scheduler_metrics())

    def _job_metrics(self, jobs: list[selectors.JobMetrics]) -> Iterator[Metric]:
        job = ["job"]
        info = GaugeMetricFamily(
            "scheduler_job_info", "A job in the store; always 1.",
            labels=["job", "trigger", "schedule", "function"],
        )
        next_run = GaugeMetricFamily(
            "scheduler_job_next_run_timestamp_seconds",
            "When the job runs next (Unix time); absent while paused.", labels=job,
        )
        last_run = GaugeMetricFamily(
            "scheduler_job_last_run_timestamp_seconds",
            "When the newest run with an outcome was due (Unix time).", labels=job,
        )
        last_success = GaugeMetricFamily(
            "scheduler_job_last_success_timestamp_seconds",
            "When the newest successful run finished (Unix time).", labels=job,
        )
        paused = GaugeMetricFamily("scheduler_job_paused", "1 if the job is paused.", labels=job)
        broken = GaugeMetricFamily(
            "scheduler_job_broken", "1 if the job's function cannot be imported.", labels=job
        )
        running = GaugeMetricFamily(
            "scheduler_job_running", "Runs of the job executing now.", labels=job
        )
        runs = CounterMetricFamily(
            "scheduler_job_runs", "Runs with an outcome, by status (never lowered by pruning).",
            labels=["job", "status"],
        )
        duration = GaugeMetricFamily(
            "scheduler_job_last_duration_seconds", "How long the newest run that started took.",
            labels=job,
        )
        lateness = GaugeMetricFamily(
            "scheduler_job_last_lateness_seconds",
            "How late the newest run that started began after it was due.", labels=job,
        )
        for job_metrics in jobs:
            key = [job_metrics.id]
            info.add_metric([*key, job_metrics.trigger, job_metrics.schedule,
                             job_metrics.function], 1)
            paused.add_metric(key, int(job_metrics.next_run_time is None))
            broken.add_metric(key, int(job_metrics.broken))
            running.add_metric(key, job_metrics.running)
            for status, count in job_metrics.runs.items():
                runs.add_metric([*key, status], count)
            _add_time(next_run, key, job_metrics.next_run_time)
            _add_time(last_run, key, job_metrics.last_run_time)
            _add_time(last_success, key, job_metrics.last_success_at)
            if job_metrics.last_duration is not None:
                duration.add_metric(key, job_metrics.last_duration)
            if job_metrics.last_lateness is not None:
                lateness.add_metric(key, job_metrics.last_lateness)
        yield from (info, next_run, last_run, last_success, paused, broken, running, runs,
                    duration, lateness)

    def _scheduler_metrics(self, status: selectors.SchedulerMetrics) -> Iterator[Metric]:
        instances = GaugeMetricFamily(
            "scheduler_instances", "Live runscheduler processes, by role.", labels=["role"]
        )
        for role, count in status.instances.items():
            instances.add_metric([role], count)
        yield instances
        epoch = GaugeMetricFamily(
            "scheduler_lease_epoch", "The leadership lease's epoch: goes up at every takeover."
        )
        if status.lease_epoch is not None:
            epoch.add_metric([], status.lease_epoch)
        yield epoch
        age = GaugeMetricFamily(
            "scheduler_heartbeat_age_seconds",
            "Seconds since the active scheduler's heartbeat (the newest one's when none is "
            "active; +Inf when no scheduler ever ran).",
        )
        age.add_metric([], float("inf") if status.heartbeat_age is None else status.heartbeat_age)
        yield age


def _add_time(metric: GaugeMetricFamily, labels: list[str], moment: datetime | None) -> None:
    if moment is not None:
        metric.add_metric(labels, moment.timestamp())


_registry = CollectorRegistry(auto_describe=False)
_registry.register(StoreCollector())


def may_read_metrics(request: HttpRequest) -> bool:
    """A valid bearer token, or a staff user who may view jobs."""
    token = app_settings.METRICS_TOKEN
    scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
    if token and scheme.lower() == "bearer":
        return hmac.compare_digest(credentials.strip().encode(), token.encode())
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return False
    if user.is_superuser:  # as the API's CanManageJobs
        return True
    return user.is_staff and (user.has_perm(VIEW_JOBS) or user.has_perm(CHANGE_JOBS))


@require_GET
def metrics_view(request: HttpRequest) -> HttpResponse:
    """The store in the exposition format the scraper asks for (Prometheus text or
    OpenMetrics, by its Accept header)."""
    if not may_read_metrics(request):
        response = HttpResponse("Authentication required.\n", status=401,
                                content_type="text/plain")
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    encode, content_type = choose_encoder(request.headers.get("Accept", ""))
    return HttpResponse(encode(_registry), content_type=content_type)
