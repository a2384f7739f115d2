"""Shared fixtures and helpers: synced demo jobs, stored jobs edited behind the services'
back, recorded runs, staff users, threads with their own connections, and a real
`runscheduler` subprocess against the test database."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth.models import Permission, User
from django.contrib.messages import get_messages
from django.db import connection, connections
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from django_apscheduler.models import DjangoJob, DjangoJobExecution

from scheduler_app import services
from scheduler_app.models import (
    ExecutionRecord,
    JobChange,
    JobRecord,
    RunRequest,
    SchedulerProcess,
)
from scheduler_app.state import dump_state, load_state, record_mirror

PROJECT_ROOT = Path(__file__).resolve().parent.parent
ON_POSTGRES = settings.DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql"


def pytest_collection_modifyitems(config: Any, items: list[Any]) -> None:
    skip = pytest.mark.skip(reason="needs PostgreSQL; the PostgreSQL run of the suite covers it")
    for item in items:
        if "postgres_only" in item.keywords and not ON_POSTGRES:
            item.add_marker(skip)


@pytest.fixture
def synced(db: None) -> services.SyncReport:
    """The declared jobs (demo and probe) in the store, as after a scheduler start."""
    return services.sync_jobs_from_code()


def edit_stored_job(job_id: str, **changes: Any) -> None:
    """Change a job's stored state behind the services' back (code drift, a deploy, a
    run that already happened), keeping the next-run column and what the record mirrors
    of the state in step with it, as every writer of the app keeps them."""
    row = DjangoJob.objects.get(id=job_id)
    state = load_state(row.job_state)
    state.update(changes)
    row.job_state, row.next_run_time = dump_state(state), state["next_run_time"]
    row.save()
    JobRecord.objects.filter(job_id=job_id).update(**record_mirror(state))


def copy_stored_job(source_id: str, new_id: str, **changes: Any) -> None:
    """Store a new job row made from another job's state."""
    state = {**load_state(DjangoJob.objects.get(id=source_id).job_state), "id": new_id, **changes}
    DjangoJob.objects.create(id=new_id, job_state=dump_state(state),
                             next_run_time=state["next_run_time"])


def copy_job_with_record(source_id: str, new_id: str, *, name: str | None = None) -> None:
    """A stored copy of a cron job, with the record the services keep, under an id that no
    code declares (an orphan)."""
    copy_stored_job(source_id, new_id)
    JobRecord.objects.create(
        job_id=new_id, version=1, name=name or f"Copy of {source_id}", trigger_type="cron"
    )


def break_function_reference(job_id: str) -> None:
    """Point a stored job at a function that no longer exists (a renamed function):
    `project.jobs:function_renamed_away`."""
    edit_stored_job(job_id, func="project.jobs:function_renamed_away")


def snapshot(job_id: str) -> tuple[Any, ...]:
    """Everything a change to a job touches: row, version, audit trail, run requests."""
    row = DjangoJob.objects.get(id=job_id)
    return (
        bytes(row.job_state),
        row.next_run_time,
        row.record.version,
        JobChange.objects.filter(job_id=job_id).count(),
        RunRequest.objects.filter(job_id=job_id).count(),
    )


def record_execution(
    job_id: str,
    *,
    minutes_ago: float,
    status: str = DjangoJobExecution.SUCCESS,
    duration: float = 1.5,
    exception: str | None = None,
    lateness: float | None = None,
) -> DjangoJobExecution:
    """A finished run of a job, as the scheduler process records it (with its start
    `lateness` seconds after its run time, when given)."""
    run_time = timezone.now() - timedelta(minutes=minutes_ago)
    execution = DjangoJobExecution.objects.create(
        job_id=job_id,
        status=status,
        run_time=run_time,
        duration=duration,
        finished=run_time.timestamp() + duration,
        exception=exception,
        traceback=f"Traceback (most recent call last):\n{exception}" if exception else None,
    )
    ExecutionRecord.objects.create(
        execution=execution,
        started_at=None if lateness is None else run_time + timedelta(seconds=lateness),
    )
    return execution


