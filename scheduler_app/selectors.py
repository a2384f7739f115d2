"""
The only functions that read job state.

Everything comes from the store at call time (promise 1): the `DjangoJob` row and
its pickled state, our `JobRecord`, and the executions table. The code registry
only adds what code owns: the default schedule, and whether a job is still declared.
The API, the admin and the commands all read through here, so they never disagree.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Context as DecimalContext
from decimal import Decimal
from functools import cache, lru_cache
from typing import Any

from django.db import connection, transaction
from django.db.models import (
    Case,
    Count,
    Exists,
    Expression,
    F,
    FloatField,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Value,
    When,
)
from django.db.models.functions import MD5, Cast, Extract, JSONObject, Now
from django.utils import timezone
from django_apscheduler.models import DjangoJob, DjangoJobExecution

from scheduler_app import triggers
from scheduler_app.conf import app_settings
from scheduler_app.exceptions import JobNotFound
from scheduler_app.leadership import LEASE_NAME, database_now
from scheduler_app.models import (
    EXECUTION_EXPIRED,
    EXECUTION_LOST,
    EXECUTION_QUEUED,
    Alert,
    JobChange,
    JobRecord,
    SchedulerLease,
    SchedulerProcess,
)
from scheduler_app.registry import registry
from scheduler_app.state import (
    UnreadableState,
    function_is_importable,
    json_value,
    load_state,
)

logger = logging.getLogger(__name__)

# django-apscheduler's status texts, as the stable slugs clients filter by.
EXECUTION_STATUS_SLUGS = {
    DjangoJobExecution.SENT: "running",
    DjangoJobExecution.SUCCESS: "success",
    DjangoJobExecution.ERROR: "error",
    DjangoJobExecution.MISSED: "missed",
    DjangoJobExecution.MAX_INSTANCES: "max_instances",
    EXECUTION_QUEUED: "queued",
    EXECUTION_LOST: "lost",
    EXECUTION_EXPIRED: "expired",
}
EXECUTION_STATUSES_BY_SLUG = {slug: text for text, slug in EXECUTION_STATUS_SLUGS.items()}
# Runs without an outcome yet; every other status is final.
UNFINISHED_STATUS_SLUGS = ("queued", "running")
JOB_ORDERINGS = ("id", "-id", "next_run_time", "-next_run_time")
JOB_STATES = ("scheduled", "paused", "finished", "broken")
UPCOMING_COUNT = 5
_FLOAT_TO_DECIMAL = DecimalContext(prec=15)
# What a job view is made of: the job's row, its record, its newest run.
_RECORD_COLUMNS = (
    "version", "origin", "function", "pause_after_failures", "consecutive_failures",
    "alert_after",
    "paused_reason", "paused_by", "paused_at", "paused_until",
)
_JOB_VIEW_COLUMNS = (
    "id", "next_run_time", "job_state", "last_execution",
    *(f"record__{name}" for name in _RECORD_COLUMNS),
)
_EXECUTION_COLUMNS = (
    "id", "status", "run_time", "finished", "duration", "exception", "traceback",
)
# When the run started, from its `ExecutionRecord` (None: not started, or recorded
# before that table existed).
_STARTED_COLUMN = "record__started_at"


@dataclass(frozen=True)
class ExecutionView:
    """One recorded run of a job."""

    id: int
    job_id: str
    status: str
    run_time: datetime
    finished: datetime | None
    duration: float | None
    exception: str | None
    traceback: str | None
    started: datetime | None = None
    # Why it ran (scheduled, run_now, backfill) and this run's own keyword arguments;
    # read for the executions lists, not for a job's last run.
    cause: str | None = None
    kwargs: dict[str, Any] | None = None
    # Missed runs skipped before this one (catch-up after the job was behind).
    skipped_runs: int = 0

    @property
    def lateness(self) -> float | None:
        """Seconds between when the run was due and when it started."""
        if self.started is None:
            return None
        return round((self.started - self.run_time).total_seconds(), 3)

    @property
    def has_outcome(self) -> bool:
        """Whether the run has its outcome (success, error, missed, skipped, lost or
        expired)."""
        return self.status not in UNFINISHED_STATUS_SLUGS

    @classmethod
    def from_row(cls, row: DjangoJobExecution) -> ExecutionView:
        columns = {name: getattr(row, name) for name in _EXECUTION_COLUMNS}
        record = getattr(row, "record", None)  # None: recorded before ExecutionRecord existed
        columns["started"] = record.started_at if record else None
        columns["skipped_runs"] = record.skipped_runs if record else 0
        view = cls._from_columns(row.job_id, columns)
        if record is None:
            return view
        return dataclasses.replace(view, cause=record.cause, kwargs=record.kwargs)

    @classmethod
    def from_json(cls, job_id: str, columns: dict[str, Any]) -> ExecutionView:
        """The view of an execution read as a JSON object of its columns (`job_queryset`)."""
        return cls._from_columns(job_id, {
            **columns,
            "run_time": _json_datetime(columns["run_time"]),
            "duration": _json_decimal("duration", columns["duration"]),
            "finished": _json_decimal("finished", columns["finished"]),
            "started": columns["started"] and _json_datetime(columns["started"]),
        })

    @classmethod
    def _from_columns(cls, job_id: str, columns: dict[str, Any]) -> ExecutionView:
        status, duration = columns["status"], columns["duration"]
        return cls(
            id=columns["id"],
            job_id=job_id,
            status=EXECUTION_STATUS_SLUGS.get(status, status),
            run_time=columns["run_time"],
            finished=_timestamp_to_datetime(columns["finished"]),
            duration=float(duration) if duration is not None else None,
            exception=columns["exception"],
            traceback=columns["traceback"],
            started=columns["started"],
            skipped_runs=columns.get("skipped_runs") or 0,
        )


@dataclass(frozen=True)
class JobView:
    """A job as operators see it, read from the store."""

    id: str
    name: str
    func: str
    trigger: str | None
    trigger_args: dict[str, Any]
    description: str
    enabled: bool
    next_run_time: datetime | None
    upcoming: list[datetime]
    version: int
    is_default_schedule: bool
    default_schedule: dict[str, Any] | None
    broken: bool
    orphaned: bool
    max_instances: int | None
    misfire_grace_time: int | None
    coalesce: bool | None
    pause_after_failures: int | None
    consecutive_failures: int
    alert_after: int | None
    paused_reason: str | None
    paused_by: str | None
    paused_at: datetime | None
    paused_until: datetime | None
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    last_execution: ExecutionView | None
    # "code" (declared with @scheduled_job) or "runtime" (created by an operator).
    origin: str = "code"
    # The registered name of the function a runtime job calls (its job id for code jobs).
    function: str = ""
    # The last time the schedule can fire (a date trigger's run date, an end_date), if any.
    ends_at: datetime | None = None

    @property
    def state(self) -> str:
        """One of JOB_STATES: scheduled, paused, finished (no run left), broken."""
        if self.broken:
            return "broken"
        if self.enabled:
            return "scheduled"
        # A one-off job that ran (or an ended schedule) is not waiting for a resume.
        if self.ends_at is not None and self.ends_at <= timezone.now():
            return "finished"
        return "paused"


@dataclass(frozen=True)
class _RecordValues:
    """What a job view takes from the job's `JobRecord` (all empty without one)."""

    version: int = 0
    origin: str | None = None
    function: str = ""
    pause_after_failures: int | None = None
    consecutive_failures: int = 0
    alert_after: int | None = None
    paused_reason: str | None = None
    paused_by: str | None = None
    paused_at: datetime | None = None
    paused_until: datetime | None = None


