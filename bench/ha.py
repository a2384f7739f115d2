"""
Scaling past one machine, on PostgreSQL:

* failover: a standby takes over after the active scheduler is killed (SIGKILL,
  the lease must expire) or stopped (SIGTERM, the lease is released), 10 times each;
* dispatch: run-now requests for a no-op job executed per second by the scheduler's
  own thread pool (the embedded default, as baseline) and by 1, 2 and 4
  django-tasks-db workers;
* pass cost: one scheduler pass (claim run requests and due jobs, compute the next
  wake-up) with 100, 10,000 and 100,000 jobs in the store and 5 of them due.

Run from the project root (shipped defaults, LEASE_TTL 10 s):

    .venv/bin/python -m bench.ha [--kills 10] [--runs 300]
"""

from __future__ import annotations

import argparse
import os
import signal
import time
from datetime import UTC, datetime, timedelta

from bench.common import percentile, setup_django, start_manage_py, wait_for_heartbeat

DATABASE_URL = "postgres://postgres@127.0.0.1:5432/scheduler_bench_ha"
NOOP = "probe.noop"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--sections", default="failover,dispatch,pass",
                        help="comma-separated subset of failover, dispatch, pass")
    options = parser.parse_args()
    sections = options.sections.split(",")
    setup_django(DATABASE_URL)
    from scheduler_app import services

    services.sync_jobs_from_code()
    if "failover" in sections:
        print("failover (time until another scheduler holds the lease)")
        for stop_signal in (signal.SIGKILL, signal.SIGTERM):
            times = failover_times(options.kills, stop_signal)
            print(f"  {signal.Signals(stop_signal).name:<8} n={len(times):<3} "
                  f"p50 {percentile(times, 50):6.2f} s   max {max(times):6.2f} s")
    if "dispatch" in sections:
        print(f"dispatch ({options.runs} run-now requests of a no-op job, committed at once)")
        for mode, workers in (("threads", 0), ("tasks", 1), ("tasks", 2), ("tasks", 4)):
            rate = dispatch_rate(options.runs, mode=mode, workers=workers)
            label = "scheduler thread pool" if mode == "threads" else f"tasks, {workers} worker(s)"
            print(f"  {label:<24} {rate:7.1f} runs/s")
    if "pass" in sections:
        print("scheduler pass with 5 jobs due")
        for total in (100, 10_000, 100_000):
            samples = pass_times(total)
            print(f"  {total:>7} jobs in the store   p50 {percentile(samples, 50):6.2f} ms   "
                  f"p99 {percentile(samples, 99):6.2f} ms")


def active_pid() -> int | None:
    from scheduler_app import selectors

    return next((i.pid for i in selectors.scheduler_status().instances if i.role == "active"),
                None)


def failover_times(kills: int, stop_signal: int) -> list[float]:
    schedulers = [start_manage_py("runscheduler") for _ in range(2)]
    times = []
    try:
        for scheduler in schedulers:
            wait_for_heartbeat(scheduler.pid)
        for _ in range(kills):
            while (leader := active_pid()) is None:
                time.sleep(0.05)
            os.kill(leader, stop_signal)
            stopped = time.monotonic()
            while active_pid() in (None, leader):
                time.sleep(0.02)
            times.append(time.monotonic() - stopped)
            survivor = [s for s in schedulers if s.pid != leader]
            for scheduler in schedulers:
                if scheduler.pid == leader:
                    scheduler.wait(timeout=30)
            schedulers = [*survivor, start_manage_py("runscheduler")]
            wait_for_heartbeat(schedulers[-1].pid)
    finally:
        for scheduler in schedulers:
            scheduler.terminate()
            scheduler.wait(timeout=30)
    return times


def dispatch_rate(runs: int, *, mode: str, workers: int) -> float:
    from django.db import transaction
    from django_apscheduler.models import DjangoJobExecution

    from scheduler_app import services
    from scheduler_app.models import RunRequest

    RunRequest.objects.all().delete()
    DjangoJobExecution.objects.all().delete()
    scheduler = start_manage_py("runscheduler", BENCH_EXECUTION=mode)
    pool = [start_manage_py("db_worker", "--no-reload", "--no-startup-delay", "--interval", "0.05")
            for _ in range(workers)]
    try:
        wait_for_heartbeat(scheduler.pid, role="active")
        # All requests appear at once, when this transaction commits.
        with transaction.atomic():
            for _ in range(runs):
                services.request_job_run(job_id=NOOP, actor="bench", source="cli")
        started = time.monotonic()
        done = DjangoJobExecution.objects.filter(status=DjangoJobExecution.SUCCESS)
        while done.count() < runs:
            if time.monotonic() - started > 300:
                raise SystemExit(f"only {done.count()} of {runs} runs finished in 300 s")
            time.sleep(0.02)
        return runs / (time.monotonic() - started)
    finally:
        for process in (scheduler, *pool):
            process.terminate()
            process.wait(timeout=30)


def pass_times(total: int) -> list[float]:
    from django_apscheduler.models import DjangoJob

    from scheduler_app.jobstore import JobStore
    from scheduler_app.scheduler import Scheduler

    fill_store(total)
    # Only the five jobs made due below may be claimed.
    DjangoJob.objects.exclude(id__startswith="filler.").update(next_run_time=None)
    scheduler = Scheduler()
    store: JobStore = scheduler.jobstore
    store.start(scheduler, "default")
    scheduler.leadership.refresh()
    samples = []
    for _ in range(30):
        make_five_due()
        started = time.perf_counter()
        now = datetime.now(UTC)
        claimed = store.claim_run_requests(now, fence=scheduler.leadership.fence)
        claimed += store.claim_due_jobs(now, fence=scheduler.leadership.fence)
        store.get_next_run_time()
        samples.append((time.perf_counter() - started) * 1000)
        assert len(claimed) == 5, len(claimed)
        scheduler.leadership.refresh()
    scheduler.leadership.release()
    return samples


def fill_store(total: int) -> None:
    """`total` jobs (all due next year) copied from the no-op probe, in bulk."""
    from django_apscheduler.models import DjangoJob

    from scheduler_app.state import dump_state, load_state

    template = load_state(DjangoJob.objects.get(id=NOOP).job_state)
    next_year = datetime.now(UTC) + timedelta(days=365)
    existing = DjangoJob.objects.filter(id__startswith="filler.").count()
    rows = [
        DjangoJob(id=f"filler.{i:06d}", next_run_time=next_year,
                  job_state=dump_state({**template, "id": f"filler.{i:06d}",
                                        "next_run_time": next_year}))
        for i in range(existing, total)
    ]
    DjangoJob.objects.bulk_create(rows, batch_size=5000)


def make_five_due() -> None:
    from django_apscheduler.models import DjangoJob

    from scheduler_app.state import dump_state, load_state

    due = datetime.now(UTC) - timedelta(seconds=1)
    for row in DjangoJob.objects.filter(id__startswith="filler.").order_by("id")[:5]:
        state = {**load_state(row.job_state), "next_run_time": due}
        row.job_state, row.next_run_time = dump_state(state), due
        row.save()


if __name__ == "__main__":
    main()
