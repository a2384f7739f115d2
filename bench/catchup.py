"""
Catch-up cost: one scheduler claim of a job 1 hour behind on a 1-second interval.

Times `JobStore.claim_due_jobs` (the claim transaction of a scheduler pass: lock,
work out the due runs, write the next run time back, record each claimed run) for
one job whose next run time is an hour in the past, coalescing and not, with the
current code and with the store as it was before counted catch-up (the module at
commit BEFORE, loaded from git into this process), in the same run.

Run from the project root; it creates (dropping it first) the PostgreSQL database
`scheduler_bench_catchup` through `bench.common`:

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres .venv/bin/python bench/catchup.py
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import ROOT, setup_django  # noqa: E402

# The last commit whose claim walked every missed fire time one by one.
BEFORE = "0bb3504"
DATABASE = "postgres://postgres@127.0.0.1:5432/scheduler_bench_catchup"


def old_jobstore() -> ModuleType:
    source = subprocess.run(
        ["git", "show", f"{BEFORE}:scheduler_app/jobstore.py"],
        cwd=ROOT, check=True, capture_output=True, text=True,
    ).stdout
    spec = importlib.util.spec_from_loader("bench_jobstore_before", loader=None)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    exec(compile(source, f"{BEFORE}:scheduler_app/jobstore.py", "exec"), module.__dict__)
    return module


def time_claim(store_class: type, *, coalesce: bool, behind: timedelta) -> tuple[float, int]:
    """Seconds one claim takes, and how many runs it claimed."""
    from apscheduler.job import Job
    from apscheduler.schedulers.blocking import BlockingScheduler
    from apscheduler.triggers.interval import IntervalTrigger
    from django_apscheduler.models import DjangoJob

    from tests.testapp.jobs import do_nothing

    DjangoJob.objects.all().delete()
    now = datetime.now(UTC).replace(microsecond=0)
    scheduler = BlockingScheduler(timezone=UTC)
    store = store_class()
    store.start(scheduler, "default")
    trigger = IntervalTrigger(seconds=1, start_date=now - timedelta(days=1), timezone=UTC)
    job = Job(scheduler, id="behind", func=do_nothing, trigger=trigger, executor="default",
              args=(), kwargs={}, name="behind", misfire_grace_time=None, coalesce=coalesce,
              max_instances=1)
    job.next_run_time = now - behind
    store.add_job(job)
    started = time.perf_counter()
    claimed = store.claim_due_jobs(now)
    elapsed = time.perf_counter() - started
    return elapsed, sum(len(run.run_times) for run in claimed)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5)
    options = parser.parse_args()
    setup_django(DATABASE)
    logging.getLogger("scheduler_app").setLevel(logging.ERROR)
    from scheduler_app.jobstore import JobStore

    stores = {f"before ({BEFORE})": old_jobstore().JobStore, "after": JobStore}
    print(f"One claim of a job 1 hour behind on a 1-second interval (median of {options.repeat})")
    for coalesce in (False, True):
        for label, store_class in stores.items():
            time_claim(store_class, coalesce=coalesce, behind=timedelta(minutes=1))  # warm up
            samples = [
                time_claim(store_class, coalesce=coalesce, behind=timedelta(hours=1))
                for _ in range(options.repeat)
            ]
            seconds = statistics.median(sample[0] for sample in samples)
            print(f"  coalesce={coalesce!s:5}  {label:18} {seconds * 1000:9.1f} ms  "
                  f"runs claimed: {samples[0][1]}")


if __name__ == "__main__":
    main()