_NO_RECORD = _RecordValues()


@dataclass(frozen=True)
class SchedulerInstance:
    """One live `runscheduler` process: the active one or a standby."""

    host: str
    pid: int
    role: str
    epoch: int | None
    started_at: datetime
    last_heartbeat: datetime


@dataclass(frozen=True)
class SchedulerStatus:
    """Scheduler health as the status endpoint shows it.

    `running` is true when an active process has a fresh heartbeat; pid, host and
    times are that process's (or the newest one's when none is active).
    """

    running: bool
    pid: int | None
    host: str | None
    started_at: datetime | None
    last_heartbeat: datetime | None
    notification_mode: str | None
    jobs_total: int
    jobs_paused: int
    jobs_broken: int
    instances: list[SchedulerInstance]
    # The database's clock when this was read: what the heartbeat times compare with.
    checked_at: datetime | None = None


# A job stored by another process has no record, and is live. Written as NOT EXISTS
# over the few deleted records (a partial index), not as an outer join of every job
# to its record: counting 100,000 live jobs then reads the job table's primary key
# alone, not every row with its pickled state.
_NOT_DELETED = ~Exists(JobRecord.objects.filter(job_id=OuterRef("pk"), deleted_at__isnull=False))


def job_queryset(
    *,
    enabled: bool | None = None,
    trigger: str | None = None,
    search: str | None = None,
    origin: str | None = None,
    ordering: str = "id",
) -> QuerySet[DjangoJob]:
    """Job rows with their record and newest execution: one query for any page.

    Paginate it with `pagination.KeysFirstPaginator`, so that the newest execution is
    looked up for the rows of the page only.
    """
    rows = _all_job_rows().filter(_NOT_DELETED)
    if origin:
        rows = rows.filter(origin_is(origin))
    if enabled is not None:
        rows = rows.filter(next_run_time__isnull=not enabled)
    if trigger:
        rows = rows.filter(record__trigger_type=trigger)
    if search:
        rows = rows.filter(job_matches(search))
    if ordering not in JOB_ORDERINGS:
        ordering = "id"
    if ordering.lstrip("-") == "next_run_time":
        # Paused jobs (no next run) go last either way.
        column = F("next_run_time")
        order = column.desc(nulls_last=True) if ordering[0] == "-" else column.asc(nulls_last=True)
        return rows.order_by(order, "id")
    return rows.order_by(ordering)