def last_sunday(year: int, month: int) -> date:
    """The last Sunday of a month: when Europe's clocks change in March and October."""
    last_day = date(year + month // 12, month % 12 + 1, 1) - timedelta(days=1)
    return last_day - timedelta(days=(last_day.weekday() + 1) % 7)


def staff_client(*codenames: str) -> Client:
    """A logged-in staff user with these django_apscheduler permissions (and no others)."""
    user = User.objects.create_user(f"staff_{'_'.join(codenames) or 'none'}", is_staff=True)
    user.user_permissions.add(
        *Permission.objects.filter(
            content_type__app_label="django_apscheduler", codename__in=codenames
        )
    )
    client = Client()
    client.force_login(user)
    return client


def messages_of(response: Any) -> list[str]:
    """The messages the user sees after this response."""
    return [str(message) for message in get_messages(response.wsgi_request)]


def count_queries(client: Client, path: str) -> int:
    """How many queries a successful GET of this page costs."""
    with CaptureQueriesContext(connection) as queries:
        response = client.get(path)
    assert response.status_code == 200
    return len(queries)


def run_action(client: Client, action: str, *job_ids: str) -> list[str]:
    """Apply an action of the admin's job list to jobs; return the messages the user sees."""
    response = client.post(
        reverse("admin:scheduler_app_job_changelist"),
        {"action": action, "_selected_action": list(job_ids), "index": 0},
    )
    assert response.status_code == 302, response.content.decode()[:500]
    return messages_of(response)


def run_in_threads(count: int, work: Callable[[int], Any]) -> list[Any]:
    """Run `work(i)` in `count` threads started together; return results or exceptions.

    Each thread uses its own database connection, closed when it is done.
    """
    barrier = threading.Barrier(count)
    results: list[Any] = [None] * count

    def target(index: int) -> None:
        try:
            barrier.wait()
            results[index] = work(index)
        except BaseException as error:  # reported to the test, not swallowed
            results[index] = error
        finally:
            connections.close_all()

    threads = [threading.Thread(target=target, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads), "threads deadlocked"
    return results


def database_url() -> str:
    """A DATABASE_URL for the test database that pytest-django set up."""
    params = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{params['NAME']}"
    user = params.get("USER") or "postgres"
    host = params.get("HOST") or "127.0.0.1"
    port = params.get("PORT") or 5432
    return f"postgres://{user}@{host}:{port}/{params['NAME']}"


class ManagedProcess:
    """A real `manage.py` process on the test database; its output is kept for failures."""

    def __init__(self, command: list[str], extra_env: dict[str, str] | None = None) -> None:
        env = {
            **os.environ,
            "DATABASE_URL": database_url(),
            "DJANGO_SETTINGS_MODULE": "tests.settings",
            "PYTHONUNBUFFERED": "1",
            **(extra_env or {}),
        }
        self.process = subprocess.Popen(
            [sys.executable, "manage.py", *command],
            cwd=PROJECT_ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line)

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def stop(self, timeout: float = 30) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=timeout)
        finally:
            if self.process.poll() is None:
                self.process.kill()
            self._reader.join(timeout=5)


class SchedulerSubprocess(ManagedProcess):
    """A real `manage.py runscheduler` process."""

    def __init__(self, extra_env: dict[str, str] | None = None) -> None:
        super().__init__(["runscheduler", "--log-level", "DEBUG"], extra_env)

    def wait_until(self, *, role: str | None, timeout: float = 30) -> None:
        """Wait for this process's heartbeat (in `role`, when given)."""
        heartbeats = SchedulerProcess.objects.filter(pid=self.process.pid, stopped_at=None)
        if role is not None:
            heartbeats = heartbeats.filter(role=role)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process.poll() is None, f"scheduler exited:\n{self.output}"
            if heartbeats.exists():
                # The heartbeat comes from its own thread: give the loop a moment.
                time.sleep(0.3)
                return
            time.sleep(0.05)
        raise AssertionError(f"scheduler did not become {role or 'alive'}:\n{self.output}")


@pytest.fixture
def start_scheduler(transactional_db: None) -> Iterator[Callable[..., SchedulerSubprocess]]:
    """Start real scheduler processes; all are stopped before the database is flushed."""
    started: list[SchedulerSubprocess] = []

    def start(*, role: str | None = "active", **extra_env: str) -> SchedulerSubprocess:
        scheduler = SchedulerSubprocess(extra_env)
        started.append(scheduler)
        scheduler.wait_until(role=role)
        return scheduler

    yield start
    for scheduler in started:
        scheduler.stop()


@pytest.fixture
def start_worker(transactional_db: None) -> Iterator[Callable[..., ManagedProcess]]:
    """Start real django-tasks-db workers (`manage.py db_worker`) on the test database."""
    started: list[ManagedProcess] = []

    def start(**extra_env: str) -> ManagedProcess:
        worker = ManagedProcess(
            ["db_worker", "--no-reload", "--no-startup-delay", "--interval", "0.1"], extra_env
        )
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()


def wait_for(condition: Callable[[], Any], *, timeout: float, interval: float = 0.02) -> Any:
    """Poll `condition` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s")
