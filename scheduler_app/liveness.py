"""
Whether a run that has no outcome yet is still alive: heartbeats, lost runs and
expired queued runs.

A run's process may die (a killed worker or scheduler) without recording an
outcome, and a run may be a slow one: only the run itself can tell. So each process
that executes runs keeps one `RunHeartbeat` thread that writes, with the database's
clock, `ExecutionRecord.heartbeat_at` of every run it is executing, in one statement,
every quarter of LOST_RUN_TIMEOUT. The active scheduler then marks lost the runs
with no heartbeat for LOST_RUN_TIMEOUT (`mark_lost_runs`): a long run that keeps
beating is never lost, and keeps its `max_instances` place as long as it runs.

A run handed to the task backend that no worker starts (no worker listens to its
queue, the backend lost it) would show as queued forever and hold its place in the
backfill queue: `expire_queued_runs` ends it as expired QUEUED_RUN_TIMEOUT after its
claim, as a run-now request no scheduler claims in time expires. A worker that picks
such a run up later does not run it (`scheduler_app.tasks`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta

from django.db import DatabaseError, InterfaceError, connection, transaction
from django.db.models import Q
from django.db.models.functions import Coalesce, Now
from django.utils import timezone
from django_apscheduler.models import DjangoJobExecution

from scheduler_app import outcomes
from scheduler_app.conf import app_settings
from scheduler_app.models import (
    EXECUTION_EXPIRED,
    EXECUTION_LOST,
    EXECUTION_QUEUED,
    ExecutionRecord,
)

logger = logging.getLogger(__name__)

# Heartbeats per LOST_RUN_TIMEOUT: a run is lost only after this many missed in a row.
HEARTBEATS_PER_TIMEOUT = 4


class RunHeartbeat:
    """The thread that refreshes the heartbeat of the runs this process executes.

    Entering and leaving `beating` is a set operation under a lock: it never waits
    for the database, so a slow or unreachable database never slows a run down, and
    no error of the heartbeat ever reaches a run.
    """

    def __init__(self) -> None:
        self._runs: set[tuple[str, datetime]] = set()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    @contextmanager
    def beating(self, job_id: str, run_time: datetime) -> Iterator[None]:
        """Keep the heartbeat of this run (job id, run time) fresh while the block runs."""
        key = (job_id, run_time)
        with self._lock:
            self._runs.add(key)
            self._start_thread()
        try:
            yield
        finally:
            with self._lock:
                self._runs.discard(key)

    def _start_thread(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        try:
            self._thread = threading.Thread(target=self._run, name="run-heartbeat", daemon=True)
            self._thread.start()
        except RuntimeError:  # no thread to be had: the run goes on without heartbeats
            logger.exception("Could not start the run heartbeat thread")

    def _run(self) -> None:
        while True:
            time.sleep(app_settings.LOST_RUN_TIMEOUT / HEARTBEATS_PER_TIMEOUT)
            with self._lock:
                runs = list(self._runs)
            if runs:
                self._beat(runs)

    def _beat(self, runs: list[tuple[str, datetime]]) -> None:
        try:
            write_heartbeats(runs)
        except (DatabaseError, InterfaceError) as error:
            logger.warning("Could not write the heartbeat of %d run(s): %s", len(runs), error)
        except Exception:  # this thread must outlive any surprise
            logger.exception("Unexpected error writing run heartbeats")
        finally:
            # A fresh connection at each beat: one heartbeat a few minutes apart needs
            # no idle session per worker process, nor one a database restart broke.
            connection.close()


heartbeats = RunHeartbeat()


def write_heartbeats(runs: list[tuple[str, datetime]]) -> int:
    """Set the heartbeat of these running runs (job id, run time) to the database's now."""
    which = Q()
    for job_id, run_time in runs:
        which |= Q(job_id=job_id, run_time=run_time)
    # Only runs still running: a run already marked lost stays lost.
    running = DjangoJobExecution.objects.filter(which, status=DjangoJobExecution.SENT)
    return ExecutionRecord.objects.filter(execution__in=running).update(heartbeat_at=Now())


def lost_message(timeout: float) -> str:
    return f"No heartbeat for {timeout:g}s: the process running it probably died."


def expired_message(timeout: float) -> str:
    return f"Expired: no worker started it within {timeout:g}s of being queued."


def mark_lost_runs() -> int:
    """Mark lost the running runs with no heartbeat for LOST_RUN_TIMEOUT; how many.

    A run that has not beaten yet counts from its start, or, not started as far as
    the store knows, from its run time.
    """
    timeout = app_settings.LOST_RUN_TIMEOUT
    return _end_runs(
        DjangoJobExecution.SENT,
        Coalesce("record__heartbeat_at", "record__started_at", "run_time"),
        timeout,
        status=EXECUTION_LOST,
        message=lost_message(timeout),
    )


def expire_queued_runs() -> int:
    """End as expired the queued runs no worker started within QUEUED_RUN_TIMEOUT of
    their claim; how many. They free their place (max_instances, backfill turn)."""
    timeout = app_settings.QUEUED_RUN_TIMEOUT
    expired = _end_runs(
        EXECUTION_QUEUED,
        Coalesce("record__claimed_at", "run_time"),
        timeout,
        status=EXECUTION_EXPIRED,
        message=expired_message(timeout),
        finished=timezone.now().timestamp(),  # given up now (a lost run's end is unknown)
    )
    if expired:
        logger.warning("%d queued run(s) expired: no worker started them within %gs",
                       expired, timeout)
    return expired


def _end_runs(
    current: str, last_sign_of_life: Coalesce, timeout: float, *, status: str, message: str,
    **fields: float,
) -> int:
    with transaction.atomic():
        # Rows a worker holds (starting or finishing the run) are left for the next
        # sweep: by then they are no longer in `current` status, or still silent.
        ids = list(
            DjangoJobExecution.objects.select_for_update(skip_locked=True, of=("self",))
            .annotate(last_sign_of_life=last_sign_of_life)
            .filter(status=current,
                    last_sign_of_life__lt=Now() - timedelta(seconds=timeout))
            .values_list("id", flat=True)
        )
        DjangoJobExecution.objects.filter(id__in=ids).update(
            status=status, exception=message[:1000], **fields
        )
        outcomes.record_outcomes(execution_ids=ids)
    return len(ids)