def job_matches(text: str) -> Q:
    """The jobs whose id or name contains `text`, in any case.

    Two lookups in a UNION, each of which an index answers on PostgreSQL (the trigram
    indexes of migration 0015), instead of one condition over the join of every job
    to its record, which reads them all: a search of 100,000 jobs took 10 times as
    long as one of 10,000 (docs/benchmarks.md).
    """
    ids = DjangoJob.objects.filter(id__icontains=text).order_by().values("pk")
    names = JobRecord.objects.filter(name__icontains=text).order_by().values("job_id")
    return Q(pk__in=ids.union(names))


def live_jobs() -> QuerySet[DjangoJob]:
    """Job rows, without the rows deleted jobs leave for their history."""
    return DjangoJob.objects.filter(_NOT_DELETED)


def origin_is(origin: str) -> Q:
    """The filter of jobs of one origin, code (jobs stored without our record too) or runtime."""
    if origin == JobRecord.Origin.RUNTIME:
        return Q(record__origin=origin)
    return Q(record__origin=origin) | Q(record__isnull=True)


@cache
def _all_job_rows() -> QuerySet[DjangoJob]:
    # Built once: resolving the JSON annotation cost 0.8 ms of every list and detail read.
    return DjangoJob.objects.select_related("record").annotate(
        last_execution=newest_execution(JSONObject(
            **{name: name for name in _EXECUTION_COLUMNS}, started=_STARTED_COLUMN,
            skipped_runs="record__skipped_runs",
        )),
    )


def newest_execution(column: Expression | str) -> Subquery:
    """`column` of a job row's newest execution (None if it never ran), as an expression."""
    runs = DjangoJobExecution.objects.filter(job_id=OuterRef("pk")).order_by("-run_time")
    return Subquery(runs.values(value=F(column) if isinstance(column, str) else column)[:1])


def job_value_rows(**filters: Any) -> QuerySet[Any]:
    """`job_queryset(**filters)` as tuples of what a view is made of, for `job_views_of_values`.

    No model instances are built: that halves the cost of fetching a list page
    (about 2 ms less for 50 jobs on the benchmark machine).
    """
    return job_queryset(**filters).values_list(*_JOB_VIEW_COLUMNS)


def job_views_of_values(rows: Iterable[tuple[Any, ...]]) -> list[JobView]:
    """Views of the tuples `job_value_rows` reads."""
    return [
        _job_view(job_id, next_run_time, job_state,
                  _RecordValues(*record) if record[0] is not None else _NO_RECORD,
                  last_execution and ExecutionView.from_json(job_id, last_execution))
        for job_id, next_run_time, job_state, last_execution, *record in rows
    ]


def job_views(rows: Iterable[DjangoJob]) -> list[JobView]:
    """Views of job rows (model instances) from `job_queryset`."""
    return [
        _job_view(row.id, row.next_run_time, row.job_state, _record_values(row),
                  row.last_execution and ExecutionView.from_json(row.id, row.last_execution))
        for row in rows
    ]


def get_job(*, job_id: str) -> JobView:
    """One job, read under the lock of its rows so the view is one committed state.

    The job row and its record are locked by the statement that reads them: after
    waiting for a writer, PostgreSQL reads every row it locks at its newest version,
    but a row it only joins as it was when the statement began. A job stored
    without our record (by another process) is locked first and read afterwards,
    by a new statement.
    """
    if impossible_job_id(job_id):
        raise JobNotFound(job_id)
    with transaction.atomic():
        rows = list(
            _all_job_rows()
            .filter(id=job_id, record__isnull=False, record__deleted_at__isnull=True)
            .select_for_update(of=("self", "record"))
        )
        if not rows:
            locked = DjangoJob.objects.select_for_update().filter(id=job_id).exists()
            if not locked or _is_deleted(job_id):
                raise JobNotFound(job_id)
            rows = list(job_queryset().filter(id=job_id))
        return job_views(rows)[0]


def _is_deleted(job_id: str) -> bool:
    return JobRecord.objects.filter(job_id=job_id, deleted_at__isnull=False).exists()


def locked_job_view(row: DjangoJob) -> JobView:
    """The view of a job row a writer holds locked (with its `record` loaded)."""
    last_execution = (
        DjangoJobExecution.objects.filter(job_id=row.id).select_related("record")
        .order_by("-run_time").first()
    )
    return _job_view(
        row.id, row.next_run_time, row.job_state, _record_values(row),
        last_execution and ExecutionView.from_row(last_execution),
    )


