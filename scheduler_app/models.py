"""
Tables scheduler_app keeps beside django-apscheduler's `DjangoJob` and
`DjangoJobExecution`.

`DjangoJob` stays the single source of truth for what runs (the pickled job with
its trigger, arguments and next run time). These tables add what an operator needs
to change it safely: a version per job, the audit trail of every change, run-now
requests for the scheduler process, and the scheduler's heartbeat.
"""

from __future__ import annotations

from django.db import models
from django.utils import timezone
from django_apscheduler.models import DjangoJob, DjangoJobExecution

# Execution statuses beside django-apscheduler's own (`DjangoJobExecution.SENT`,
# `SUCCESS`, ...), stored in the same column: a run handed to a task worker and not
# started yet, a run whose process stopped sending heartbeats (it died) before it
# recorded an outcome, and a queued run no worker started within QUEUED_RUN_TIMEOUT.
EXECUTION_QUEUED = "Queued"
EXECUTION_LOST = "Lost"
EXECUTION_EXPIRED = "Expired"


class ExecutionRecord(models.Model):
    """What scheduler_app knows of one run beyond django-apscheduler's execution row.

    `DjangoJobExecution` is another app's table; everything a run needs besides its
    status, run time, duration and error lives here, one row per execution, written
    in the transaction that records the claimed run. Readers treat a missing row (a
    run recorded before this table existed) as all fields empty.
    """

    class Cause(models.TextChoices):
        SCHEDULED = "scheduled", "Scheduled"
        RUN_NOW = "run_now", "Run now"
        BACKFILL = "backfill", "Backfill"

    execution = models.OneToOneField(
        DjangoJobExecution, primary_key=True, on_delete=models.CASCADE, related_name="record"
    )
    cause = models.CharField(max_length=16, choices=Cause.choices, default=Cause.SCHEDULED)
    # When the scheduler claimed the run and handed it over (to its threads or to the
    # task backend): a queued run expires QUEUED_RUN_TIMEOUT after this. None: claimed
    # before this was recorded.
    claimed_at = models.DateTimeField(null=True, blank=True, default=timezone.now)
    # When the run really started (its lateness is this minus the run time).
    started_at = models.DateTimeField(null=True, blank=True)
    # Written with the database's clock when the run starts and then every fraction
    # of LOST_RUN_TIMEOUT while it executes (`scheduler_app.liveness`), so a run whose
    # process died can be told from one that is merely slow.
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    # Keyword arguments for this run only (run now with arguments), JSON values.
    kwargs = models.JSONField(null=True, blank=True)
    # Catch-up runs of this job that were skipped before this one (long downtime).
    # A big integer: a stored next run time of year 1 on a 1-second interval is
    # 6.4e10 runs behind, past a 32-bit column (PostgreSQL refused the claim).
    skipped_runs = models.PositiveBigIntegerField(default=0)

    def __str__(self) -> str:
        return f"execution {self.execution_id} ({self.cause})"


class JobHealth(models.Model):
    """Per job: run counts, the newest outcome, and the open incident.

    The counts go up as outcomes are recorded and never down (pruning history does
    not touch them): they are the Prometheus counters of `scheduler_app.metrics`,
    read with the job in one query instead of counting history at every scrape.
    `incident` lists the alert events already raised since the job last succeeded,
    so repeated failures of one incident raise one alert (`scheduler_app.alerts`).
    """

    job = models.OneToOneField(
        DjangoJob, primary_key=True, on_delete=models.CASCADE, related_name="health"
    )
    runs_success = models.PositiveBigIntegerField(default=0)
    runs_error = models.PositiveBigIntegerField(default=0)
    runs_missed = models.PositiveBigIntegerField(default=0)
    runs_lost = models.PositiveBigIntegerField(default=0)
    runs_skipped = models.PositiveBigIntegerField(default=0)
    # When the newest run with an outcome was due; how long the newest of those that
    # started took, and how late it started.
    last_run_time = models.DateTimeField(null=True, blank=True)
    last_duration = models.FloatField(null=True, blank=True)
    last_lateness = models.FloatField(null=True, blank=True)
    # When the newest successful run finished.
    last_success_at = models.DateTimeField(null=True, blank=True)
    # The first run due since the last success, and when the job is overdue if none
    # succeeds (that run time plus its `alert_after`, moved when that changes); both
    # cleared by a success.
    due_since = models.DateTimeField(null=True, blank=True)
    overdue_at = models.DateTimeField(null=True, blank=True, db_index=True)
    incident = models.JSONField(default=list, blank=True)

    class Meta:
        verbose_name_plural = "job health"

    def __str__(self) -> str:
        return f"health of {self.job_id}"


