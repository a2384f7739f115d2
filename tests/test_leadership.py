"""Several scheduler processes on one PostgreSQL database: one active, fenced failover."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from datetime import timedelta

import pytest
from django.db import connection, connections, transaction
from django.db.models import Count
from django.utils import timezone
from django_apscheduler.models import DjangoJobExecution

from scheduler_app import selectors, services
from scheduler_app.conf import app_settings
from scheduler_app.leadership import Leadership
from scheduler_app.models import SchedulerLease, SchedulerProcess
from scheduler_app.scheduler import Coordinator
from tests.conftest import wait_for
from tests.testapp.models import ProbeRun

pytestmark = [pytest.mark.slow, pytest.mark.postgres_only]

EVERY_SECOND = {"trigger": "cron", "trigger_args": {"second": "*"}}
PROBE = "probe.record"


def run_every_second() -> None:
    services.reschedule_job(job_id=PROBE, trigger_spec=EVERY_SECOND, actor="t", source="cli")


def stop_runs() -> None:
    services.pause_job(job_id=PROBE, actor="t", source="cli")
    time.sleep(1.5)  # let a run claimed just before the pause finish


def assert_each_run_fired_once() -> None:
    """No (job, run time) recorded twice, and no recorded run executed twice.

    A process killed mid-run may leave a run that executed without its outcome
    recorded, so runs are bounded by the recorded starts, not equal to successes.
    """
    executions = DjangoJobExecution.objects.filter(job_id=PROBE)
    duplicates = executions.values("run_time").annotate(n=Count("id")).filter(n__gt=1)
    assert not duplicates.exists()
    succeeded = executions.filter(status=DjangoJobExecution.SUCCESS).count()
    started = executions.exclude(status=DjangoJobExecution.MISSED).count()
    assert succeeded <= ProbeRun.objects.filter(job_id=PROBE).count() <= started


def active_pids() -> list[int]:
    return [i.pid for i in selectors.scheduler_status().instances if i.role == "active"]


def test_three_schedulers_run_a_one_second_job_on_schedule_and_never_twice(start_scheduler):
    first = start_scheduler()
    standbys = [start_scheduler(role="standby") for _ in range(2)]
    status = selectors.scheduler_status()
    assert status.running and active_pids() == [first.process.pid]
    assert sorted(i.pid for i in status.instances if i.role == "standby") == sorted(
        s.process.pid for s in standbys
    )

    run_every_second()
    started = timezone.now()
    time.sleep(30)
    stop_runs()
    elapsed = (timezone.now() - started).total_seconds() - 1.5

    runs = ProbeRun.objects.filter(job_id=PROBE).count()
    assert abs(runs - round(elapsed)) <= 1, (runs, elapsed)
    assert_each_run_fired_once()
    assert set(ProbeRun.objects.values_list("pid", flat=True)) == {first.process.pid}


def test_killed_active_scheduler_is_replaced_within_ttl_plus_two_seconds(start_scheduler):
    first = start_scheduler()
    second = start_scheduler(role="standby")
    run_every_second()
    wait_for(lambda: ProbeRun.objects.count() >= 2, timeout=5)

    os.kill(first.process.pid, signal.SIGKILL)
    killed = time.monotonic()
    wait_for(lambda: active_pids() == [second.process.pid], timeout=app_settings.LEASE_TTL + 2)
    failover = time.monotonic() - killed

    assert failover <= app_settings.LEASE_TTL + 2
    wait_for(lambda: ProbeRun.objects.filter(pid=second.process.pid).count() >= 2, timeout=5)
    # A change committed after the failover is kept by the new active scheduler.
    stop_runs()
    runs_after_pause = ProbeRun.objects.count()
    time.sleep(2)
    assert ProbeRun.objects.count() == runs_after_pause
    assert_each_run_fired_once()


def test_stalled_leader_starts_nothing_and_writes_nothing_when_it_wakes(start_scheduler):
    first = start_scheduler()
    second = start_scheduler(role="standby")
    run_every_second()
    wait_for(lambda: ProbeRun.objects.count() >= 2, timeout=5)

    first.process.send_signal(signal.SIGSTOP)
    try:
        wait_for(lambda: active_pids() == [second.process.pid],
                 timeout=app_settings.LEASE_TTL + 2)
        woke_at = timezone.now()
    finally:
        first.process.send_signal(signal.SIGCONT)
    time.sleep(3)

    assert not ProbeRun.objects.filter(pid=first.process.pid, started_at__gte=woke_at).exists()
    assert ProbeRun.objects.filter(pid=second.process.pid, started_at__gte=woke_at).count() >= 2
    heartbeat = SchedulerProcess.objects.get(pid=first.process.pid)
    assert heartbeat.role == "standby" and heartbeat.epoch is None
    assert active_pids() == [second.process.pid]
    stop_runs()
    assert_each_run_fired_once()
    assert first.process.poll() is None, "the former leader should stand by, not exit"


def test_stopped_active_scheduler_hands_over_at_once(start_scheduler):
    # A long lease and rare refreshes: only the release notification can make the
    # standby take over within a second.
    slow_refresh = {"TEST_LEASE_TTL": "60", "TEST_HEARTBEAT_INTERVAL": "20"}
    first = start_scheduler(**slow_refresh)
    second = start_scheduler(role="standby", **slow_refresh)

    first.process.send_signal(signal.SIGTERM)
    stopped = time.monotonic()
    wait_for(lambda: active_pids() == [second.process.pid], timeout=5)

    assert time.monotonic() - stopped < 1.5
    assert first.process.wait(timeout=10) == 0
    run_every_second()
    wait_for(lambda: ProbeRun.objects.filter(pid=second.process.pid).exists(), timeout=5)
    stop_runs()


def restart_postgresql() -> None:
    version = os.listdir("/etc/postgresql")[0]
    subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "restart"],
        check=True, capture_output=True,
    )


def test_schedulers_recover_from_a_postgresql_restart_with_exactly_one_active(start_scheduler):
    schedulers = [start_scheduler(), start_scheduler(role="standby")]
    run_every_second()
    wait_for(lambda: ProbeRun.objects.count() >= 2, timeout=5)

    connection.close()
    restart_postgresql()
    restarted = timezone.now()

    wait_for(lambda: ProbeRun.objects.filter(started_at__gt=restarted).count() >= 3, timeout=30)
    assert len(active_pids()) == 1
    assert all(scheduler.process.poll() is None for scheduler in schedulers)
    stop_runs()
    assert_each_run_fired_once()


@pytest.mark.postgres_only
@pytest.mark.django_db(transaction=True)
def test_a_renewal_that_timed_out_behind_a_long_claim_is_retried_before_the_lease_lapses():
    class NoScheduler:
        def __init__(self) -> None:
            self.leadership = Leadership(instance="test", ttl=9.0)  # valid 4.5 s after a renewal

        def wakeup(self) -> None:
            pass

    scheduler = NoScheduler()
    assert scheduler.leadership.refresh()
    coordinator = Coordinator(scheduler, "notify")
    coordinator.interval = 2.5  # a renewal at 0 s, 2.5 s, 5 s: as the shipped TTL/3
    claim_started, lapsed = threading.Event(), []

    def hold_the_lease_row_like_a_long_claim() -> None:
        # The fence of a claim locks the lease row for the claim's whole transaction.
        with transaction.atomic():
            SchedulerLease.objects.select_for_update(no_key=True).get(name="default")
            claim_started.set()
            time.sleep(1.5)  # longer than the renewal's 1 s lock timeout
        connections.close_all()

    coordinator.start()
    try:
        time.sleep(2.4)  # just before the coordinator's second renewal, which times out
        claim = threading.Thread(target=hold_the_lease_row_like_a_long_claim)
        claim.start()
        deadline = time.monotonic() + 3.5
        while time.monotonic() < deadline:
            if not scheduler.leadership.is_active:
                lapsed.append(time.monotonic())
            time.sleep(0.05)
        claim.join()
    finally:
        coordinator.stopping.set()
        coordinator.refresh_requested.set()
        coordinator.join(10)
    assert claim_started.is_set()
    assert not lapsed, "the lease lapsed after one renewal timed out"


@pytest.mark.django_db(transaction=True)
def test_running_does_not_depend_on_the_hosts_clocks(monkeypatch):
    """Scheduler host a minute behind, web host a minute ahead: still running."""
    from unittest import mock

    from django.utils import timezone as django_timezone

    from scheduler_app import selectors
    from scheduler_app.scheduler import Coordinator, Scheduler

    real_now = django_timezone.now
    scheduler = Scheduler()
    with mock.patch.object(django_timezone, "now", lambda: real_now() - timedelta(minutes=1)):
        assert scheduler.leadership.refresh()
        Coordinator(scheduler, "notify").beat(active=True)
    with mock.patch.object(django_timezone, "now", lambda: real_now() + timedelta(minutes=1)):
        status = selectors.scheduler_status()

    assert status.running
    assert abs((status.checked_at - real_now()).total_seconds()) < 5
    scheduler.leadership.release()
