"""Health endpoints and `scheduler status --check`: what a load balancer and a liveness
probe see, with and without a scheduler, judged by the database's clock."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.db import OperationalError, connection
from django.test import Client
from django.utils import timezone

from scheduler_app.conf import app_settings
from scheduler_app.leadership import LEASE_NAME
from scheduler_app.models import SchedulerLease, SchedulerProcess
from tests.conftest import wait_for


def probe(path: str) -> tuple[int, str]:
    """What an anonymous load balancer gets."""
    response = Client().get(path)
    return response.status_code, response.content.decode()


def status_check() -> int:
    """The exit status of `manage.py scheduler status --check`."""
    try:
        call_command("scheduler", "status", "--check")
    except CommandError as error:
        return error.returncode
    return 0


def active_scheduler(*, heartbeat_age: timedelta = timedelta(0)) -> SchedulerProcess:
    """The rows a live active scheduler keeps: the lease it holds and its heartbeat."""
    now = timezone.now()
    SchedulerLease.objects.create(
        name=LEASE_NAME, holder="host:1:abc", epoch=1, expires_at=now + timedelta(seconds=10)
    )
    return SchedulerProcess.objects.create(
        instance="host:1:abc", host="host", pid=1, role=SchedulerProcess.Role.ACTIVE, epoch=1,
        last_heartbeat=now - heartbeat_age, notification_mode="poll",
    )


def test_healthz_answers_200_without_authentication_while_the_database_answers(db):
    assert probe("/healthz") == (200, "ok\n")


def test_healthz_answers_503_when_the_database_does_not(db, monkeypatch):
    def refuse(*args, **kwargs):
        raise OperationalError("connection refused")

    with monkeypatch.context() as patch:
        patch.setattr(connection, "ensure_connection", refuse)
        answer = probe("/healthz")

    assert answer == (503, "unavailable\n")


def test_scheduler_health_is_503_and_the_check_fails_without_a_scheduler(db):
    assert probe("/healthz/scheduler") == (503, "unavailable\n")
    assert status_check() == 1


def test_scheduler_health_is_200_while_the_active_heartbeat_is_fresh(db):
    active_scheduler()

    assert probe("/healthz/scheduler") == (200, "ok\n")
    assert status_check() == 0


def test_a_stale_heartbeat_or_a_standby_only_is_not_a_running_scheduler(db):
    process = active_scheduler(
        heartbeat_age=timedelta(seconds=app_settings.HEARTBEAT_TIMEOUT + 5)
    )
    assert probe("/healthz/scheduler")[0] == 503
    assert status_check() == 1

    process.last_heartbeat = timezone.now()
    process.save()
    SchedulerLease.objects.update(holder="another:2:def")  # it stands by
    assert probe("/healthz/scheduler")[0] == 503


def test_freshness_is_judged_by_the_database_clock_not_the_web_hosts(db, monkeypatch):
    active_scheduler()
    # The web host's clock runs an hour ahead: by it, the heartbeat and lease are stale.
    ahead = timezone.now() + timedelta(hours=1)
    monkeypatch.setattr(timezone, "now", lambda: ahead)

    assert probe("/healthz/scheduler")[0] == 200
    assert status_check() == 0


@pytest.mark.slow
def test_scheduler_health_follows_a_real_scheduler_process(start_scheduler):
    assert probe("/healthz/scheduler")[0] == 503
    scheduler = start_scheduler()

    assert probe("/healthz/scheduler")[0] == 200
    assert status_check() == 0

    scheduler.stop()
    wait_for(lambda: probe("/healthz/scheduler")[0] == 503, timeout=10)
    assert status_check() == 1
