"""Helpers shared by the benchmark scripts: databases, processes, percentiles."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
POSTGRES_ADMIN_URL = "postgres://postgres@127.0.0.1:5432/postgres"


def recreate_postgres_database(url: str) -> None:
    import psycopg

    name = url.rsplit("/", 1)[1]
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{name}"')


def setup_django(url: str) -> None:
    """Configure Django in this process for a fresh database at `url`, migrated."""
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")
    if url.startswith("postgres"):
        recreate_postgres_database(url)
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)


def start_manage_py(*command: str, **env: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "manage.py", *command], cwd=ROOT, env={**os.environ, **env},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )


def wait_for_heartbeat(pid: int, *, role: str | None = None, timeout: float = 60) -> None:
    from scheduler_app.models import SchedulerProcess

    heartbeats = SchedulerProcess.objects.filter(pid=pid, stopped_at=None)
    if role:
        heartbeats = heartbeats.filter(role=role)
    deadline = time.monotonic() + timeout
    while not heartbeats.exists():
        if time.monotonic() > deadline:
            raise SystemExit(f"scheduler {pid} did not report as {role or 'alive'}")
        time.sleep(0.05)


def percentile(samples: list[float], percent: int) -> float:
    ordered = sorted(samples)
    if len(ordered) == 1:
        return ordered[0]
    return statistics.quantiles(ordered, n=100, method="inclusive")[percent - 1]