class Alert(models.Model):
    """One alert raised about a job, and what became of its delivery.

    Written in the transaction that decided to raise it; delivery to the channels of
    `SCHEDULER_APP["ALERTS"]` happens after commit in a background thread, which
    records here whether every channel took it. `job_id` is plain text, so the log
    outlives the job.
    """

    class Event(models.TextChoices):
        RUN_FAILED = "run_failed", "Run failed"
        RUN_MISSED = "run_missed", "Run missed or skipped"
        JOB_OVERDUE = "job_overdue", "Job overdue"
        JOB_AUTO_PAUSED = "job_auto_paused", "Job auto-paused"
        JOB_RECOVERED = "job_recovered", "Job recovered"

    class Delivery(models.TextChoices):
        PENDING = "pending", "Pending"
        DELIVERED = "delivered", "Delivered"
        FAILED = "failed", "Failed"
        NO_CHANNELS = "no_channels", "No channel configured"

    event = models.CharField(max_length=32, choices=Event.choices)
    job_id = models.CharField(max_length=255)
    run_time = models.DateTimeField(null=True, blank=True)
    message = models.TextField()
    occurred_at = models.DateTimeField(default=timezone.now)
    delivery = models.CharField(max_length=16, choices=Delivery.choices, default=Delivery.PENDING)
    # One line per channel: where it went and how that ended.
    delivery_detail = models.TextField(blank=True)

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["job_id", "-id"], name="alert_job_newest")]

    def __str__(self) -> str:
        return f"{self.event} {self.job_id} at {self.occurred_at:%Y-%m-%d %H:%M:%S}"


class Source(models.TextChoices):
    """The front door a change came through."""

    API = "api", "API"
    ADMIN = "admin", "Admin"
    CLI = "cli", "Command line"
    CODE = "code", "Code (scheduler start)"
    # The scheduler process itself: an auto-pause after failures, a resume at
    # `paused_until`.
    SCHEDULER = "scheduler", "Scheduler process"


