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
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from django.http import HttpRequest, HttpResponse
from django.views.decorators.http import require_GET
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from scheduler_app import selectors
from scheduler_app.api.permissions import CHANGE_JOBS, VIEW_JOBS
from scheduler_app.conf import app_settings

TEXT_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


@dataclass(frozen=True)
class JobFamily:
    """One per-job metric: its samples for a job are (extra label values, value) pairs."""

    name: str
    type: str
    documentation: str
    extra_labels: tuple[str, ...]
    samples: Callable[[selectors.JobMetrics], Iterable[tuple[tuple[str, ...], float]]]


def _value(number: float | None) -> list[tuple[tuple[str, ...], float]]:
    return [] if number is None else [((), number)]


JOB_FAMILIES = (
    JobFamily("scheduler_job_info", "gauge", "A job in the store; always 1.",
              ("trigger", "schedule", "function"),
              lambda job: [((job.trigger, job.schedule, job.function), 1)]),
    JobFamily("scheduler_job_next_run_timestamp_seconds", "gauge",
              "When the job runs next (Unix time); absent while paused.", (),
              lambda job: _value(job.next_run_timestamp)),
    JobFamily("scheduler_job_last_run_timestamp_seconds", "gauge",
              "When the newest run with an outcome was due (Unix time).", (),
              lambda job: _value(job.last_run_timestamp)),
    JobFamily("scheduler_job_last_success_timestamp_seconds", "gauge",
              "When the newest successful run finished (Unix time).", (),
              lambda job: _value(job.last_success_timestamp)),
    JobFamily("scheduler_job_paused", "gauge", "1 if the job is paused.", (),
              lambda job: [((), int(job.next_run_timestamp is None))]),
    JobFamily("scheduler_job_broken", "gauge", "1 if the job's function cannot be imported.", (),
              lambda job: [((), int(job.broken))]),
    JobFamily("scheduler_job_running", "gauge", "Runs of the job executing now.", (),
              lambda job: [((), job.running)]),
    JobFamily("scheduler_job_runs", "counter",
              "Runs with an outcome, by status (never lowered by pruning).", ("status",),
              lambda job: [((status,), count) for status, count in job.runs.items()]),
    JobFamily("scheduler_job_last_duration_seconds", "gauge",
              "How long the newest run that started took.", (),
              lambda job: _value(job.last_duration)),
    JobFamily("scheduler_job_last_lateness_seconds", "gauge",
              "How late the newest run that started began after it was due.", (),
              lambda job: _value(job.last_lateness)),
)


def scheduler_families(status: selectors.SchedulerMetrics) -> list[Metric]:
    """The scheduler processes' metrics (a handful of samples: the library builds them)."""
    instances = GaugeMetricFamily(
        "scheduler_instances", "Live runscheduler processes, by role.", labels=["role"]
    )
    for role, count in status.instances.items():
        instances.add_metric([role], count)
    epoch = GaugeMetricFamily(
        "scheduler_lease_epoch", "The leadership lease's epoch: goes up at every takeover."
    )
    if status.lease_epoch is not None:
        epoch.add_metric([], status.lease_epoch)
    age = GaugeMetricFamily(
        "scheduler_heartbeat_age_seconds",
        "Seconds since the active scheduler's heartbeat (the newest one's when none is "
        "active; +Inf when no scheduler ever ran).",
    )
    age.add_metric([], float("inf") if status.heartbeat_age is None else status.heartbeat_age)
    return [instances, epoch, age]


class StoreCollector(Collector):
    """The store as prometheus_client metric families (for OpenMetrics and as the reference
    the plain-text writer below must match)."""

    def collect(self) -> Iterator[Metric]:
        jobs = selectors.job_metrics()
        for family in JOB_FAMILIES:
            make = CounterMetricFamily if family.type == "counter" else GaugeMetricFamily
            metric = make(family.name, family.documentation,
                          labels=["job", *family.extra_labels])
            for job in jobs:
                for extra, value in family.samples(job):
                    metric.add_metric([job.id, *extra], value)
            yield metric
        yield from scheduler_families(selectors.scheduler_metrics())


_registry = CollectorRegistry(auto_describe=False)
_registry.register(StoreCollector())


def text_exposition() -> bytes:
    """The store in Prometheus' plain text format (0.0.4), as `generate_latest` writes it.

    Written here rather than by `generate_latest`, which spends about 13 microseconds
    on each of the 140,000 samples of 10,000 jobs (1.9 s of CPU on the benchmark
    machine, see docs/benchmarks.md): each job's label is escaped once, and a sample
    is one format string. Label names are sorted and values escaped and formatted as
    the library does; a test compares the two byte for byte.
    """
    jobs = selectors.job_metrics()
    job_labels = [f'job="{_escape_label_value(job.id)}"' for job in jobs]
    lines: list[str] = []
    for family in JOB_FAMILIES:
        name = f"{family.name}_total" if family.type == "counter" else family.name
        lines.append(f"# HELP {name} {_escape_help(family.documentation)}\n"
                     f"# TYPE {name} {family.type}\n")
        if not family.extra_labels:
            lines += [f"{name}{{{job_label}}} {_sample_value(value)}\n"
                      for job, job_label in zip(jobs, job_labels, strict=True)
                      for _, value in family.samples(job)]
            continue
        # The labels in sorted order, as the library writes them: {0} is the job's,
        # {1}, {2}... the family's own, in their declared order.
        template = ",".join(
            "{0}" if label == "job" else f'{label}="{{{family.extra_labels.index(label) + 1}}}"'
            for label in sorted(("job", *family.extra_labels))
        )
        lines += [
            f"{name}{{{template.format(job_label, *map(_escape_label_value, extra))}}} "
            f"{_sample_value(value)}\n"
            for job, job_label in zip(jobs, job_labels, strict=True)
            for extra, value in family.samples(job)
        ]
    text = "".join(lines).encode()
    return text + generate_latest(_SchedulerOnly(selectors.scheduler_metrics()))


def _sample_value(value: float) -> str:
    # floatToGoString writes a whole number below a million as "n.0", and the
    # counters and 0/1 gauges are most samples: format those directly.
    if type(value) is int and 0 <= value < 1_000_000:
        return f"{value}.0"
    return floatToGoString(value)


class _SchedulerOnly(Collector):
    def __init__(self, status: selectors.SchedulerMetrics) -> None:
        self.status = status

    def collect(self) -> Iterator[Metric]:
        return iter(scheduler_families(self.status))


def _escape_label_value(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r'\"')


def _escape_help(text: str) -> str:
    return text.replace("\\", r"\\").replace("\n", r"\n")


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
    accept = request.headers.get("Accept", "")
    if "application/openmetrics-text" in accept:
        encode, content_type = choose_encoder(accept)
        return HttpResponse(encode(_registry), content_type=content_type)
    return HttpResponse(text_exposition(), content_type=TEXT_CONTENT_TYPE)
