"""
Which runs a job owes when the scheduler claims it late, at a cost that does not
grow with how late it is.

APScheduler 3 (`Job._get_run_times`) walks every missed fire time one by one: a
1-second job behind by a day is 86,400 trigger calls inside the claim transaction,
and an interval of a microsecond behind by two seconds is two million. Here an
interval trigger's missed runs are counted by division; any other trigger (cron,
date, combining or custom triggers) is walked for at most `WALK_LIMIT` fire times
and then jumps to its first fire time from now.

Of the missed runs, a job that coalesces gets the newest one and a job that does
not gets the newest MAX_CATCH_UP_RUNS; the rest are skipped, and `skipped` says
how many, so the run's history can show it.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from apscheduler.triggers.interval import IntervalTrigger

from scheduler_app.triggers import next_fire_time

# Fire times a pass walks for one job whose trigger cannot be counted arithmetically.
WALK_LIMIT = 1000


@dataclass(frozen=True)
class DueRuns:
    """The runs to start now (oldest first), how many were skipped, and the next run time."""

    run_times: list[datetime]
    skipped: int
    next_run_time: datetime | None


def due_runs(
    trigger: Any, next_run_time: datetime | None, now: datetime, *, coalesce: bool, limit: int
) -> DueRuns:
    """The runs due at `now` for a job whose stored next run time is `next_run_time`."""
    if next_run_time is None or next_run_time > now:
        return DueRuns([], 0, next_run_time)
    keep = 1 if coalesce else max(limit, 1)
    if isinstance(trigger, IntervalTrigger):
        newest, count = _counted_interval_runs(trigger, next_run_time, now, keep)
        following = next_fire_time(trigger, newest[-1], now)
    else:
        newest, count, following = _walked_runs(trigger, next_run_time, now, keep)
    return DueRuns(list(newest), count - len(newest), following)


def _counted_interval_runs(
    trigger: IntervalTrigger, first: datetime, now: datetime, keep: int
) -> tuple[list[datetime], int]:
    """The newest `keep` of the fire times first, first + interval, ... up to now (or
    the trigger's end date), and how many there are, without walking them."""
    interval = trigger.interval_length
    last = now if trigger.end_date is None else min(now, trigger.end_date)
    behind = last.timestamp() - first.timestamp()
    count = int(behind // interval) + 1 if behind > 0 else 1
    # The same arithmetic as `IntervalTrigger.get_next_fire_time` applied k times.
    newest = [
        first if index == 0
        else datetime.fromtimestamp(first.timestamp() + interval * index, tz=trigger.timezone)
        for index in range(max(count - keep, 0), count)
    ]
    return newest, count


def _walked_runs(
    trigger: Any, first: datetime, now: datetime, keep: int
) -> tuple[deque[datetime], int, datetime | None]:
    newest: deque[datetime] = deque(maxlen=keep)
    count = 0
    moment: datetime | None = first
    while moment is not None and moment <= now:
        if count == WALK_LIMIT:
            # Too far behind to count: resume from now. A trigger that has no later
            # time from now (or an odd custom one) goes on walking at the next pass.
            resumed = next_fire_time(trigger, None, now)
            if resumed is not None and resumed > newest[-1]:
                moment = resumed
            break
        newest.append(moment)
        count += 1
        moment = next_fire_time(trigger, moment, now)
    return newest, count, moment