class JobRecord(models.Model):
    """The version of a job, bumped by every committed change to it, and where it came from.

    Clients send the version back (If-Match, the admin form, `--if-version`) so that
    a change made from a stale view is refused instead of silently overwriting another.
    A deleted runtime job keeps its row, paused and marked `deleted_at`: its execution
    history references the job row (django-apscheduler deletes history with the job),
    and nothing an operator did is silently lost.
    """

    class Origin(models.TextChoices):
        CODE = "code", "Declared in code"
        RUNTIME = "runtime", "Created at runtime"

    job = models.OneToOneField(
        DjangoJob, primary_key=True, on_delete=models.CASCADE, related_name="record"
    )
    version = models.PositiveBigIntegerField(default=0)
    # Queryable copies of what the pickled state holds, written in the same
    # transaction as `job_state`, so lists filter and search without unpickling.
    name = models.CharField(max_length=255, blank=True, db_index=True)
    trigger_type = models.CharField(max_length=16, blank=True, db_index=True)
    updated_at = models.DateTimeField(default=timezone.now)
    # The run policy APScheduler does not keep on its job (max_instances, coalesce
    # and misfire_grace_time live in `job_state`): pause after this many failed
    # runs in a row (None: never), and how many runs in a row have failed.
    pause_after_failures = models.PositiveIntegerField(null=True, blank=True)
    consecutive_failures = models.PositiveIntegerField(default=0)
    # Why, by whom, since when and until when the job is paused; all None while it
    # runs (None, not "": "no reason given" and "not paused" read alike, as the API's
    # null). `paused_until` is indexed: the scheduler looks for jobs due to resume.
    paused_reason = models.CharField(max_length=500, null=True, blank=True)  # noqa: DJ001
    paused_by = models.CharField(max_length=150, null=True, blank=True)  # noqa: DJ001
    paused_at = models.DateTimeField(null=True, blank=True)
    paused_until = models.DateTimeField(null=True, blank=True, db_index=True)
    # The operator's grace (seconds) before a job with no successful run since it
    # was due is overdue; None: the job's `alert_after` in code, else ALERT_AFTER.
    alert_after = models.PositiveIntegerField(null=True, blank=True)
    origin = models.CharField(max_length=16, choices=Origin.choices, default=Origin.CODE)
    # The registered name of a runtime job's function (`@job_function`); blank for
    # jobs declared in code, whose function is schedulable under their job id.
    function = models.CharField(max_length=191, blank=True)
    deleted_at = models.DateTimeField(null=True, blank=True)
    # The function reference ("module:qualname") the stored state names, copied by
    # every writer of the state in the same transaction (a scheduler pass changes
    # only the next run time, never the function). Whether jobs can run is then
    # asked of the code once per distinct reference, instead of unpickling every
    # state (`selectors.broken_job_ids`). None: not known (a state written by
    # another process, unreadable when last read, or a reference too long): readers
    # read that job's state itself.
    func_ref = models.CharField(max_length=255, null=True, blank=True)  # noqa: DJ001
    # The schedule in words (`triggers.describe_trigger`) of a state with one of
    # APScheduler's own triggers, copied by the same writers in the same
    # transaction: a Prometheus scrape labels every job without unpickling its state
    # (`selectors.job_metrics`). None: not known; readers read the state.
    schedule = models.TextField(null=True, blank=True)  # noqa: DJ001

    class Meta:
        indexes = [
            # Deleted jobs are few: the lists skip them through this small index
            # instead of joining every job to its record.
            models.Index(fields=["deleted_at"], condition=models.Q(deleted_at__isnull=False),
                         name="jobrecord_deleted"),
            # Live jobs by function and trigger type: counted from the index alone.
            models.Index(fields=["func_ref", "trigger_type"],
                         condition=models.Q(deleted_at__isnull=True),
                         name="jobrecord_live_function"),
        ]

    def __str__(self) -> str:
        return f"{self.job_id} v{self.version}"


class Job(DjangoJob):
    """django-apscheduler's job row under this app's name, for the admin.

    A proxy (no table of its own): the admin lists jobs as "Scheduler › Jobs" instead
    of django-apscheduler's "Django APScheduler › Django jobs". Permissions stay
    django-apscheduler's (`django_apscheduler.view_djangojob`, `change_djangojob`).
    """

    class Meta:
        proxy = True
        verbose_name = "job"
        verbose_name_plural = "jobs"


class Run(DjangoJobExecution):
    """django-apscheduler's execution row under this app's name: one run of a job."""

    class Meta:
        proxy = True
        verbose_name = "run"
        verbose_name_plural = "runs"


class JobChange(models.Model):
    """One committed change to a job: who, what, through which door, before and after.

    Written in the same transaction as the change, so the trail never shows a change
    that did not happen. `job_id` is plain text, not a foreign key, so the trail
    outlives the job.
    """

    class Action(models.TextChoices):
        CREATED = "created", "Created"
        UPDATED = "updated", "Updated"
        DELETED = "deleted", "Deleted"
        UPDATED_FROM_CODE = "updated_from_code", "Metadata updated from code"
        RESCHEDULED = "rescheduled", "Rescheduled"
        PAUSED = "paused", "Paused"
        RESUMED = "resumed", "Resumed"
        RESET = "reset", "Reset to code default"
        RUN_REQUESTED = "run_requested", "Run requested"
        POLICY_CHANGED = "policy_changed", "Run policy changed"
        REVERTED = "reverted", "Reverted to an earlier version"
        BACKFILL_REQUESTED = "backfill_requested", "Backfill requested"

    job_id = models.CharField(max_length=255)
    version = models.PositiveBigIntegerField(help_text="The job's version after this change.")
    action = models.CharField(max_length=32, choices=Action.choices)
    actor = models.CharField(max_length=150)
    source = models.CharField(max_length=16, choices=Source.choices)
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)
    # What the change did, in words ("Reverted to version 3", "Paused after 3
    # consecutive failures").
    message = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["job_id", "-id"], name="jobchange_job_newest")]
        verbose_name = "change"
        verbose_name_plural = "changes"

    def __str__(self) -> str:
        return f"{self.job_id} {self.action} by {self.actor} ({self.source})"


