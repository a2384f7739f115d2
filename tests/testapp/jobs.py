"""Jobs the tests and benchmarks run through a real scheduler process."""

import datetime
import os
import time

from django.utils import timezone

from scheduler_app import job_function, scheduled_job
from tests.testapp.models import ProbeRun


@scheduled_job("cron", year="2099", month=1, day=1, id="probe.record", name="Probe")
def record_run(label: str = "") -> None:
    """Record that it ran (a far-future default: tests reschedule or run it now)."""
    ProbeRun.objects.create(job_id="probe.record", label=label, started_at=timezone.now(),
                            pid=os.getpid())


@scheduled_job("cron", year="2099", month=1, day=1, id="probe.slow", name="Slow probe",
               max_instances=1)
def slow_run(seconds: float = 1.0) -> None:
    """Record its start, then take `seconds` to finish."""
    ProbeRun.objects.create(job_id="probe.slow", started_at=timezone.now(), pid=os.getpid())
    time.sleep(seconds)


@scheduled_job("cron", year="2099", month=1, day=1, id="probe.noop", name="No-op probe",
               max_instances=100000)
def do_nothing() -> None:
    """Nothing: benchmarks measure what running a job costs the scheduler itself."""


@scheduled_job("cron", year="2099", month=1, day=1, id="probe.fail", name="Failing probe",
               pause_after_failures=3)
def fail(label: str = "") -> None:
    """Record that it ran, then fail: the scheduler counts it toward pause_after_failures."""
    ProbeRun.objects.create(job_id="probe.fail", label=label, started_at=timezone.now(),
                            pid=os.getpid())
    raise RuntimeError("probe.fail always fails")


@scheduled_job("cron", year="2099", month=1, day=1, id="probe.scheduled",
               name="Scheduled-time probe", max_instances=10)
def record_scheduled_time(scheduled_time: datetime.datetime, label: str = "") -> None:
    """Record the scheduled time the scheduler passed, as the run's label."""
    ProbeRun.objects.create(job_id="probe.scheduled", label=scheduled_time.isoformat(),
                            started_at=timezone.now(), pid=os.getpid())


@scheduled_job("cron", year="2099", month=1, day=1, id="probe.needs", name="Needs a limit",
               kwargs={"limit": 10})
def needs_a_limit(limit: int, *, dry_run: bool = False) -> None:
    """A job with a required parameter, which its declaration supplies."""


@scheduled_job("cron", year="2099", month=1, day=1, id="probe.failing",
               name="Always failing probe")
def fail_every_time() -> None:
    """Record the attempt, then fail (never paused for it)."""
    ProbeRun.objects.create(job_id="probe.failing", started_at=timezone.now(), pid=os.getpid())
    raise RuntimeError("the partner API is down")


@scheduled_job("cron", year="2099", month=1, day=1, id="probe.flaky", name="Flaky probe")
def flaky_run(failures: int = 2) -> None:
    """Fail the first `failures` runs, then succeed."""
    ProbeRun.objects.create(job_id="probe.flaky", started_at=timezone.now(), pid=os.getpid())
    if ProbeRun.objects.filter(job_id="probe.flaky").count() <= failures:
        raise RuntimeError("not yet")


@scheduled_job("cron", year="2099", month=1, day=1, id="probe.stuck", name="Stuck probe",
               alert_after=2)
def stuck_run(seconds: float = 6.0) -> None:
    """Hang for `seconds`: no run succeeds within its two-second window."""
    ProbeRun.objects.create(job_id="probe.stuck", started_at=timezone.now(), pid=os.getpid())
    time.sleep(seconds)


@scheduled_job("cron", year="2099", month=1, day=1, id="probe.quiet", name="Muted probe",
               alerts=False)
def quiet_fail() -> None:
    """Fail, with alerts muted."""
    raise RuntimeError("nobody is told")


@job_function("probe.customer_report")
def customer_report(customer_id: int, label: str = "report", *, pages: int = 1) -> None:
    """Record a run with its arguments (a runtime job's function).

    Every job created at runtime in the tests calls this one.
    """
    ProbeRun.objects.create(job_id=f"customer_report:{customer_id}:{pages}", label=label,
                            started_at=timezone.now(), pid=os.getpid())