def execution_queryset(
    *, job_id: str | None = None, status: str | None = None
) -> QuerySet[DjangoJobExecution]:
    """Executions, newest first; `status` is a slug (running, success, error, ...)."""
    rows = DjangoJobExecution.objects.select_related("record").order_by("-run_time", "-id")
    if job_id is not None:
        rows = rows.filter(job_id=job_id)
    if status:
        rows = rows.filter(status=EXECUTION_STATUSES_BY_SLUG.get(status, status))
    return rows


def change_queryset(*, job_id: str | None = None) -> QuerySet[JobChange]:
    """The audit trail, newest first."""
    rows = JobChange.objects.order_by("-id")
    return rows.filter(job_id=job_id) if job_id is not None else rows


def jobs_due_to_resume(*, now: datetime) -> list[str]:
    """Paused jobs whose `paused_until` has come, soonest first."""
    records = JobRecord.objects.filter(paused_until__lte=now, job__next_run_time__isnull=True)
    return list(records.order_by("paused_until").values_list("job_id", flat=True))


def next_pause_end() -> datetime | None:
    """The soonest `paused_until` of a paused job: the scheduler wakes up for it."""
    return (
        JobRecord.objects.filter(paused_until__isnull=False, job__next_run_time__isnull=True)
        .order_by("paused_until")
        .values_list("paused_until", flat=True)
        .first()
    )


def job_exists(*, job_id: str, include_deleted: bool = False) -> bool:
    """Whether the store holds the job; `include_deleted`: or the history of a deleted one."""
    rows = DjangoJob.objects if include_deleted else live_jobs()
    return not impossible_job_id(job_id) and rows.filter(id=job_id).exists()


def code_job_ids() -> list[str]:
    """The ids of the live jobs declared in code (or stored without our record), in order."""
    rows = live_jobs().filter(origin_is(JobRecord.Origin.CODE))
    return list(rows.order_by("id").values_list("id", flat=True))


def impossible_job_id(job_id: str) -> bool:
    """Whether no stored job can have this id: PostgreSQL refuses a NUL byte in a
    query (DataError, a 500), so such an id must not reach one."""
    return "\x00" in job_id


def scheduler_status() -> SchedulerStatus:
    """Whether a scheduler process is alive, by its heartbeat, and job counts."""
    # By the database's clock, as `scheduler_is_running`.
    fresh_after = Now() - timedelta(seconds=app_settings.HEARTBEAT_TIMEOUT)
    live = list(
        SchedulerProcess.objects.filter(stopped_at__isnull=True, last_heartbeat__gte=fresh_after)
        .order_by("-last_heartbeat")
    )
    # The lease, not a heartbeat, says who is active: a process killed a moment ago
    # still has a fresh heartbeat that says "active".
    lease = SchedulerLease.objects.filter(name=LEASE_NAME, expires_at__gt=Now()).first()
    holder = lease.holder if lease else None
    active = next((p for p in live if p.instance == holder), None)
    process = active or SchedulerProcess.objects.order_by("-last_heartbeat").first()
    running = active is not None
    functions = _JobFunctions.read()
    return SchedulerStatus(
        running=running,
        pid=process.pid if process else None,
        host=process.host if process else None,
        started_at=process.started_at if process else None,
        last_heartbeat=process.last_heartbeat if process else None,
        notification_mode=process.notification_mode if process else None,
        jobs_total=functions.total,
        jobs_paused=live_jobs().filter(next_run_time__isnull=True).count(),
        jobs_broken=functions.broken_count(),
        checked_at=database_now(),
        instances=[
            SchedulerInstance(
                host=p.host,
                pid=p.pid,
                role="active" if p is active else "standby",
                epoch=lease.epoch if p is active else None,
                started_at=p.started_at,
                last_heartbeat=p.last_heartbeat,
            )
            for p in sorted(live, key=lambda p: p is not active)
        ],
    )


def scheduler_is_running() -> bool:
    """Whether an active scheduler holds the lease with a fresh heartbeat, in one query.

    Both are judged by the database's clock, which every host shares: a web host
    whose clock is off must not call a live scheduler dead, or a dead one alive.
    """
    fresh_after = Now() - timedelta(seconds=app_settings.HEARTBEAT_TIMEOUT)
    holders = SchedulerLease.objects.filter(name=LEASE_NAME, expires_at__gt=Now())
    return SchedulerProcess.objects.filter(
        stopped_at__isnull=True,
        last_heartbeat__gte=fresh_after,
        instance__in=holders.values("holder"),
    ).exists()


@dataclass(frozen=True, slots=True)
class JobMetrics:
    """What the Prometheus metrics say about one job (`scheduler_app.metrics`); moments
    are Unix times, as the metrics give them."""

    id: str
    trigger: str
    schedule: str
    function: str
    next_run_timestamp: float | None
    broken: bool
    running: int
    # Outcome counts by status (success, error, missed, lost, skipped): never lowered.
    runs: dict[str, int]
    last_run_timestamp: float | None
    last_success_timestamp: float | None
    last_duration: float | None
    last_lateness: float | None


