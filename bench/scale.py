"""
100,000 runtime jobs: how long `scheduler import` takes, and what the read side costs
at 100,000 jobs next to 10,000.

On PostgreSQL (the database `scheduler_bench_scale`, and the same name with `_fresh`,
each dropped and created first through `bench.common`), writes N job definitions as JSON
lines (each with a schedule and kwargs of its own, calling `probe.customer_report`) and
runs `manage.py scheduler import` on them as an operator would, in a subprocess: its
wall time and CPU seconds for the first import (all created) and for a second one (all
unchanged). Then, in this process through Django's whole stack with a staff session,
times the reads an operator makes with 10,000 jobs in the store and again after the
import grew it to 100,000: the API's list page and search, the admin's job list and the
dashboard (p50 and p99).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres .venv/bin/python bench/scale.py

`--jobs` sets the large store (default 100,000), `--base` the small one (10,000);
`--database NAME` other database names (NAME and NAME_fresh), so runs cannot collide.
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
from collections.abc import Callable
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
                        help="the database to create (dropped first), and NAME_fresh")
    options = parser.parse_args()

    url = bench_database_url(os.environ.get("DATABASE_URL", ""), options.database)
    setup_django(url)
    with tempfile.TemporaryDirectory() as folder:
        small = Path(folder, "small.jsonl")
        large = Path(folder, "large.jsonl")
        write_definitions(small, range(options.base))
        write_definitions(large, range(options.jobs))
        print(f"import of {options.base} new jobs: {import_seconds(small, url)}", flush=True)
        reads_small = time_reads(options.requests, options.base)
        added = options.jobs - options.base
        print(f"import of {options.jobs} lines ({added} new, {options.base} unchanged): "
              f"{import_seconds(large, url)}", flush=True)
        print(f"import of {options.jobs} unchanged lines: {import_seconds(large, url)}",
              flush=True)
        reads_large = time_reads(options.requests, options.jobs)
        fresh_url = bench_database_url(url, f"{options.database}_fresh")
        setup_fresh(fresh_url)
        print(f"import of {options.jobs} new jobs into an empty store: "
              f"{import_seconds(large, fresh_url)}", flush=True)
    print_reads(options.base, reads_small, options.jobs, reads_large)


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


def time_reads(requests: int, jobs: int) -> dict[str, list[float]]:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")  # as autovacuum would after a bulk load
    client = staff_client()
    middle = f"customer.{jobs // 2:06}"
    reads: dict[str, Callable[[], Any]] = {
        "API list page": lambda: client.get("/api/scheduler/jobs/?page=5"),
        "API search": lambda: client.get(f"/api/scheduler/jobs/?search={middle}"),
        "admin job list": lambda: client.get("/admin/scheduler_app/job/?p=5"),
        "admin search": lambda: client.get(f"/admin/scheduler_app/job/?q={middle}"),
        "dashboard": lambda: client.get("/admin/scheduler_app/job/dashboard/"),
    }
    timings = {}
    for name, read in reads.items():
        check(read())
        samples = []
        for _ in range(requests):
            start = time.perf_counter()
            check(read())
            samples.append((time.perf_counter() - start) * 1000)
        timings[name] = samples
        print(f"  {jobs} jobs, {name}: p50 {statistics.median(samples):.1f} ms", flush=True)
    return timings


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


def print_reads(
    base: int, small: dict[str, list[float]], jobs: int, large: dict[str, list[float]]
) -> None:
    print()
    print(f"{'read':<16} {f'{base} p50':>10} {f'{base} p99':>10} {f'{jobs} p50':>11} "
          f"{f'{jobs} p99':>11} {'ratio':>6}")
    for name, samples in small.items():
        big = large[name]
        ratio = statistics.median(big) / statistics.median(samples)
        print(f"{name:<16} {statistics.median(samples):10.1f} {percentile(samples, 99):10.1f} "
              f"{statistics.median(big):11.1f} {percentile(big, 99):11.1f} {ratio:5.2f}x")
    print("(milliseconds per request; ratio = p50 at the large store over p50 at the small)")


if __name__ == "__main__":
    main()
