"""
REST API cost: server time per request next to a plain DRF ModelViewSet, and
concurrent writers on one job.

On PostgreSQL with 10,000 jobs in the store (and 10,000 rows for the floor, a plain
`ModelViewSet` over a trivial model in `tests.testapp.floor`), sends each request
through Django's whole stack in this process (middleware, session authentication,
DRF, the database) and times it: job detail, a list page of 50, a schedule PUT and
a pause. Then 8 writer processes update one job for a while, each reading its ETag
and sending it back in If-Match: committed writes per second, 412s, p99 latency.

Run from the project root; it creates (dropping it first) the database
`scheduler_bench_api` through `bench.common` (PostgreSQL on 127.0.0.1:5432) and
connects to it with the credentials and host of DATABASE_URL:

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres .venv/bin/python bench/api.py

`--distinct` gives every job a schedule of its own (by default they copy two, so
words and fire times worked out for one serve the others). `--profile detail` (or
list, schedule, pause) prints where the time of that request goes; `--sort tottime`
orders it by time spent in each function itself.
"""

from __future__ import annotations

import argparse
import cProfile
import multiprocessing
import os
import pstats
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import percentile, setup_django  # noqa: E402  (after the path is set)

BENCH_DATABASE = "scheduler_bench_api"
API = "/api/scheduler/jobs"
FLOOR = "/bench/items"
WRITER_JOB = "bench.job_00000"
Timing = tuple[float, float]  # wall clock and CPU milliseconds of one request


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--requests", type=int, default=300, help="timed requests per row")
    parser.add_argument("--writers", type=int, default=8, help="0 skips the writers' run")
    parser.add_argument("--seconds", type=float, default=10.0, help="concurrent writers run")
    parser.add_argument(
        "--distinct", action="store_true", help="every job with a schedule of its own"
    )
    parser.add_argument("--profile", choices=["detail", "list", "schedule", "pause"])
    parser.add_argument(
        "--sort", default="cumulative", help="profile order: cumulative, tottime, ..."
    )
    options = parser.parse_args()

    set_up_django(os.environ.get("DATABASE_URL", ""))
    print(f"Filling the store: {options.jobs} jobs, {options.jobs} floor rows ...", flush=True)
    fill_store(options.jobs, distinct=options.distinct)
    bench = Bench(jobs=options.jobs)
    if options.profile:
        bench.profile(options.profile, options.requests, options.sort)
        return
    print_table(bench.compare(options.requests))
    for if_match in (True, False) if options.writers else ():
        print_writers(run_writers(options.writers, options.seconds, if_match=if_match))


# Setup --------------------------------------------------------------------------------------


def set_up_django(server_url: str, database: str = BENCH_DATABASE) -> None:
    """Django on a fresh, migrated `database` on the server of `server_url`."""
    if not server_url.startswith("postgres"):
        raise SystemExit(
            "Set DATABASE_URL to a PostgreSQL server: postgres://postgres@127.0.0.1:5432/postgres"
        )
    bench_url = urlunsplit(urlsplit(server_url)._replace(path=f"/{database}"))
    os.environ.update(
        DATABASE_URL=bench_url,
        DJANGO_SETTINGS_MODULE="bench.settings",
        # Without DEBUG's query log, which would otherwise grow and cost on every query.
        DJANGO_DEBUG="0",
    )
    from django.conf import settings

    settings.ROOT_URLCONF = "tests.testapp.urls"  # the project's URLs plus the floor
    setup_django(bench_url)


def fill_store(count: int, *, distinct: bool = False) -> None:
    """`count` jobs (cron and interval, one run each) and `count` floor rows.

    The jobs copy the weekly report (cron) and the heartbeat (interval), so words and
    fire times worked out for one serve its copies too; with `distinct`, every job
    has a schedule and next run time of its own, as in a real store.
    """
    from django.contrib.auth.models import Permission, User
    from django.db import connection
    from django.utils import timezone
    from django_apscheduler.models import DjangoJob, DjangoJobExecution

    from scheduler_app import services
    from scheduler_app.models import JobRecord
    from scheduler_app.state import dump_state, load_state, record_mirror
    from tests.testapp.models import BenchItem

    services.sync_jobs_from_code()
    templates = [DjangoJob.objects.get(id=job_id)
                 for job_id in ("reports.weekly", "monitoring.heartbeat")]
    states = [(row, load_state(row.job_state)) for row in templates]
    rows, records, runs = [], [], []
    now = timezone.now()
    for number in range(count):
        template, state = states[number % len(states)]
        job_id = f"bench.job_{number:05}"
        state = {**state, "id": job_id, "name": job_id}
        if distinct:
            state["trigger"] = own_trigger(number)
            state["next_run_time"] = state["trigger"].get_next_fire_time(None, now)
        rows.append(DjangoJob(id=job_id, next_run_time=state["next_run_time"],
                              job_state=dump_state(state)))
        # The record as the app's writers leave it.
        records.append(JobRecord(job_id=job_id, version=1, name=job_id, **record_mirror(state)))
        runs.append(DjangoJobExecution(job_id=job_id, status=DjangoJobExecution.SUCCESS,
                                       run_time=now, duration=0.5,
                                       finished=now.timestamp() + 0.5))
    DjangoJob.objects.bulk_create(rows, batch_size=1000)
    JobRecord.objects.bulk_create(records, batch_size=1000)
    DjangoJobExecution.objects.bulk_create(runs, batch_size=1000)
    BenchItem.objects.bulk_create(
        [BenchItem(name=f"item {number}") for number in range(count)], batch_size=1000
    )
    with connection.cursor() as cursor:
        # Statistics and visibility map, as autovacuum would leave them after a bulk load.
        cursor.execute("VACUUM ANALYZE")
    user = User.objects.create_user("bench", is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(
        content_type__app_label="django_apscheduler",
        codename__in=["view_djangojob", "change_djangojob"],
    ))