@dataclass(frozen=True)
class SchedulerMetrics:
    """What the Prometheus metrics say about the scheduler processes."""

    instances: dict[str, int]
    lease_epoch: int | None
    # Seconds since the active process's heartbeat (the newest process's when none is
    # active); None when no scheduler ever ran.
    heartbeat_age: float | None


RUN_COUNTERS = {
    "success": "runs_success", "error": "runs_error", "missed": "runs_missed",
    "lost": "runs_lost", "skipped": "runs_skipped",
}
_HEALTH_COLUMNS = (
    *(f"health__{column}" for column in RUN_COUNTERS.values()),
    "health__last_duration", "health__last_lateness",
)
_MOMENT_COLUMNS = ("next_run_time", "health__last_run_time", "health__last_success_at")


def job_metrics() -> list[JobMetrics]:
    """Every live job with its counters and newest outcome, for a Prometheus scrape.

    A scrape must stay cheap with 10,000 jobs (see docs/benchmarks.md), whether or not
    the jobs ran since the last one. Unpickling and describing every state costs more
    than all the rest, so a job's labels come from what its record mirrors of its
    state (`state.record_mirror`: trigger type, function reference, schedule in
    words), kept by every writer as `_JobFunctions` trusts it. Only the states no
    record vouches for are read: on PostgreSQL through an MD5 of each, a state being
    described once (by `_stored_state`) while its digest is new to this process. Its
    moments come as Unix times (`extract(epoch ...)`), which spares making 30,000
    datetimes. Whether the function can be imported is asked afresh at every scrape.
    """
    running = dict(
        DjangoJobExecution.objects.filter(status=DjangoJobExecution.SENT)
        .values("job_id").annotate(count=Count("id")).values_list("job_id", "count")
    )
    on_postgresql = connection.vendor == "postgresql"
    moments = (
        {f"epoch_{index}": Cast(Extract(column, "epoch"), FloatField())
         for index, column in enumerate(_MOMENT_COLUMNS)}
        if on_postgresql else {}
    )
    # None where the record vouches for the state; else what the state is known by.
    state_key = Case(
        When(_VOUCHED_FOR_METRICS, then=Value(None)),
        default=MD5("job_state") if on_postgresql else F("job_state"),
    )
    rows = list(live_jobs().order_by("id").annotate(state_key=state_key, **moments).values_list(
        "id", "record__trigger_type", "record__schedule", "record__func_ref", "state_key",
        *(moments or _MOMENT_COLUMNS), *_HEALTH_COLUMNS,
    ))
    if on_postgresql:
        _describe_new_states([(job_id, key) for job_id, _, _, _, key, *_ in rows
                              if key is not None and (job_id, key) not in _descriptions])
    importable: dict[str, bool] = {}
    metrics = []
    for job_id, trigger, schedule, func, state_key, *values in rows:
        readable = True
        if state_key is not None:
            description = _description_for_metrics(job_id, state_key, on_postgresql)
            trigger, schedule = description.trigger_type or "unknown", description.description
            func, readable = description.func, description.readable
        next_run, last_run, last_success = (
            values[:3] if on_postgresql
            else (moment and moment.timestamp() for moment in values[:3])
        )
        *counts, last_duration, last_lateness = values[3:]
        if func not in importable:
            importable[func] = readable and function_is_importable(func)
        metrics.append(JobMetrics(
            id=job_id,
            trigger=trigger,
            schedule=schedule,
            function=func,
            next_run_timestamp=next_run,
            broken=not importable[func],
            running=running.get(job_id, 0),
            runs={status: count or 0 for status, count in zip(RUN_COUNTERS, counts, strict=True)},
            last_run_timestamp=last_run,
            last_success_timestamp=last_success,
            last_duration=last_duration,
            last_lateness=last_lateness,
        ))
    return metrics


def _description_for_metrics(job_id: str, state_key: Any, on_postgresql: bool) -> _StoredState:
    """What a state no record vouches for says: `state_key` is its MD5 on PostgreSQL
    (described by `_describe_new_states`), the state itself elsewhere."""
    if not on_postgresql:
        return _stored_state(job_id, bytes(state_key))
    description = _descriptions.get((job_id, state_key))
    if description is None:  # its state changed since the first read: read it again
        job_state = DjangoJob.objects.filter(id=job_id).values_list("job_state", flat=True)
        description = _stored_state(job_id, bytes(job_state[0])) if job_state else _UNREADABLE
    return description


# (job id, MD5 of its stored state) -> what that state says; see `job_metrics`.
_descriptions: dict[tuple[str, str], _StoredState] = {}
_DESCRIPTIONS_MAX = 16384


