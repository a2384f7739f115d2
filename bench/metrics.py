"""
GET /metrics with 10,000 jobs on PostgreSQL: how long a Prometheus scrape takes.

Fills `scheduler_bench_metrics` (dropped first; set up as `bench.api` does) with `--jobs` jobs,
their run counters (`JobHealth`) and `--history` executions each (one of them
still running), then scrapes `/metrics` through Django's whole stack in this process
with the bearer token: a process's first scrape, `--scrapes` more, and one after
each of `--rounds` moves of every job's next run time (what a scheduler's claims
do between two scrapes: every stored state changes). It measures all that twice in
one run: with the labels the job records keep (`state.record_mirror`), and with
those words cleared, so that every state is read and described (the path of jobs no
record vouches for). The baseline is the floor any scrape of every job pays:
fetching every job's id and pickled state with one query. It also checks that the
scrape parses and has one `scheduler_job_info` per job.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres .venv/bin/python bench/metrics.py

`--distinct` gives every job a schedule of its own (by default jobs copy two).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.api import fill_store, set_up_django  # noqa: E402  (after the path is set)
from bench.common import percentile  # noqa: E402

TOKEN = "bench-metrics-token"
BENCH_DATABASE = "scheduler_bench_metrics"


def add_history(history: int) -> None:
    """`history` runs per job (the newest still running), counted in each job's health."""
    from datetime import timedelta

    from django.db import connection
    from django.utils import timezone
    from django_apscheduler.models import DjangoJob, DjangoJobExecution

    from scheduler_app.models import ExecutionRecord, JobHealth

    now = timezone.now()
    job_ids = list(DjangoJob.objects.filter(id__startswith="bench.").values_list("id", flat=True))
    DjangoJobExecution.objects.filter(job_id__in=job_ids).delete()
    runs = [
        DjangoJobExecution(
            job_id=job_id,
            status=DjangoJobExecution.SENT if age == 0 else DjangoJobExecution.SUCCESS,
            run_time=now - timedelta(minutes=age),
            duration=None if age == 0 else 0.5,
            finished=None if age == 0 else (now - timedelta(minutes=age)).timestamp() + 0.5,
        )
        for job_id in job_ids
        for age in range(history)
    ]
    DjangoJobExecution.objects.bulk_create(runs, batch_size=5000)
    ExecutionRecord.objects.bulk_create(
        [ExecutionRecord(execution=run, started_at=run.run_time + timedelta(seconds=0.01))
         for run in DjangoJobExecution.objects.filter(job_id__in=job_ids)],
        batch_size=5000,
    )
    JobHealth.objects.bulk_create(
        [JobHealth(job_id=job_id, runs_success=history - 1, runs_error=1, last_run_time=now,
                   last_success_at=now, last_duration=0.5, last_lateness=0.01)
         for job_id in job_ids],
        batch_size=5000,
    )
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")


def time_baseline() -> float:
    from django_apscheduler.models import DjangoJob

    began = time.perf_counter()
    rows = list(DjangoJob.objects.values_list("id", "job_state"))
    elapsed = time.perf_counter() - began
    assert rows
    return elapsed * 1000


def time_scrape(client: object, jobs: int) -> tuple[float, int]:
    from prometheus_client.parser import text_string_to_metric_families

    began = time.perf_counter()
    response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    elapsed = time.perf_counter() - began
    assert response.status_code == 200, response.status_code
    text = response.content.decode()
    infos = next(f for f in text_string_to_metric_families(text) if f.name == "scheduler_job_info")
    assert len(infos.samples) >= jobs
    return elapsed * 1000, len(response.content)


def run_every_job() -> None:
    """Move every job's next run time on, as the scheduler's claims do after each run:
    every stored state changes, so nothing memoized by state holds any more."""
    from datetime import timedelta

    from django_apscheduler.models import DjangoJob

    from scheduler_app.state import dump_state, load_state

    moved = []
    for job_id, job_state in DjangoJob.objects.filter(id__startswith="bench.").values_list(
        "id", "job_state"
    ):
        state = load_state(job_state)
        if state["next_run_time"] is not None:
            state["next_run_time"] += timedelta(minutes=1)
        moved.append(DjangoJob(id=job_id, job_state=dump_state(state),
                               next_run_time=state["next_run_time"]))
    DjangoJob.objects.bulk_update(moved, ["job_state", "next_run_time"], batch_size=1000)


def measure(client: object, jobs: int, scrapes: int, rounds: int) -> dict[str, list[float]]:
    """A process's first scrape, `scrapes` more, and one after each of `rounds` runs of
    every job (milliseconds)."""
    from scheduler_app import selectors

    selectors._descriptions.clear()  # as in a process that never scraped
    figures = {"first": [time_scrape(client, jobs)[0]],
               "warm": [time_scrape(client, jobs)[0] for _ in range(scrapes)],
               "ran": []}
    for _ in range(rounds):
        run_every_job()
        figures["ran"].append(time_scrape(client, jobs)[0])
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--history", type=int, default=10, help="executions per job")
    parser.add_argument("--scrapes", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3,
                        help="times every job runs, each followed by a scrape")
    parser.add_argument("--distinct", action="store_true", help="a schedule of its own per job")
    options = parser.parse_args()
    import os

    set_up_django(os.environ.get("DATABASE_URL", ""), BENCH_DATABASE)
    from django.conf import settings
    from django.test import Client

    from scheduler_app.models import JobRecord

    settings.SCHEDULER_APP = {**settings.SCHEDULER_APP, "METRICS_TOKEN": TOKEN}
    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "testserver"]  # Django's test client
    fill_store(options.jobs, distinct=options.distinct)
    add_history(options.history)
    client = Client()

    baseline = [time_baseline() for _ in range(options.scrapes)]
    _, size = time_scrape(client, options.jobs)
    labelled_by_records = measure(client, options.jobs, options.scrapes, options.rounds)
    # The same store with no record's words: every state is read and described, as
    # for jobs no record vouches for (and as every job was before records kept words).
    JobRecord.objects.update(schedule=None)
    states_read = measure(client, options.jobs, options.scrapes, options.rounds)
    print(f"{options.jobs} jobs, {options.jobs * options.history} executions, "
          f"{'distinct' if options.distinct else 'two shared'} schedules; "
          f"scrape body {size / 1024:.0f} KiB")
    print(f"baseline (one query, every job's id and state): "
          f"median {statistics.median(baseline):.0f} ms")
    print(f"{'':42} {'labels from records':>20} {'every state read':>18}")
    rows = (("first scrape of a process", "first"),
            (f"scrapes after it ({options.scrapes}), median", "warm"),
            (f"scrapes after it ({options.scrapes}), p95", "warm p95"),
            (f"after every job ran ({options.rounds}), median", "ran"))
    for label, key in rows:
        def figure(figures: dict[str, list[float]], key: str = key) -> float:
            if key == "warm p95":
                return percentile(figures["warm"], 95)
            return statistics.median(figures[key])
        print(f"{label:42} {figure(labelled_by_records):>17.0f} ms "
              f"{figure(states_read):>15.0f} ms")


if __name__ == "__main__":
    main()
