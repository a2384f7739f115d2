"""
Read-only queries behind the admin's scheduler dashboard.

Like `selectors`, everything is read from the store when the page is drawn: the
scheduler's heartbeat, the runs the stored triggers will fire in the next hours, the
latest failed runs, and each job's recent success rate, durations and lateness. The results
carry the positions the page's inline SVG charts need, so the template only draws.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db.models import F, Max, Window
from django.db.models.functions import RowNumber
from django.utils import timezone
from django_apscheduler.models import DjangoJobExecution

from scheduler_app import selectors, triggers
from scheduler_app.conf import app_settings
from scheduler_app.models import EXECUTION_EXPIRED, EXECUTION_LOST
from scheduler_app.state import UnreadableState, load_state

TIMELINE_HOURS = 24
# Enough for a job every 30 s (2,880 runs a day); the cap keeps a job that fires every
# second from making the page slow (a cron fire time costs about 20 microseconds).
TIMELINE_MAX_RUNS = 3000
# Runs closer together than this (percent of the window, about 4 minutes in 24 hours)
# are drawn as one band: separate ticks would merge into one anyway.
TIMELINE_MERGE_PERCENT = 0.25
TIMELINE_MARK_HOURS = 3
# Rows of the timeline and of the trends: the jobs due soonest, the jobs run most
# recently. With 100,000 jobs a page of every job would unpickle them all and draw
# 100,000 rows; the page says how many it leaves out.
DASHBOARD_ROWS = 50
TREND_WINDOW = 20
FAILURE_STATUSES = (
    DjangoJobExecution.ERROR,
    DjangoJobExecution.MISSED,
    DjangoJobExecution.MAX_INSTANCES,
    EXECUTION_LOST,
    EXECUTION_EXPIRED,
)
SPARKLINE_WIDTH = 160
SPARKLINE_HEIGHT = 32


@dataclass(frozen=True)
class SchedulerHealth:
    """The scheduler process as its heartbeat shows it."""

    status: selectors.SchedulerStatus
    heartbeat_age: timedelta | None

    @property
    def heartbeat_seconds(self) -> int | None:
        return None if self.heartbeat_age is None else round(self.heartbeat_age.total_seconds())


@dataclass(frozen=True)
class TimelineSpan:
    """Runs close enough together to draw as one mark: a tick for one run, else a band."""

    start: float
    end: float
    first: datetime
    last: datetime
    runs: int

    @property
    def width(self) -> float:
        return round(self.end - self.start, 2)


@dataclass(frozen=True)
class TimelineRow:
    """The runs one job is due to start in the timeline's window, as positioned spans."""

    job_id: str
    name: str
    spans: list[TimelineSpan]
    runs: int
    truncated: bool


@dataclass(frozen=True)
class Timeline:
    """Runs due from `start` to `end`, one row per enabled job, with hour marks."""

    start: datetime
    end: datetime
    rows: list[TimelineRow]
    marks: list[tuple[float, str]]
    # Enabled jobs due in the window that have no row (beyond DASHBOARD_ROWS).
    more_jobs: int = 0

    @property
    def total_runs(self) -> int:
        return sum(row.runs for row in self.rows)


@dataclass(frozen=True)
class TrendPoint:
    """One execution on a duration sparkline."""

    x: float
    y: float
    execution: selectors.ExecutionView


@dataclass(frozen=True)
class JobTrend:
    """A job's last runs: how many succeeded and how long they took."""

    job_id: str
    name: str
    executions: list[selectors.ExecutionView]
    succeeded: int
    finished: int
    points: list[TrendPoint]

    @property
    def success_percent(self) -> int | None:
        return round(100 * self.succeeded / self.finished) if self.finished else None

    @property
    def polyline(self) -> str:
        return " ".join(f"{point.x},{point.y}" for point in self.points)

    @property
    def longest(self) -> float | None:
        durations = [e.duration for e in self.executions if e.duration is not None]
        return max(durations) if durations else None

    @property
    def lateness_p50(self) -> float | None:
        """The median lateness (seconds) of these runs that started."""
        return _nearest_rank(self._lateness, 0.50)

    @property
    def lateness_p95(self) -> float | None:
        return _nearest_rank(self._lateness, 0.95)

    @property
    def _lateness(self) -> list[float]:
        return sorted(e.lateness for e in self.executions if e.lateness is not None)