class RunRequest(models.Model):
    """A request to run a job once, now, outside its schedule.

    Web processes never run jobs: they write this row, and the scheduler process
    claims it, runs the job once and links the execution it recorded.
    """

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        SUBMITTED = "submitted", "Submitted to the scheduler's workers"
        SKIPPED = "skipped", "Skipped"
        # No scheduler claimed it within RUN_REQUEST_TIMEOUT: it will not run.
        EXPIRED = "expired", "Expired"

    job = models.ForeignKey(DjangoJob, on_delete=models.CASCADE, related_name="run_requests")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    requested_at = models.DateTimeField(default=timezone.now)
    requested_by = models.CharField(max_length=150)
    source = models.CharField(max_length=16, choices=Source.choices)
    claimed_at = models.DateTimeField(null=True, blank=True)
    run_time = models.DateTimeField(
        null=True, blank=True, help_text="The run time the execution is recorded under."
    )
    detail = models.CharField(max_length=255, blank=True)
    # Keyword arguments for this run only, on top of the job's own (JSON values,
    # bound against the function's signature before the request was stored).
    kwargs = models.JSONField(null=True, blank=True)
    # run_now: claimed at once, run at the claim's time. backfill: `run_time` is the
    # scheduled time it makes up for, set when queued; claimed in run-time order as
    # the job's max_instances leaves room.
    cause = models.CharField(
        max_length=16,
        choices=[(ExecutionRecord.Cause.RUN_NOW, "Run now"),
                 (ExecutionRecord.Cause.BACKFILL, "Backfill")],
        default=ExecutionRecord.Cause.RUN_NOW,
    )

    class Meta:
        ordering = ["-id"]
        indexes = [
            models.Index(fields=["status", "id"], name="runrequest_status_id"),
            models.Index(fields=["job", "status", "run_time"], name="runrequest_job_pending"),
        ]

    def __str__(self) -> str:
        return f"run {self.job_id} requested by {self.requested_by} ({self.status})"

    @property
    def execution(self) -> DjangoJobExecution | None:
        """The execution recorded for this request once the scheduler ran it."""
        if self.run_time is None:
            return None
        return DjangoJobExecution.objects.filter(job_id=self.job_id, run_time=self.run_time).first()


class SchedulerLease(models.Model):
    """The lease that makes one scheduler process the active one.

    `epoch` goes up at every takeover: it is the fencing token every claim checks in
    its own transaction (see `scheduler_app.leadership`).
    """

    name = models.CharField(max_length=32, primary_key=True)
    holder = models.CharField(max_length=255, blank=True)
    epoch = models.PositiveBigIntegerField(default=0)
    expires_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"lease {self.name}: {self.holder or 'nobody'} (epoch {self.epoch})"


class SchedulerProcess(models.Model):
    """One `runscheduler` process and its heartbeat, read by the status endpoint."""

    class Role(models.TextChoices):
        ACTIVE = "active", "Active"
        STANDBY = "standby", "Standing by"

    instance = models.CharField(max_length=255, blank=True)
    host = models.CharField(max_length=255)
    pid = models.PositiveIntegerField()
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.STANDBY)
    epoch = models.PositiveBigIntegerField(null=True, blank=True)
    started_at = models.DateTimeField(default=timezone.now)
    last_heartbeat = models.DateTimeField(default=timezone.now)
    stopped_at = models.DateTimeField(null=True, blank=True)
    notification_mode = models.CharField(max_length=16)

    class Meta:
        ordering = ["-last_heartbeat"]

    def __str__(self) -> str:
        return f"scheduler {self.host}:{self.pid}"