def own_trigger(number: int) -> Any:
    """A schedule of job `number`'s own: weekdays at a minute of the day, or every n minutes."""
    from scheduler_app import triggers

    if number % 2 == 0:
        spec = {"trigger": "cron", "trigger_args": {
            "day_of_week": "mon-fri", "hour": number // 60 % 24, "minute": number % 60,
        }}
    else:
        spec = {"trigger": "interval", "trigger_args": {"minutes": 1 + number % 997}}
    return triggers.build_trigger(spec, timezone=ZoneInfo("UTC"))


def logged_in_client() -> Any:
    """A client with a session of the staff user: session auth, as a browser has."""
    from django.contrib.auth.models import User
    from django.test import Client

    client = Client()
    client.force_login(User.objects.get(username="bench"))
    return client


# Sequential requests ---------------------------------------------------------------------


class Bench:
    """Request makers for each row: (scheduler API, floor), each a fresh target per call."""

    def __init__(self, *, jobs: int) -> None:
        from tests.testapp.models import BenchItem

        self.client = logged_in_client()
        self.jobs = jobs
        self.item_ids = list(BenchItem.objects.values_list("id", flat=True))
        self.random = random.Random(3)
        # Pauses need jobs that are not paused yet: each call takes the next one.
        self.unpaused = iter(range(1, jobs))

    def job_id(self) -> str:
        return f"bench.job_{self.random.randrange(1, self.jobs):05}"

    def page(self) -> int:
        return self.random.randrange(1, self.jobs // 50)

    def rows(self) -> dict[str, tuple[Callable[[], Any], Callable[[], Any]]]:
        client, item = self.client, lambda: self.random.choice(self.item_ids)
        json = "application/json"
        return {
            "detail": (
                lambda: client.get(f"{API}/{self.job_id()}/"),
                lambda: client.get(f"{FLOOR}/{item()}/"),
            ),
            "list page (50)": (
                lambda: client.get(f"{API}/?page={self.page()}"),
                lambda: client.get(f"{FLOOR}/?page={self.page()}"),
            ),
            "schedule PUT": (
                lambda: client.put(f"{API}/{self.job_id()}/schedule/", {
                    "trigger": "interval",
                    "trigger_args": {"minutes": self.random.randrange(1, 1000)},
                }, content_type=json),
                lambda: client.put(f"{FLOOR}/{item()}/", {
                    "name": f"item {self.random.randrange(1000)}", "enabled": True,
                }, content_type=json),
            ),
            "pause": (
                lambda: client.post(f"{API}/bench.job_{next(self.unpaused):05}/pause/",
                                    "{}", content_type=json),
                lambda: client.patch(f"{FLOOR}/{item()}/", {"enabled": False}, content_type=json),
            ),
        }

    def compare(self, requests: int) -> list[tuple[str, list[Timing], list[Timing]]]:
        # API and floor requests alternate, so that load from elsewhere hits both alike.
        results = []
        for name, (api_request, floor_request) in self.rows().items():
            warm_up(api_request)
            warm_up(floor_request)
            api_times, floor_times = [], []
            for _ in range(requests):
                api_times.append(time_once(api_request))
                floor_times.append(time_once(floor_request))
            results.append((name, api_times, floor_times))
        return results

    def profile(self, row: str, requests: int, sort: str) -> None:
        names = {"detail": "detail", "list": "list page (50)", "schedule": "schedule PUT",
                 "pause": "pause"}
        api_request, _ = self.rows()[names[row]]
        warm_up(api_request)
        profiler = cProfile.Profile()
        profiler.runcall(lambda: [check(api_request()) for _ in range(requests)])
        stats = pstats.Stats(profiler).sort_stats(sort)
        stats.print_stats(40)


def check(response: Any) -> Any:
    if response.status_code >= 300:
        raise SystemExit(f"request failed: {response.status_code} {response.content[:300]!r}")
    return response


def warm_up(request: Callable[[], Any], count: int = 20) -> None:
    for _ in range(count):
        check(request())


def time_once(request: Callable[[], Any]) -> tuple[float, float]:
    """Milliseconds one request takes: wall clock, and CPU time of this process.

    This process is the server, so its CPU time is the server's work without the
    database's; unlike wall time, load from other processes barely moves it.
    """
    start, start_cpu = time.perf_counter(), time.process_time()
    check(request())
    return (time.perf_counter() - start) * 1000, (time.process_time() - start_cpu) * 1000


def print_table(results: list[tuple[str, list[Timing], list[Timing]]]) -> None:
    print()
    print(f"{'request':<15} {'API p50':>8} {'API p99':>8} {'floor p50':>9} {'floor p99':>9} "
          f"{'ratio':>6} {'API CPU':>8} {'floor CPU':>9} {'CPU ratio':>9}")
    for name, api_timings, floor_timings in results:
        api_wall, api_cpu = zip(*api_timings, strict=True)
        floor_wall, floor_cpu = zip(*floor_timings, strict=True)
        wall = statistics.median(api_wall), statistics.median(floor_wall)
        cpu = statistics.median(api_cpu), statistics.median(floor_cpu)
        print(f"{name:<15} {wall[0]:8.2f} {percentile(list(api_wall), 99):8.2f} {wall[1]:9.2f} "
              f"{percentile(list(floor_wall), 99):9.2f} {wall[0] / wall[1]:5.2f}x "
              f"{cpu[0]:8.2f} {cpu[1]:9.2f} {cpu[0] / cpu[1]:8.2f}x")
    print("(milliseconds per request, medians unless p99; CPU = the server process's CPU time)")


# Concurrent writers ----------------------------------------------------------------------


def run_writers(writers: int, seconds: float, *, if_match: bool) -> dict[str, Any]:
    """`writers` processes updating one job until `seconds` have passed.

    With `if_match`, each write is a read-modify-write: GET for the ETag, then a PUT
    with If-Match, which a concurrent commit turns into a 412. Without, the PUTs
    just queue on the job's row lock.
    """
    from django.db import connections

    from scheduler_app.models import JobRecord

    start_version = JobRecord.objects.get(job_id=WRITER_JOB).version
    connections.close_all()  # each child opens its own connection
    context = multiprocessing.get_context("fork")
    barrier, queue = context.Barrier(writers), context.Queue()
    processes = [
        context.Process(target=write_loop, args=(index, seconds, if_match, barrier, queue))
        for index in range(writers)
    ]
    for process in processes:
        process.start()
    results = [queue.get(timeout=seconds + 120) for _ in processes]
    for process in processes:
        process.join()
    committed = sum(len(result["committed"]) for result in results)
    return {
        "writers": writers,
        "seconds": seconds,
        "if_match": if_match,
        "committed": committed,
        "conflicts": sum(result["conflicts"] for result in results),
        "latencies": [ms for result in results for ms in result["committed"] + result["refused"]],
        "version_moved": JobRecord.objects.get(job_id=WRITER_JOB).version - start_version,
    }


def write_loop(index: int, seconds: float, if_match: bool, barrier: Any, queue: Any) -> None:
    """One writer process: PUT a new schedule (after reading the ETag), repeat."""
    client = logged_in_client()
    committed: list[float] = []
    refused: list[float] = []
    conflicts = 0
    barrier.wait()
    deadline = time.monotonic() + seconds
    minutes = index * 100_000
    while time.monotonic() < deadline:
        headers = {}
        if if_match:
            headers["If-Match"] = check(client.get(f"{API}/{WRITER_JOB}/")).headers["ETag"]
        minutes += 1
        start = time.perf_counter()
        response = client.put(
            f"{API}/{WRITER_JOB}/schedule/",
            {"trigger": "interval", "trigger_args": {"minutes": minutes % 100_000 + 1}},
            content_type="application/json",
            headers=headers,
        )
        elapsed = (time.perf_counter() - start) * 1000
        if response.status_code == 200:
            committed.append(elapsed)
        elif response.status_code == 412:
            conflicts += 1
            refused.append(elapsed)
        else:
            check(response)
    queue.put({"committed": committed, "refused": refused, "conflicts": conflicts})


def print_writers(result: dict[str, Any]) -> None:
    latencies = result["latencies"]
    print()
    how = "GET for the ETag, then PUT with If-Match" if result["if_match"] else "PUT, no If-Match"
    print(f"{result['writers']} concurrent writers on one job for {result['seconds']:.0f} s "
          f"({how}):")
    print(f"  committed writes/s  {result['committed'] / result['seconds']:8.1f}")
    print(f"  412 refusals        {result['conflicts']:8d}")
    print(f"  PUT p50 / p99 ms    {statistics.median(latencies):8.2f} / "
          f"{percentile(latencies, 99):.2f}")
    print(f"  versions moved      {result['version_moved']:8d} "
          f"(= committed: {result['version_moved'] == result['committed']})")


if __name__ == "__main__":
    main()