def _nearest_rank(ordered: list[float], fraction: float) -> float | None:
    """The smallest of the sorted values that at least `fraction` of them do not exceed."""
    if not ordered:
        return None
    return ordered[math.ceil(fraction * len(ordered)) - 1]


def scheduler_health(*, now: datetime | None = None) -> SchedulerHealth:
    status = selectors.scheduler_status()
    now = now or timezone.now()
    age = now - status.last_heartbeat if status.last_heartbeat else None
    return SchedulerHealth(status=status, heartbeat_age=age)


def timeline(
    *, now: datetime | None = None, hours: int = TIMELINE_HOURS, limit: int | None = None
) -> Timeline:
    """The runs the stored triggers of the `limit` enabled jobs due soonest fire from now
    to `hours` ahead; only those jobs' states are read and unpickled."""
    limit = limit or DASHBOARD_ROWS
    start = (now or timezone.now()).astimezone(app_settings.timezone)
    end = (start.astimezone(UTC) + timedelta(hours=hours)).astimezone(app_settings.timezone)
    rows = []
    due = selectors.live_jobs().filter(next_run_time__isnull=False, next_run_time__lt=end)
    enabled = due.order_by("next_run_time", "id").values_list(
        "id", "record__name", "job_state"
    )[:limit]
    for job_id, name, job_state in enabled:
        try:
            trigger = load_state(job_state)["trigger"]
        except UnreadableState:
            continue  # the jobs list shows it as broken; it has no runs to draw
        runs = _fire_times_between(trigger, start, end)
        rows.append(
            TimelineRow(
                job_id=job_id,
                name=name or job_id,
                spans=_spans(runs, start, end),
                runs=len(runs),
                truncated=len(runs) == TIMELINE_MAX_RUNS,
            )
        )
    more_jobs = due.count() - len(rows) if len(rows) == limit else 0
    return Timeline(
        start=start, end=end, rows=rows, marks=_hour_marks(start, end), more_jobs=more_jobs
    )


def recent_failures(*, limit: int = 10) -> list[selectors.ExecutionView]:
    """The newest runs that failed, were missed, were refused (max instances), were lost
    or expired."""
    rows = selectors.execution_queryset().filter(status__in=FAILURE_STATUSES)[:limit]
    return [selectors.ExecutionView.from_row(row) for row in rows]


def job_trends(*, window: int = TREND_WINDOW, limit: int | None = None) -> list[JobTrend]:
    """The last `window` executions of the `limit` jobs that ran most recently, in two
    queries whatever the number of jobs."""
    limit = limit or DASHBOARD_ROWS
    newest_first = [F("run_time").desc(), F("id").desc()]
    recent = list(
        DjangoJobExecution.objects.filter(job__record__deleted_at__isnull=True)
        .values("job_id")
        .annotate(last_run=Max("run_time"))
        .order_by("-last_run", "job_id")
        .values_list("job_id", "job__record__name")[:limit]
    )
    ranked = (
        selectors.execution_queryset()
        .filter(job_id__in=[job_id for job_id, _ in recent])
        .annotate(rank=Window(RowNumber(), partition_by=[F("job_id")], order_by=newest_first))
        .filter(rank__lte=window)
        .order_by("job_id", "run_time", "id")
    )
    executions = defaultdict(list)
    for row in ranked:
        executions[row.job_id].append(selectors.ExecutionView.from_row(row))
    jobs = sorted(recent)
    return [_trend(job_id, name or job_id, executions[job_id]) for job_id, name in jobs]


