"""
100,000 runtime jobs: how long `scheduler import` takes, and what the read side costs
at 100,000 jobs next to 10,000.

On PostgreSQL, writes N job definitions as JSON lines (each with a schedule and
kwargs of its own, calling `probe.customer_report`) and runs `manage.py scheduler
import` on them as an operator would, in a subprocess: its wall time and CPU seconds
for the first 10,000 (all created), for the whole file on top of them (90,000 created,
10,000 unchanged), for the whole file again (all unchanged) and for the whole file
into an empty store. Then, in this process through Django's whole stack with a staff
session, times the reads an operator makes, alternating request by request between
the store of 10,000 jobs and the one of 100,000, so that the other load on the machine
weighs on both alike: the API's list page and search, the admin's job list and search,
and the dashboard (p50 and p99, and the ratio of the p50s).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres .venv/bin/python bench/scale.py

`--jobs` sets the large store (default 100,000), `--base` the small one (10,000);
`--database NAME` names the databases (NAME, NAME_small and NAME_fresh, each dropped
and created first through `bench.common`; default `scheduler_bench_scale`), so that
runs cannot collide.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import ROOT, percentile, setup_django  # noqa: E402  (after the path is set)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--base", type=int, default=10_000)
    parser.add_argument("--requests", type=int, default=30, help="timed requests per read")
    parser.add_argument("--database", default="scheduler_bench_scale",
                        help="the database names: NAME, NAME_small and NAME_fresh")
    options = parser.parse_args()

    url = bench_database_url(os.environ.get("DATABASE_URL", ""), options.database)
    small_url = bench_database_url(url, f"{options.database}_small")
    fresh_url = bench_database_url(url, f"{options.database}_fresh")
    for other in (small_url, fresh_url):
        setup_fresh(other)
    setup_django(url)
    with tempfile.TemporaryDirectory() as folder:
        small = Path(folder, "small.jsonl")
        large = Path(folder, "large.jsonl")
        write_definitions(small, range(options.base))
        write_definitions(large, range(options.jobs))
        print(f"import of {options.base} new jobs: {import_seconds(small, url)}", flush=True)
        added = options.jobs - options.base
        print(f"import of {options.jobs} lines ({added} new, {options.base} unchanged): "
              f"{import_seconds(large, url)}", flush=True)
        print(f"import of {options.jobs} unchanged lines: {import_seconds(large, url)}",
              flush=True)
        print(f"import of {options.jobs} new jobs into an empty store: "
              f"{import_seconds(large, fresh_url)}", flush=True)
        import_seconds(small, small_url)
    stores = {options.base: database_name(small_url), options.jobs: database_name(url)}
    print_reads(time_reads(options.requests, stores))


def database_name(url: str) -> str:
    return urlsplit(url).path.lstrip("/")


def bench_database_url(server_url: str, database: str) -> str:
    if not server_url.startswith("postgres"):
        raise SystemExit(
            "Set DATABASE_URL to a PostgreSQL server: postgres://postgres@127.0.0.1:5432/postgres"
        )
    os.environ.update(DJANGO_SETTINGS_MODULE="bench.settings", DJANGO_DEBUG="0")
    return urlunsplit(urlsplit(server_url)._replace(path=f"/{database}"))


def setup_fresh(url: str) -> None:
    from bench.common import recreate_postgres_database

    recreate_postgres_database(url)
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, check=True,
                   env={**os.environ, "DATABASE_URL": url})


def definition(number: int) -> dict[str, Any]:
    """Job `number`: a customer's report, daily at a minute of its own, or every n minutes."""
    if number % 2:
        schedule = {"trigger": "interval", "trigger_args": {"minutes": 1 + number % 997}}
    else:
        schedule = {"trigger": "cron", "trigger_args": {
            "hour": number // 60 % 24, "minute": number % 60}}
    return {
        "id": f"customer.{number:06}", "function": "probe.customer_report",
        "name": f"Report for customer {number}", **schedule,
        "kwargs": {"customer_id": number, "label": "nightly"},
    }


def write_definitions(path: Path, numbers: range) -> None:
    with path.open("w") as lines:
        for number in numbers:
            lines.write(json.dumps(definition(number)) + "\n")


def import_seconds(path: Path, url: str) -> str:
    """Wall time of `scheduler import FILE`, and the CPU seconds of its process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "manage.py", "scheduler", "import", str(path)],
        cwd=ROOT, check=True, env={**os.environ, "DATABASE_URL": url},
    )
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return f"{wall:.1f} s ({cpu:.1f} s CPU in the import process)"


def time_reads(requests: int, stores: dict[int, str]) -> dict[str, dict[int, list[float]]]:
    """Milliseconds of each read, by store size: one request in each store in turn."""
    from django.db import connection

    clients = {}
    for jobs, database in stores.items():
        use_database(database)
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE")  # as autovacuum would after a bulk load
        clients[jobs] = staff_client()
    timings: dict[str, dict[int, list[float]]] = {}
    for name, path in READS.items():
        timings[name] = {jobs: [] for jobs in stores}
        for turn in range(requests + 1):
            # Alternate which store goes first, so neither always follows the other.
            for jobs in sorted(stores, reverse=turn % 2 == 1):
                use_database(stores[jobs])
                middle = f"customer.{jobs // 2:06}"
                start = time.perf_counter()
                check(clients[jobs].get(path.format(middle=middle)))
                if turn:  # the first turn warms up
                    timings[name][jobs].append((time.perf_counter() - start) * 1000)
        print(f"  {name}: " + ", ".join(
            f"{jobs} jobs p50 {statistics.median(samples):.1f} ms"
            for jobs, samples in timings[name].items()), flush=True)
    return timings


READS = {
    "API list page": "/api/scheduler/jobs/?page=5",
    "API search": "/api/scheduler/jobs/?search={middle}",
    "admin job list": "/admin/scheduler_app/job/?p=5",
    "admin search": "/admin/scheduler_app/job/?q={middle}",
    "dashboard": "/admin/scheduler_app/job/dashboard/",
}


def use_database(name: str) -> None:
    """Point this process's connection at another database, connected before any timing."""
    from django.db import connection

    if connection.settings_dict["NAME"] != name:
        connection.close()
        connection.settings_dict["NAME"] = name
    connection.ensure_connection()


def staff_client() -> Any:
    from django.conf import settings
    from django.contrib.auth.models import User
    from django.test import Client

    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "testserver"]  # Django's test client
    user = User.objects.filter(username="bench").first() or User.objects.create_superuser(
        "bench")
    client = Client()
    client.force_login(user)
    return client


def check(response: Any) -> None:
    if response.status_code != 200:
        raise SystemExit(f"request failed: {response.status_code} {response.content[:300]!r}")


def print_reads(timings: dict[str, dict[int, list[float]]]) -> None:
    small, large = next(iter(timings.values()))
    print()
    print(f"{'read':<16} {f'{small} p50':>10} {f'{small} p99':>10} {f'{large} p50':>11} "
          f"{f'{large} p99':>11} {'ratio':>6}")
    for name, samples in timings.items():
        low, high = samples[small], samples[large]
        ratio = statistics.median(high) / statistics.median(low)
        print(f"{name:<16} {statistics.median(low):10.1f} {percentile(low, 99):10.1f} "
              f"{statistics.median(high):11.1f} {percentile(high, 99):11.1f} {ratio:5.2f}x")
    print("(milliseconds per request; ratio = p50 at the large store over p50 at the small)")


if __name__ == "__main__":
    main()
