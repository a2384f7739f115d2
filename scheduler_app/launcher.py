"""
Runs claimed ahead of their time, started on the dot (the "threads" execution mode).

A claim commits before its runs start, so that no run can start twice, and the commit
waits for PostgreSQL to flush its WAL: about 8 ms on the benchmark machine, which was
most of how late a run started when the scheduler had little to do. So the scheduler
claims the runs due within `CLAIM_AHEAD` seconds (its pass starts that much before
the next run time), and `RunLauncher` starts each at its scheduled time, never before.

Between the claim and that time an operator may change the job. Before a run held
here starts, its job's stored state is read again (one query for the runs due
together) and compared with the state the claim wrote:

* unchanged: the run starts as claimed;
* its next run time is no longer the one the claim wrote (paused, resumed, reset),
  its schedule changed, or it was deleted: the run is given back as if it had not
  been claimed (its execution is deleted, the overdue window it opened is closed),
  and a job due again at that time is claimed again by the next pass: a paused job
  starts no run whose time comes after the pause committed, and a new schedule
  replaces the old one's runs that were not due yet;
* anything else changed (its arguments, name or run policy): it starts with the job
  as stored now, as a run claimed at its time would have.

`max_instances` is checked when the run starts, as for any run. One case moves with
the claim: once a job's last run (a date trigger's) is claimed, the job has no next
run time, so a pause in the CLAIM_AHEAD before it finds it "already paused", as a
pause waiting on the claim's row lock always did.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import pickle
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from apscheduler.job import Job
from django.db import DatabaseError, InterfaceError, connection

from scheduler_app import selectors
from scheduler_app.jobstore import ClaimedRun, give_back_claimed_runs
from scheduler_app.state import PICKLE_PROTOCOL, UnreadableState, load_state

logger = logging.getLogger(__name__)


@dataclass(order=True)
class _Held:
    run_time: datetime
    sequence: int  # first come, first started among runs of the same time
    run: ClaimedRun = field(compare=False)


class RunLauncher(threading.Thread):
    """Starts held runs at their scheduled times, after checking their jobs (above).

    `start_run` starts a run now (the scheduler's `_submit_isolated`); `job_from_state`
    builds a job from a stored state (None if it cannot be built).
    """

    def __init__(
        self,
        *,
        start_run: Callable[[ClaimedRun], None],
        job_from_state: Callable[[dict[str, Any]], Job | None],
    ) -> None:
        super().__init__(name="scheduler-launcher", daemon=True)
        self._start_run = start_run
        self._job_from_state = job_from_state
        self._held: list[_Held] = []
        self._sequence = itertools.count()
        self._changed = threading.Condition()
        self._stopping = False

    def hold(self, run: ClaimedRun) -> None:
        """Start `run` (a claimed run with one run time, still ahead) at its time."""
        [run_time] = run.run_times
        with self._changed:
            heapq.heappush(self._held, _Held(run_time, next(self._sequence), run))
            self._changed.notify()

    def stop(self) -> None:
        """Start what is held, each at its time (at most CLAIM_AHEAD from now), then end."""
        with self._changed:
            self._stopping = True
            self._changed.notify()
        if self.is_alive():
            self.join()

    def run(self) -> None:
        try:
            while (due := self._wait_for_due_runs()) is not None:
                try:
                    checked = self._checked(due)
                except Exception:
                    # A bug here must not stop every later run: these are not started
                    # (their records are marked lost later), the next ones are tried.
                    logger.exception("Could not check %d run(s) claimed ahead", len(due))
                    continue
                for run in checked:
                    self._start_run(run)  # isolated: one run's failure is its own
        finally:
            connection.close()  # this thread's own

    def _wait_for_due_runs(self) -> list[ClaimedRun] | None:
        """The held runs whose time has come, once some has; None when stopping with
        nothing held."""
        with self._changed:
            while True:
                if not self._held:
                    if self._stopping:
                        return None
                    self._changed.wait()
                    continue
                ahead = self._held[0].run_time.timestamp() - time.time()
                if ahead <= 0:
                    break
                self._changed.wait(ahead)
            now = time.time()
            due = []
            while self._held and self._held[0].run_time.timestamp() <= now:
                due.append(heapq.heappop(self._held).run)
            return due

    def _checked(self, runs: list[ClaimedRun]) -> list[ClaimedRun]:
        """The runs to start, as their jobs are stored now; the others are given back."""
        try:
            # A deleted job has no live row: its run is given back.
            stored = dict(
                selectors.live_jobs().filter(id__in={run.job.id for run in runs})
                .values_list("id", "job_state")
            )
        except (DatabaseError, InterfaceError) as error:
            # No change can commit while the database cannot be reached either: the
            # claims stand, as for runs claimed at their time.
            logger.warning("Could not look at the jobs of %d run(s) claimed ahead (%s); "
                           "starting them as claimed", len(runs), error)
            connection.close()
            return runs
        to_start, given_back = [], []
        for run in runs:
            job_state = stored.get(run.job.id)
            if job_state is None:
                given_back.append(run)
            elif bytes(job_state) == run.job_state:
                to_start.append(run)
            elif (job := self._job_as_stored_or_none(run, bytes(job_state))) is not None:
                to_start.append(replace(run, job=job, job_state=bytes(job_state)))
            else:
                given_back.append(run)
        if given_back:
            _give_back(given_back)
        return to_start

    def _job_as_stored_or_none(self, run: ClaimedRun, job_state: bytes) -> Job | None:
        try:
            return self._job_as_stored(run, job_state)
        except Exception:  # a state of another app's making can fail anywhere: not started
            logger.exception("Could not compare job %r with its claim", run.job.id)
            return None

    def _job_as_stored(self, run: ClaimedRun, job_state: bytes) -> Job | None:
        """The job to run instead of the claimed one: changed since the claim, but on
        the same schedule at the same place in it; None if the run must not start."""
        try:
            state = load_state(job_state)
        except UnreadableState:
            return None  # the next claim sets the job aside, audited
        if state.get("next_run_time") != run.job.next_run_time:
            return None
        if not _same_schedule(run.job.trigger, state["trigger"]):
            return None
        return self._job_from_state(state)


def _same_schedule(claimed: Any, stored: Any) -> bool:
    try:
        return pickle.dumps(claimed, PICKLE_PROTOCOL) == pickle.dumps(stored, PICKLE_PROTOCOL)
    except Exception:  # a trigger of another app may not pickle: treat it as changed
        return False


def _give_back(runs: list[ClaimedRun]) -> None:
    """Undo the claims of runs that must not start: as if they had not been claimed."""
    try:
        give_back_claimed_runs([(run.job.id, run_time) for run in runs
                                for run_time in run.run_times])
    except (DatabaseError, InterfaceError) as error:
        # The runs do not start; their records stay "running" until the lost-run
        # sweep marks them lost, which says they did not finish.
        logger.warning("Could not give back %d run(s) claimed ahead (%s)", len(runs), error)
        connection.close()
        return
    for run in runs:
        logger.info("Run of job %r at %s not started: the job was paused or rescheduled "
                    "after it was claimed, before its time", run.job.id, run.run_times[0])