def _describe_new_states(keys: list[tuple[str, str]]) -> None:
    """Read and describe the states of these (job id, digest) pairs."""
    if not keys:
        return
    if len(_descriptions) + len(keys) > _DESCRIPTIONS_MAX:
        _descriptions.clear()
    states = DjangoJob.objects.annotate(state_key=MD5("job_state")).values_list(
        "id", "state_key", "job_state"
    )
    # A long IN list costs more than reading every state.
    if len(keys) < 1000:
        states = states.filter(id__in=[job_id for job_id, _ in keys])
    for job_id, state_key, job_state in states:
        _descriptions[(job_id, state_key)] = _stored_state(job_id, bytes(job_state))


def scheduler_metrics() -> SchedulerMetrics:
    """Live scheduler processes by role, the lease's epoch and the heartbeat's age."""
    now = timezone.now()
    fresh_after = now - timedelta(seconds=app_settings.HEARTBEAT_TIMEOUT)
    live = list(
        SchedulerProcess.objects.filter(stopped_at__isnull=True, last_heartbeat__gte=fresh_after)
        .values_list("instance", "last_heartbeat")
    )
    lease = SchedulerLease.objects.filter(name=LEASE_NAME).first()
    holder = lease.holder if lease and lease.expires_at > now else None
    active = [heartbeat for instance, heartbeat in live if instance == holder]
    newest = active[0] if active else (
        SchedulerProcess.objects.order_by("-last_heartbeat")
        .values_list("last_heartbeat", flat=True).first()
    )
    return SchedulerMetrics(
        instances={"active": len(active), "standby": len(live) - len(active)},
        lease_epoch=lease.epoch if lease else None,
        heartbeat_age=(now - newest).total_seconds() if newest else None,
    )


def alert_queryset(
    *, job_id: str | None = None, event: str | None = None, delivery: str | None = None
) -> QuerySet[Alert]:
    """The alert log, newest first."""
    rows = Alert.objects.order_by("-id")
    if job_id is not None:
        rows = rows.filter(job_id=job_id)
    if event:
        rows = rows.filter(event=event)
    if delivery:
        rows = rows.filter(delivery=delivery)
    return rows


def broken_job_ids() -> list[str]:
    """The ids of the live jobs that cannot run, in id order (see `_JobFunctions`)."""
    return sorted(_JobFunctions.read().broken_ids())


# Trigger types whose classes are APScheduler's own: such a state stays readable
# whatever code is deployed. Another app's trigger class can leave the code, and its
# states then cannot be unpickled: those are read to be judged.
_OWN_TRIGGER_TYPES = ("cron", "interval", "date")

# A record vouches for a job's labels as `_JobFunctions` trusts it, with its words known.
_VOUCHED_FOR_METRICS = Q(
    record__func_ref__isnull=False,
    record__trigger_type__in=_OWN_TRIGGER_TYPES,
    record__schedule__isnull=False,
)


@dataclass(frozen=True)
class _JobFunctions:
    """The live jobs by the function their record names, and those read to be judged.

    A job cannot run when its state cannot be unpickled or its function cannot be
    imported. Unpickling 100,000 states to find out took seconds (the dashboard's
    health panel, the status endpoint, the scheduler's start). Every writer keeps
    the function a state names in `JobRecord.func_ref`, so this asks the code once
    per distinct reference and reads only the states no record vouches for: jobs
    stored by another process, states the scheduler could not use, trigger classes
    of other apps. A state overwritten behind every writer's back (not by this app)
    is judged by its record until the scheduler claims it, a scheduler start syncs it
    (a declared job) or a change rewrites it.
    """

    total: int
    # Live jobs whose record names their function, counted by that function.
    by_func_ref: dict[str, int]
    # The other live jobs, whose states were read, and those of them that are broken.
    unvouched: list[str]
    broken_unvouched: list[str]

    @classmethod
    def read(cls) -> _JobFunctions:
        total = live_jobs().count()
        by_func_ref: dict[str, int] = {}
        with_record = 0
        unvouched = Q(pk__in=[])
        groups = (
            JobRecord.objects.filter(deleted_at__isnull=True)
            .values_list("func_ref", "trigger_type").annotate(jobs=Count("*")).order_by()
        )
        for func_ref, trigger_type, jobs in groups:
            with_record += jobs
            if func_ref is not None and trigger_type in _OWN_TRIGGER_TYPES:
                by_func_ref[func_ref] = by_func_ref.get(func_ref, 0) + jobs
            else:
                unvouched |= Q(record__func_ref=func_ref, record__trigger_type=trigger_type)
        to_read = [live_jobs().filter(unvouched)]
        if total > with_record:
            # Jobs stored by another process, without a record: their ids first, which
            # the two primary keys answer, then their states. (The two counts are two
            # statements: a job created between them can hide such a job from this one
            # reading, never count a job twice.)
            without_record = DjangoJob.objects.filter(
                ~Exists(JobRecord.objects.filter(job_id=OuterRef("pk")))
            ).values_list("id", flat=True)
            to_read.append(DjangoJob.objects.filter(pk__in=list(without_record)))
        read, broken = [], []
        for rows in to_read:
            for job_id, job_state in rows.values_list("id", "job_state").iterator(chunk_size=100):
                read.append(job_id)
                if broken_func_ref(job_state=job_state) is not None:
                    broken.append(job_id)
        return cls(total=total, by_func_ref=by_func_ref, unvouched=read, broken_unvouched=broken)

    def missing_func_refs(self) -> list[str]:
        """The functions named by records that the code no longer has."""
        return [ref for ref in self.by_func_ref if not function_is_importable(ref)]

    def broken_count(self) -> int:
        missing = self.missing_func_refs()
        return sum(self.by_func_ref[ref] for ref in missing) + len(self.broken_unvouched)

    def broken_ids(self) -> list[str]:
        vouched = JobRecord.objects.filter(
            deleted_at__isnull=True, func_ref__in=self.missing_func_refs(),
            trigger_type__in=_OWN_TRIGGER_TYPES,
        )
        return [*vouched.values_list("job_id", flat=True), *self.broken_unvouched]


