"""
Leadership among scheduler processes: exactly one is active, the others stand by.

The active process holds a lease, one row in `SchedulerLease` with an expiry and an
epoch that goes up at every takeover (the fencing token). It renews the lease every
third of its TTL; a standby takes it over once it has expired.

A process that wakes up from a long stall (SIGSTOP, a GC pause, a lost network) may
still believe it leads. Three things stop it from doing harm:

* it starts runs only until half the TTL after its last successful renewal began,
  which is before the lease can expire (`is_active`);
* every claim transaction locks the lease row and checks holder, epoch and expiry
  first (`fence`), so a claim by a deposed leader commits nothing;
* on PostgreSQL that transaction sets `idle_in_transaction_session_timeout`, so a
  leader stalled inside a claim cannot hold the lease row (and block the takeover)
  for longer than half the TTL: the server ends its session and rolls it back.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
import time
from datetime import datetime, timedelta

from django.db import DatabaseError, InterfaceError, connection, transaction
from django.db.models import BooleanField, ExpressionWrapper, Q
from django.db.models.functions import Now
from django.utils import timezone

from scheduler_app.models import SchedulerLease
from scheduler_app.notifications import notify_lease_released

logger = logging.getLogger(__name__)

LEASE_NAME = "default"


class LeadershipLost(Exception):
    """This process no longer holds the lease; it must not claim or write anything."""


def new_instance_name() -> str:
    """A name unique to this process: host, pid and a random suffix (pids are reused)."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


class Leadership:
    """This process's view of the lease, refreshed by the scheduler's coordinator thread."""

    def __init__(self, *, instance: str, ttl: float) -> None:
        self.instance = instance
        self.ttl = ttl
        self.epoch: int | None = None
        self._valid_until = 0.0  # time.monotonic() after which no run may start
        self._lock = threading.Lock()
        # Whether the last refresh failed on a database error (a lock timeout behind a
        # long claim, a lost connection): the coordinator then tries again soon.
        self.refresh_failed = False

    @property
    def is_active(self) -> bool:
        with self._lock:
            return self.epoch is not None and time.monotonic() < self._valid_until

    def refresh(self) -> bool:
        """Renew the lease we hold or take over an expired one; return whether we lead."""
        started = time.monotonic()
        try:
            epoch = self._renew_or_take_over()
        except (DatabaseError, InterfaceError) as error:
            # A lease we could not renew runs out by itself (`_valid_until`).
            logger.warning("Could not refresh the scheduler lease: %s", error)
            self.refresh_failed = True
            return self.is_active
        self.refresh_failed = False
        with self._lock:
            self.epoch = epoch
            if epoch is not None:
                self._valid_until = started + self.ttl / 2
        return epoch is not None

    def step_down(self) -> None:
        with self._lock:
            self.epoch = None

    def fence(self) -> None:
        """Inside a claim transaction: lock the lease row and prove we still hold it."""
        if not self.is_active:
            raise LeadershipLost("the lease was not renewed in time")
        _limit_idle_transaction(seconds=self.ttl / 2)
        # Whether it is still valid is asked of the database's clock in the same query.
        alive = (
            SchedulerLease.objects.select_for_update(no_key=True)
            .filter(name=LEASE_NAME, holder=self.instance, epoch=self.epoch)
            .annotate(alive=ExpressionWrapper(Q(expires_at__gt=Now()), BooleanField()))
            .values_list("alive", flat=True)
            .first()
        )
        if not alive:
            self.step_down()
            raise LeadershipLost("another scheduler took over the lease")

    def release(self) -> None:
        """Give the lease up on a clean stop, so a standby takes over at once."""
        if self.epoch is None:
            return
        try:
            SchedulerLease.objects.filter(
                name=LEASE_NAME, holder=self.instance, epoch=self.epoch
            ).update(expires_at=database_now() - timedelta(seconds=1))
            notify_lease_released()
        except (DatabaseError, InterfaceError) as error:
            logger.warning("Could not release the scheduler lease: %s", error)
        self.step_down()

    def _renew_or_take_over(self) -> int | None:
        with transaction.atomic():
            _limit_lock_wait(seconds=1)
            lease, _ = SchedulerLease.objects.select_for_update().get_or_create(
                name=LEASE_NAME,
                defaults={"holder": "", "epoch": 0, "expires_at": database_now()},
            )
            now = database_now()
            ours = lease.holder == self.instance and lease.epoch == self.epoch
            if not ours and lease.expires_at > now:
                return None
            if not ours:
                lease.epoch += 1
                lease.holder = self.instance
                logger.info("Taking over the scheduler lease (epoch %d)", lease.epoch)
            lease.expires_at = now + timedelta(seconds=self.ttl)
            lease.save()
            return lease.epoch


def database_now() -> datetime:
    """The database server's clock, which every scheduler host agrees on."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT clock_timestamp()")
            return cursor.fetchone()[0]
    return timezone.now()


def _limit_lock_wait(*, seconds: float) -> None:
    # A stalled leader may hold the lease row: give up this round rather than hang.
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT set_config('lock_timeout', %s, true)", [f"{int(seconds * 1000)}ms"]
            )


def _limit_idle_transaction(*, seconds: float) -> None:
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT set_config('idle_in_transaction_session_timeout', %s, true)",
                [f"{int(seconds * 1000)}ms"],
            )
