"""
How a committed change reaches the running scheduler within a second.

Writers call `notify_change()` inside their transaction. On PostgreSQL that is a
`NOTIFY`, which the server delivers only when the transaction commits, so a
rolled-back change wakes nobody. Elsewhere (SQLite) the change's own audit or
run-request row is the signal: `PollingListener` watches the newest of their ids.

The scheduler process runs one listener thread that calls `wake()` on a change;
the scheduler's capped sleep is the safety net for a notification lost while the
listener was reconnecting.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from django.db import DatabaseError, InterfaceError, connection, connections

from scheduler_app.conf import app_settings

logger = logging.getLogger(__name__)


def uses_listen_notify() -> bool:
    """Whether changes are announced by NOTIFY (PostgreSQL, unless polling is forced)."""
    mode = app_settings.NOTIFICATIONS
    if mode == "auto":
        return connection.vendor == "postgresql"
    return mode == "notify"


def notify_change(job_id: str) -> None:
    """Announce a change to `job_id`; delivered when the current transaction commits."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_notify(%s, %s)", [app_settings.CHANNEL, job_id[:200]])


# The payload a scheduler sends when it gives its lease up on a clean stop, so that
# standbys take over at once instead of at their next lease refresh.
LEASE_RELEASED = "scheduler_app:lease-released"


def notify_lease_released() -> None:
    """Tell standby schedulers the lease is free (sent at once: called outside a transaction)."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_notify(%s, %s)", [app_settings.CHANNEL, LEASE_RELEASED])


# How many of the newest audit and run-request ids the change marker holds: more
# than the changes that can be in flight (inserted, not yet committed) at once.
MARKER_IDS = 200


def change_marker() -> tuple[frozenset[int], frozenset[int]]:
    """The newest committed audit and run-request ids: every commit of a change moves it.

    Not `Max(id)`: ids are taken at insert, not at commit, so a change that took id 7
    and commits after the one that took id 8 would leave the maximum at 8 and go
    unseen. A late commit of a lower id still enters this set of the newest ids.
    """
    from scheduler_app.models import JobChange, RunRequest

    return tuple(
        frozenset(model.objects.order_by("-id").values_list("id", flat=True)[:MARKER_IDS])
        for model in (JobChange, RunRequest)
    )


class ChangeListener(threading.Thread):
    """A daemon thread that calls `wake()` whenever a change may have been committed,
    and `on_lease_released()` when the active scheduler gave its lease up."""

    mode = ""

    def __init__(
        self, wake: Callable[[], None], on_lease_released: Callable[[], None] | None = None
    ) -> None:
        super().__init__(name=f"scheduler-{self.mode}-listener", daemon=True)
        self.wake = wake
        self.on_lease_released = on_lease_released
        self.stopping = threading.Event()

    def stop(self) -> None:
        self.stopping.set()

    def run(self) -> None:
        delay = 0.5
        while not self.stopping.is_set():
            try:
                self.listen()
                delay = 0.5
            except (DatabaseError, InterfaceError) as error:
                logger.warning("Change listener lost the database (%s); retrying in %.1fs",
                               error, delay)
                self.stopping.wait(delay)
                delay = min(delay * 2, app_settings.MAX_RETRY_DELAY)
            finally:
                connections.close_all()
            # A change may have been committed while we were not listening.
            self.wake()

    def listen(self) -> None:
        raise NotImplementedError


class PostgresListener(ChangeListener):
    """LISTENs on its own connection (autocommit, as LISTEN requires)."""

    mode = "notify"

    def listen(self) -> None:
        # Imported here: SQLite users need not install PostgreSQL's driver.
        import psycopg

        try:
            self._listen(psycopg)
        except psycopg.Error as error:  # our own connection: Django does not wrap its errors
            raise DatabaseError(str(error)) from error

    def _listen(self, psycopg: Any) -> None:
        params = connection.get_connection_params()
        params["autocommit"] = True
        with psycopg.connect(**params) as listen_connection:
            listen_connection.execute(f'LISTEN "{app_settings.CHANNEL}"')
            logger.info("Listening for changes on channel %r", app_settings.CHANNEL)
            while not self.stopping.is_set():
                # A timeout lets the loop see stop() and notice a dead connection.
                for notification in listen_connection.notifies(timeout=1.0, stop_after=1):
                    if notification.payload == LEASE_RELEASED and self.on_lease_released:
                        self.on_lease_released()
                    else:
                        self.wake()


class PollingListener(ChangeListener):
    """Looks at the change marker every POLL_INTERVAL seconds."""

    mode = "poll"

    def listen(self) -> None:
        seen = change_marker()
        while not self.stopping.wait(app_settings.POLL_INTERVAL):
            current = change_marker()
            if current != seen:
                seen = current
                self.wake()


def make_listener(
    wake: Callable[[], None], on_lease_released: Callable[[], None] | None = None
) -> ChangeListener:
    listener_class = PostgresListener if uses_listen_notify() else PollingListener
    return listener_class(wake, on_lease_released)