def broken_func_ref(*, job_state: bytes) -> str | None:
    """The function reference of a job that cannot run, or None if it can."""
    try:
        func_ref = load_state(job_state)["func"]
    except UnreadableState:
        return "<unreadable job state>"
    return None if function_is_importable(func_ref) else func_ref


@dataclass(frozen=True)
class _StoredState:
    """What a job's stored state says, worked out once per distinct state.

    Plain values only, not the unpickled state: entries live as long as the process,
    and an unpickled trigger is dozens of objects that every garbage collection walks.
    """

    readable: bool
    name: str | None
    func: str
    trigger_type: str | None
    trigger_args: dict[str, Any]
    description: str
    is_default_schedule: bool
    # The fire times from the stored next run time on: what `upcoming` shows while
    # that time is still ahead.
    upcoming: tuple[datetime, ...]
    max_instances: int | None
    misfire_grace_time: int | None
    coalesce: bool | None
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    ends_at: datetime | None


_UNREADABLE = _StoredState(
    readable=False,
    name=None,
    func="",
    trigger_type=None,
    trigger_args={},
    description="Unreadable job state",
    is_default_schedule=False,
    upcoming=(),
    max_instances=None,
    misfire_grace_time=None,
    coalesce=None,
    args=(),
    kwargs={},
    ends_at=None,
)


@lru_cache(maxsize=16384)  # about 1 KB an entry: up to 16 MB
def _stored_state(job_id: str, job_state: bytes) -> _StoredState:
    """Unpickle a state and derive its trigger fields and words.

    Memoized by the exact bytes read from the store (and the job id, for its code
    default, which cannot change while the process runs): a different state is a
    different key, so this can never answer with anything but the row just read.
    It spares list pages re-deriving the same schedules on every request.
    """
    try:
        return _derived_state(job_id, load_state(job_state))
    except UnreadableState:
        return _UNREADABLE
    except Exception:  # unpickled garbage can fail anywhere: the job shows as unreadable
        logger.warning("Job %r has a state this process cannot describe", job_id, exc_info=True)
        return _UNREADABLE


def _derived_state(job_id: str, state: dict[str, Any]) -> _StoredState:
    trigger, next_run_time = state["trigger"], state.get("next_run_time")
    max_instances, misfire_grace_time = _stored_policy(state)
    declaration = registry.get(job_id)
    if triggers.is_standard(trigger):
        schedule = triggers.Schedule(trigger)
        fields, description = schedule.fields, schedule.describe()
        is_default_schedule = bool(
            declaration
            and schedule.matches(declaration.trigger_spec, timezone=app_settings.timezone)
        )
        upcoming = (
            schedule.fire_times(count=UPCOMING_COUNT, now=next_run_time) if next_run_time else []
        )
    else:
        fields, description = triggers.trigger_fields(trigger), triggers.describe_trigger(trigger)
        is_default_schedule = False
        upcoming = (
            triggers.preview_fire_times(trigger, count=UPCOMING_COUNT, now=next_run_time)
            if next_run_time else []
        )
    return _StoredState(
        readable=True,
        name=str(state.get("name") or "") or None,
        func=str(state["func"]),
        trigger_type=fields["trigger"],
        trigger_args=fields["trigger_args"],
        description=description,
        is_default_schedule=is_default_schedule,
        upcoming=tuple(upcoming),
        max_instances=max_instances,
        misfire_grace_time=misfire_grace_time,
        # As APScheduler reads it: `if job.coalesce`.
        coalesce=bool(state.get("coalesce")),
        args=tuple(state.get("args", ())),
        kwargs=json_value(dict(state.get("kwargs", {}))),
        ends_at=_schedule_end(state["trigger"]),
    )


