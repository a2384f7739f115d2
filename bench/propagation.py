"""
Change propagation and run-now latency: commit → the running scheduler acting.

For each database and notification mode, starts a real `runscheduler` on a fresh
database and measures, over N changes each:

* run-now: from the commit of a run request to the job function starting;
* reschedule: a paused job is given a schedule that fires every second and resumed;
  the figure is how late its first run starts after the time it was due.

Run from the project root (PostgreSQL on 127.0.0.1:5432 is used for its part):

    .venv/bin/python -m bench.propagation [--changes 50]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time

from bench.common import ROOT, percentile, setup_django, start_manage_py, wait_for_heartbeat

POSTGRES_BENCH_URL = "postgres://postgres@127.0.0.1:5432/scheduler_bench_propagation"
PROBE = "probe.record"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--changes", type=int, default=50)
    parser.add_argument("--worker", nargs=2, metavar=("DATABASE_URL", "MODE"))
    options = parser.parse_args()
    if options.worker:
        print(json.dumps(measure(*options.worker, changes=options.changes)))
        return
    sqlite_url = f"sqlite:///{tempfile.mkdtemp()}/bench.sqlite3"
    configurations = [
        ("SQLite", sqlite_url, "poll"),
        ("PostgreSQL", POSTGRES_BENCH_URL, "notify"),
        ("PostgreSQL", POSTGRES_BENCH_URL, "poll"),
    ]
    print(f"{'database':<11} {'mode':<7} {'measure':<19} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}")
    for database, url, mode in configurations:
        result = run_worker(url, mode, options.changes)
        for measure_name, samples in result.items():
            print(f"{database:<11} {mode:<7} {measure_name:<19} "
                  f"{percentile(samples, 50):8.1f} {percentile(samples, 99):8.1f} "
                  f"{max(samples):8.1f}")


def run_worker(url: str, mode: str, changes: int) -> dict[str, list[float]]:
    output = subprocess.run(
        [sys.executable, "-m", "bench.propagation", "--changes", str(changes),
         "--worker", url, mode],
        cwd=ROOT, check=True, capture_output=True, text=True,
        env={**os.environ, "DATABASE_URL": url, "DJANGO_SETTINGS_MODULE": "bench.settings",
             "BENCH_NOTIFICATIONS": mode},
    )
    return json.loads(output.stdout.strip().splitlines()[-1])


def measure(url: str, mode: str, *, changes: int) -> dict[str, list[float]]:
    """Runs inside a worker process configured for one database and mode."""
    setup_django(url)
    scheduler = start_manage_py("runscheduler")
    try:
        wait_for_heartbeat(scheduler.pid, role="active")
        time.sleep(1)
        return {
            "run-now": run_now_latencies(changes),
            "reschedule lateness": reschedule_lateness(changes),
        }
    finally:
        scheduler.terminate()
        scheduler.wait(timeout=30)


def run_now_latencies(changes: int) -> list[float]:
    from django.utils import timezone

    from scheduler_app import services
    from tests.testapp.models import ProbeRun

    latencies = []
    for _ in range(changes):
        seen = ProbeRun.objects.count()
        services.request_job_run(job_id=PROBE, actor="bench", source="cli")
        committed = timezone.now()
        run = wait_for_new_run(seen)
        latencies.append((run.started_at - committed).total_seconds() * 1000)
        # Commit at random points of the poll cycle, not in step with it.
        time.sleep(random.uniform(0.05, 0.3))
    return latencies


def reschedule_lateness(changes: int) -> list[float]:
    from scheduler_app import services
    from tests.testapp.models import ProbeRun

    services.pause_job(job_id=PROBE, actor="bench", source="cli")
    every_second = {"trigger": "cron", "trigger_args": {"second": "*"}}
    lateness = []
    for _ in range(changes):
        services.reschedule_job(job_id=PROBE, trigger_spec=every_second, actor="bench",
                                source="cli")
        seen = ProbeRun.objects.count()
        due = services.resume_job(job_id=PROBE, actor="bench", source="cli").job.next_run_time
        run = wait_for_new_run(seen)
        services.pause_job(job_id=PROBE, actor="bench", source="cli")
        lateness.append((run.started_at - due).total_seconds() * 1000)
        # Let a run already claimed before the pause finish, then start off-beat.
        time.sleep(random.uniform(0.2, 0.6))
    return lateness


def wait_for_new_run(seen: int):
    from tests.testapp.models import ProbeRun

    deadline = time.monotonic() + 30
    while True:
        runs = list(ProbeRun.objects.order_by("id")[seen:seen + 1])
        if runs:
            return runs[0]
        if time.monotonic() > deadline:
            raise SystemExit("the scheduler did not run the job within 30 s")
        time.sleep(0.002)


if __name__ == "__main__":
    main()
