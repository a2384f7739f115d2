"""
The web side under its production server next to Django's development server, over HTTP.

On one fresh PostgreSQL database with one real `runscheduler` (LISTEN/NOTIFY), the script
starts each server in turn on a free loopback port, in the same run (the machine is noisy:
compare the rows of one run):

* `runserver`: `manage.py runserver --noreload` (threaded, Django's development server);
* `gunicorn`: `gunicorn project.wsgi --workers 2` (sync workers), as `./scripts/demo` and
  `deploy/` run it.

and measures through real HTTP requests of a staff user's session (a new connection per
request, as a script without pooling makes them):

* run-now → job start: `POST jobs/probe.record/trigger/` sent → the job function starts in
  the scheduler process (its `ProbeRun.started_at`), one request at a time;
* job detail: `GET jobs/reports.weekly/`;
* 8 writers: eight threads PUT schedules on one job (no If-Match) for `--seconds`; the
  figure is committed writes per second, counted by the job's version.

Run from the project root (PostgreSQL on 127.0.0.1:5432):

    .venv/bin/python -m bench.production [--requests 200] [--seconds 10]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from bench.common import ROOT, percentile, setup_django, start_manage_py, wait_for_heartbeat

DATABASE_URL = "postgres://postgres@127.0.0.1:5432/scheduler_bench_production"
PROBE = "probe.record"
DETAIL_JOB = "reports.weekly"
WRITE_JOB = "cache.warm"
WRITERS = 8


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=10)
    options = parser.parse_args()
    setup_django(DATABASE_URL)
    environment = {"DATABASE_URL": DATABASE_URL, "DJANGO_SETTINGS_MODULE": "bench.settings"}
    scheduler = start_manage_py("runscheduler", **environment)
    try:
        wait_for_heartbeat(scheduler.pid, role="active")
        session = staff_session()
        print(f"{'server':<10} {'measure':<26} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}")
        for name, command in servers():
            port = free_port()
            server = subprocess.Popen(
                [part.format(port=port) for part in command], cwd=ROOT,
                env={**os.environ, **environment},
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )
            try:
                client = Client(port, session)
                client.wait_until_up()
                report(name, "run-now → job start", run_now_latencies(client, options.requests))
                report(name, "job detail GET", timed(
                    lambda client=client: client.get(f"jobs/{DETAIL_JOB}/"), options.requests
                ))
                writes = committed_writes_per_second(client, options.seconds)
                print(f"{name:<10} {f'{WRITERS} writers, committed/s':<26} {writes:8.1f}")
            finally:
                server.terminate()
                server.wait(timeout=30)
    finally:
        scheduler.terminate()
        scheduler.wait(timeout=30)


def servers() -> list[tuple[str, list[str]]]:
    bin_dir = os.path.dirname(sys.executable)
    return [
        ("runserver", [sys.executable, "manage.py", "runserver", "--noreload",
                       "127.0.0.1:{port}"]),
        ("gunicorn", [os.path.join(bin_dir, "gunicorn"), "project.wsgi", "--workers", "2",
                      "--bind", "127.0.0.1:{port}"]),
    ]


def staff_session() -> dict[str, str]:
    """Cookies and the CSRF header of a superuser's session, made in the database."""
    from django.conf import settings
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
    from django.contrib.auth.models import User
    from django.contrib.sessions.backends.db import SessionStore
    from django.utils.crypto import get_random_string

    user = User.objects.create_superuser("bench", "bench@example.com", "bench-password")
    session = SessionStore()
    session[SESSION_KEY] = str(user.pk)
    session[BACKEND_SESSION_KEY] = settings.AUTHENTICATION_BACKENDS[-1]
    session[HASH_SESSION_KEY] = user.get_session_auth_hash()
    session.create()
    csrf = get_random_string(32)  # a CSRF secret: cookie and header carry the same
    return {
        "Cookie": f"{settings.SESSION_COOKIE_NAME}={session.session_key}; "
                  f"{settings.CSRF_COOKIE_NAME}={csrf}",
        "X-CSRFToken": csrf,
    }


class Client:
    """HTTP requests to the API, a new connection each."""

    def __init__(self, port: int, headers: dict[str, str]) -> None:
        self.port = port
        self.headers = headers

    def request(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        headers = {**self.headers, "Accept": "application/json"}
        payload = None
        if body is not None:
            payload = json.dumps(body)
            headers["Content-Type"] = "application/json"
        try:
            connection.request(method, f"/api/scheduler/{path}", payload, headers)
            response = connection.getresponse()
            return response.status, json.loads(response.read() or b"null")
        finally:
            connection.close()

    def get(self, path: str) -> Any:
        status, data = self.request("GET", path)
        assert status == 200, (status, data)
        return data

    def wait_until_up(self) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                self.get("status/")
                return
            except OSError:
                time.sleep(0.2)
        raise SystemExit(f"no server on port {self.port}")


def run_now_latencies(client: Client, count: int) -> list[float]:
    from tests.testapp.models import ProbeRun

    latencies = []
    for _ in range(count):
        seen = ProbeRun.objects.count()
        sent = datetime.now(UTC)
        status, data = client.request("POST", f"jobs/{PROBE}/trigger/")
        assert status == 202, (status, data)
        run = wait_for_new_run(seen)
        latencies.append((run.started_at - sent).total_seconds() * 1000)
        time.sleep(random.uniform(0.02, 0.1))  # not in step with anything
    return latencies


def wait_for_new_run(seen: int) -> Any:
    from tests.testapp.models import ProbeRun

    deadline = time.monotonic() + 30
    while True:
        runs = list(ProbeRun.objects.order_by("id")[seen:seen + 1])
        if runs:
            return runs[0]
        if time.monotonic() > deadline:
            raise SystemExit("the scheduler did not run the job within 30 s")
        time.sleep(0.001)


def timed(request: Callable[[], Any], count: int) -> list[float]:
    for _ in range(10):  # warm up
        request()
    samples = []
    for _ in range(count):
        started = time.perf_counter()
        request()
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def committed_writes_per_second(client: Client, seconds: float) -> float:
    before = client.get(f"jobs/{WRITE_JOB}/")["version"]
    stop = time.monotonic() + seconds
    failures: list[Any] = []

    def write(index: int) -> None:
        minute = 0
        while time.monotonic() < stop:
            minute = (minute + 1) % 60
            spec = {"trigger": "cron", "trigger_args": {"minute": str(minute), "hour": str(index)}}
            status, data = client.request("PUT", f"jobs/{WRITE_JOB}/schedule/", spec)
            if status != 200:
                failures.append((status, data))

    threads = [threading.Thread(target=write, args=(index,)) for index in range(WRITERS)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started
    assert not failures, failures[:3]
    return (client.get(f"jobs/{WRITE_JOB}/")["version"] - before) / elapsed


def report(server: str, measure: str, samples: list[float]) -> None:
    print(f"{server:<10} {measure:<26} {percentile(samples, 50):8.1f} "
          f"{percentile(samples, 99):8.1f} {max(samples):8.1f}", flush=True)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


if __name__ == "__main__":
    main()