def _stored_policy(state: dict[str, Any]) -> tuple[int, int | None]:
    """A stored state's `max_instances` and `misfire_grace_time`.

    APScheduler's `Job` refuses anything but a positive whole number (or None for the
    grace time) when it is given these; a state written behind its back with other
    values cannot run, and is shown as unreadable rather than break a page with them.
    """
    max_instances, grace = state.get("max_instances"), state.get("misfire_grace_time")
    if not _is_positive_int(max_instances) or not (grace is None or _is_positive_int(grace)):
        raise ValueError(f"run policy out of range: {max_instances!r}, {grace!r}")
    return max_instances, grace


def _is_positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0



def _schedule_end(trigger: Any) -> datetime | None:
    """The last moment a trigger can fire: a date trigger's run date, else its end_date."""
    return getattr(trigger, "run_date", None) or getattr(trigger, "end_date", None)


def _record_values(row: DjangoJob) -> _RecordValues:
    record = getattr(row, "record", None)  # None: stored by another process, without one
    if record is None:
        return _NO_RECORD
    return _RecordValues(*(getattr(record, name) for name in _RECORD_COLUMNS))


def _job_view(
    job_id: str,
    next_run_time: datetime | None,
    job_state: bytes | memoryview,
    record: _RecordValues,
    last_execution: ExecutionView | None,
) -> JobView:
    runtime = record.origin == JobRecord.Origin.RUNTIME
    # A runtime job has no code default, even when code later declares its id.
    declaration = None if runtime else registry.get(job_id)
    job_state = bytes(job_state)
    stored = _stored_state(job_id, job_state)
    # Copies: a caller changing its view must not change the memoized state.
    args, kwargs = (
        copy.deepcopy((stored.args, stored.kwargs)) if stored.args or stored.kwargs else ((), {})
    )
    return JobView(
        id=job_id,
        name=stored.name or job_id,
        func=stored.func,
        trigger=stored.trigger_type,
        trigger_args=dict(stored.trigger_args),  # plain values: a shallow copy is a copy
        description=stored.description,
        enabled=next_run_time is not None,
        next_run_time=next_run_time,
        upcoming=_upcoming(stored, next_run_time, job_state),
        version=record.version,
        is_default_schedule=bool(declaration) and stored.is_default_schedule,
        default_schedule=declaration.trigger_spec if declaration else None,
        broken=not stored.readable or not function_is_importable(stored.func),
        orphaned=declaration is None and not runtime,
        max_instances=stored.max_instances,
        misfire_grace_time=stored.misfire_grace_time,
        coalesce=stored.coalesce,
        pause_after_failures=record.pause_after_failures,
        consecutive_failures=record.consecutive_failures,
        alert_after=record.alert_after,
        # A job that runs has no pause note, whatever a record left behind says.
        paused_reason=record.paused_reason if next_run_time is None else None,
        paused_by=record.paused_by if next_run_time is None else None,
        paused_at=record.paused_at if next_run_time is None else None,
        paused_until=record.paused_until if next_run_time is None else None,
        args=args,
        kwargs=kwargs,
        last_execution=last_execution,
        ends_at=stored.ends_at,
        origin=JobRecord.Origin.RUNTIME if runtime else JobRecord.Origin.CODE,
        function=record.function if runtime and record.function else job_id,
    )


def _upcoming(
    stored: _StoredState, next_run_time: datetime | None, job_state: bytes
) -> list[datetime]:
    """The next fire times of a running job, from its stored next run time.

    Counting from the stored next run (rather than from this instant) is what the
    scheduler will do, and lets it be worked out once per stored state; an overdue
    job (scheduler down) counts from now, with the trigger unpickled again.
    """
    if not stored.readable or next_run_time is None:
        return []
    if next_run_time > timezone.now():
        return list(stored.upcoming)
    return triggers.preview_fire_times(load_state(job_state)["trigger"], count=UPCOMING_COUNT)


def _json_datetime(text: str) -> datetime:
    # A timestamp inside JSON is text: ISO 8601 with an offset from PostgreSQL, and the
    # column's own UTC text (no offset) from SQLite.
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _json_decimal(column: str, number: float | None) -> Decimal | None:
    # A decimal column inside JSON is the number as stored, and SQLite stores it
    # unrounded: round it as Django's DecimalField does when it reads the column.
    if number is None:
        return None
    field = DjangoJobExecution._meta.get_field(column)
    exact = _FLOAT_TO_DECIMAL.create_decimal_from_float(number)
    return exact.quantize(Decimal(1).scaleb(-field.decimal_places), context=field.context)


def _timestamp_to_datetime(timestamp: Decimal | float | None) -> datetime | None:
    # django-apscheduler stores `finished` as a POSIX timestamp in a decimal column.
    if timestamp is None:
        return None
    return datetime.fromtimestamp(float(timestamp), tz=UTC)