def _trend(job_id: str, name: str, executions: list[selectors.ExecutionView]) -> JobTrend:
    # Runs without an outcome yet count towards no success rate.
    finished = [e for e in executions if e.has_outcome]
    return JobTrend(
        job_id=job_id,
        name=name,
        executions=executions,
        succeeded=sum(e.status == "success" for e in finished),
        finished=len(finished),
        points=_sparkline(executions),
    )


def _sparkline(executions: list[selectors.ExecutionView]) -> list[TrendPoint]:
    """Durations scaled into the sparkline's box, oldest on the left, the longest at the top."""
    timed = [e for e in executions if e.duration is not None]
    if not timed:
        return []
    longest = max(e.duration for e in timed) or 1.0
    step = SPARKLINE_WIDTH / max(len(timed) - 1, 1)
    usable = SPARKLINE_HEIGHT - 4
    return [
        TrendPoint(
            x=round(index * step, 1),
            y=round(2 + usable * (1 - execution.duration / longest), 1),
            execution=execution,
        )
        for index, execution in enumerate(timed)
    ]


def _fire_times_between(trigger: Any, start: datetime, end: datetime) -> list[datetime]:
    """The trigger's fire times from `start` to before `end`, at most TIMELINE_MAX_RUNS."""
    limit = end.astimezone(UTC)
    times: list[datetime] = []
    after = start
    while len(times) < TIMELINE_MAX_RUNS:
        wanted = min(triggers.MAX_PREVIEW, TIMELINE_MAX_RUNS - len(times))
        chunk = triggers.preview_fire_times(trigger, count=wanted, now=after)
        # `limit` is in UTC: Python compares two datetimes of one zone by wall time,
        # but datetimes of two zones (or of UTC) by the instants they are.
        inside = [moment for moment in chunk if moment < limit]
        times.extend(inside)
        if len(inside) < wanted:
            break
        after = chunk[-1].astimezone(UTC) + timedelta(microseconds=1)
    return times


def _spans(runs: list[datetime], start: datetime, end: datetime) -> list[TimelineSpan]:
    """Group runs into spans wherever consecutive runs are too close to draw apart."""
    spans: list[TimelineSpan] = []
    # The window in UTC once, not for each of up to TIMELINE_MAX_RUNS runs of 50 rows.
    start = start.astimezone(UTC)
    length = end.astimezone(UTC) - start
    for moment in runs:
        # Subtracting a UTC time gives the instants' difference, whatever `moment`'s zone.
        position = round(100 * (moment - start) / length, 2)
        last = spans[-1] if spans else None
        if last is not None and position - last.end < TIMELINE_MERGE_PERCENT:
            spans[-1] = TimelineSpan(last.start, position, last.first, moment, last.runs + 1)
        else:
            spans.append(TimelineSpan(position, position, moment, moment, 1))
    return spans


def _percent(moment: datetime, start: datetime, end: datetime) -> float:
    # In UTC: between two datetimes of the same zone, Python subtracts wall times, which
    # is an hour off across a daylight-saving change.
    elapsed = moment.astimezone(UTC) - start.astimezone(UTC)
    return round(100 * elapsed / (end.astimezone(UTC) - start.astimezone(UTC)), 2)


def _hour_marks(start: datetime, end: datetime) -> list[tuple[float, str]]:
    """Whole hours every few hours across the window, in the scheduler's time zone."""
    zone = app_settings.timezone
    mark = start.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    marks = []
    while mark < end:
        local = mark.astimezone(zone)
        position = _percent(mark, start, end)
        # Marks too close to an edge would have their labels cut in half.
        if 2 < position < 98 and local.minute == 0 and local.hour % TIMELINE_MARK_HOURS == 0:
            marks.append((position, f"{local:%H:%M}"))
        # Step in UTC so that a daylight-saving change neither repeats nor skips a mark.
        mark += timedelta(hours=1)
    return marks
