"""`manage.py scheduler` through call_command: every subcommand and every error path."""

from __future__ import annotations

import dataclasses
import getpass
import json
import re
import sys
import threading
import time
from dataclasses import dataclass
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import OperationalError, connections
from django.utils import timezone
from django_apscheduler.models import DjangoJob, DjangoJobExecution

from scheduler_app import selectors, services
from scheduler_app.api.serializers import SchedulerStatusSerializer
from scheduler_app.models import (
    EXECUTION_EXPIRED,
    EXECUTION_LOST,
    Alert,
    JobChange,
    RunRequest,
    SchedulerLease,
    SchedulerProcess,
)
from scheduler_app.registry import registry
from tests.conftest import copy_stored_job, record_execution, wait_for

pytestmark = pytest.mark.django_db

JOB = "probe.record"
API_JOB_FIELDS = {
    "id", "name", "func", "trigger", "trigger_args", "description", "enabled", "state",
    "next_run_time",
    "upcoming", "version", "is_default_schedule", "broken", "max_instances",
    "misfire_grace_time", "coalesce", "pause_after_failures", "consecutive_failures",
    "paused_reason", "paused_by", "paused_at", "paused_until", "last_execution",
}
API_EXECUTION_FIELDS = {
    "id", "job", "status", "run_time", "started", "lateness", "finished", "duration", "exception",
    "traceback", "cause", "kwargs", "skipped_runs",
}
ANSI_ESCAPE = "\x1b["


@dataclass
class Output:
    stdout: str
    stderr: str

    @property
    def lines(self) -> list[str]:
        return self.stdout.splitlines()

    def json(self) -> object:
        return json.loads(self.stdout)


def scheduler(*args: str) -> Output:
    stdout, stderr = StringIO(), StringIO()
    call_command("scheduler", *args, stdout=stdout, stderr=stderr)
    return Output(stdout.getvalue(), stderr.getvalue())


def refused(*args: str) -> CommandError:
    with pytest.raises(CommandError) as raised:
        scheduler(*args)
    return raised.value


def operator(job_id: str = JOB) -> dict[str, str]:
    return {"job_id": job_id, "actor": "someone", "source": "api"}


def add_execution(job_id: str, *, status: str, age: timedelta, exception: str = "") -> int:
    """A quarter-second run scheduled `age` ago, started 0.1 s late; its id."""
    return record_execution(
        job_id,
        minutes_ago=age / timedelta(minutes=1),
        status=status,
        duration=0.25,
        exception=exception or None,
        lateness=0.1,
    ).id


def add_broken_job(job_id: str = "renamed.job") -> None:
    copy_stored_job(JOB, job_id, func="tests.testapp.jobs:renamed_away")


def pretend_scheduler_is_running(monkeypatch: pytest.MonkeyPatch) -> selectors.SchedulerStatus:
    """What the status selector says while a scheduler process is alive (tested with it)."""
    now = timezone.now()
    status = dataclasses.replace(
        selectors.scheduler_status(),
        running=True,
        pid=4242,
        host="box",
        started_at=now - timedelta(hours=1),
        last_heartbeat=now - timedelta(seconds=2),
        notification_mode="notify",
        checked_at=now,  # the database's clock, which `scheduler status` counts from
    )
    monkeypatch.setattr(selectors, "scheduler_status", lambda: status)
    return status


def version(job_id: str = JOB) -> int:
    return selectors.get_job(job_id=job_id).version


# list


def test_list_shows_each_job_with_schedule_next_run_state_and_last_status(synced):
    add_execution(JOB, status=DjangoJobExecution.ERROR, age=timedelta(minutes=3))

    output = scheduler("list")

    assert re.split(r"\s{2,}", output.lines[0]) == [
        "ID", "SCHEDULE", "NEXT RUN (UTC)", "STATE", "LAST RUN",
    ]
    rows = {line.split()[0]: line for line in output.lines[1:]}
    assert set(rows) == {view.id for view in selectors.job_views(selectors.job_queryset())}
    assert re.search(r"2099-01-01 00:00:00 \(in \d+ years\)\s+scheduled\s+error$", rows[JOB])
    assert "Every 30 seconds" in rows["cache.warm"]
    assert all(len(line) <= 100 for line in output.lines)


def test_list_filters_paused_enabled_and_broken_jobs(synced):
    add_broken_job()
    services.pause_job(**operator())

    def listed(*options: str) -> set[str]:
        return {job["id"] for job in scheduler("list", "--json", *options).json()}

    assert listed("--paused") == {JOB}
    assert JOB not in listed("--enabled") and "cache.warm" in listed("--enabled")
    assert listed("--broken") == {"renamed.job"}
    broken_row = next(line for line in scheduler("list").lines if line.startswith("renamed"))
    assert "broken" in broken_row


def test_list_json_uses_the_api_field_names_and_values(synced):
    services.pause_job(**operator())

    jobs = {job["id"]: job for job in scheduler("list", "--json").json()}

    assert API_JOB_FIELDS <= set(jobs[JOB])
    assert jobs[JOB]["enabled"] is False and jobs[JOB]["version"] == 2
    assert jobs["cache.warm"]["trigger_args"]["seconds"] == 30
    assert jobs["cache.warm"]["next_run_time"].endswith("Z")


class Terminal(StringIO):
    def isatty(self) -> bool:
        return True


def test_colour_only_when_the_output_is_a_terminal(synced, monkeypatch):
    monkeypatch.setattr(sys, "stdout", Terminal())  # what Django looks at
    terminal, pipe, plain_terminal = Terminal(), StringIO(), Terminal()

    call_command("scheduler", "list", stdout=terminal)
    call_command("scheduler", "list", stdout=pipe)
    call_command("scheduler", "list", "--no-color", stdout=plain_terminal)

    assert ANSI_ESCAPE in terminal.getvalue()
    assert ANSI_ESCAPE not in pipe.getvalue()
    assert ANSI_ESCAPE not in plain_terminal.getvalue()


def test_forced_colour_reaches_a_pipe(synced):
    assert ANSI_ESCAPE in scheduler("list", "--force-color").stdout


def test_list_with_no_matching_job_says_so(synced):
    assert scheduler("list", "--paused").stdout == "No jobs match.\n"


# show


def test_show_has_trigger_fields_fire_times_version_default_and_executions(synced):
    services.reschedule_job(
        trigger_spec={"trigger": "interval", "trigger_args": {"minutes": 5}}, **operator()
    )
    add_execution(JOB, status=DjangoJobExecution.SUCCESS, age=timedelta(minutes=1))

    output = scheduler("show", JOB)

    text = output.stdout
    assert re.search(r"^trigger +interval: weeks=0 days=0 hours=0 minutes=5 seconds=0", text, re.M)
    assert re.search(r"^schedule +Every 5 minutes$", text, re.M)
    assert re.search(r"^version +2$", text, re.M)
    default = re.search(r"^default schedule +(At 00:00, .*?)\n(?=\S)", text, re.M | re.S)[1]
    assert " ".join(default.split()).endswith("only in 2099 (UTC) (reset restores it)")
    fire_times = re.findall(r"^(?:next fire times|) +(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) \(in ",
                            text, re.M)
    assert len(fire_times) == 5
    assert re.search(r"^\d+ +success .* 0\.25s", text, re.M)
    assert all(len(line) <= 100 for line in output.lines)


def test_show_json_is_the_api_representation_of_the_job(synced):
    job = scheduler("show", JOB, "--json").json()

    assert API_JOB_FIELDS <= set(job)
    assert (job["id"], job["version"], job["is_default_schedule"]) == (JOB, 1, True)
    assert job["trigger_args"]["year"] == "2099"
    assert job["upcoming"] == ["2099-01-01T00:00:00Z"]


def test_show_marks_a_broken_job(synced):
    add_broken_job()

    text = scheduler("show", "renamed.job").stdout

    assert "renamed_away (broken: it cannot be imported)" in text
    assert "orphaned" in text


# pause, resume, reset


def test_pause_is_recorded_as_the_os_user_through_the_cli_and_read_back_at_once(synced):
    output = scheduler("pause", JOB)

    assert output.lines[0] == f"{JOB}: Job paused. Version 2."
    job = selectors.get_job(job_id=JOB)
    assert not job.enabled and job.version == 2
    change = JobChange.objects.filter(job_id=JOB).first()
    assert (change.action, change.actor, change.source) == ("paused", getpass.getuser(), "cli")


def test_pausing_a_paused_job_changes_nothing(synced):
    scheduler("pause", JOB)

    output = scheduler("pause", JOB)

    assert "already paused. Nothing changed (version 2)" in output.stdout
    assert version() == 2


def test_resume_puts_the_job_back_on_its_schedule(synced):
    services.pause_job(**operator())

    output = scheduler("resume", JOB)

    assert output.lines[0] == f"{JOB}: Job resumed. Version 3."
    assert re.search(r"^next run +2099-01-01 00:00:00", output.stdout, re.M)
    assert selectors.get_job(job_id=JOB).enabled


def test_reset_restores_the_code_default(synced):
    services.reschedule_job(
        trigger_spec={"trigger": "interval", "trigger_args": {"minutes": 5}}, **operator()
    )

    output = scheduler("reset", JOB)

    assert output.lines[0] == f"{JOB}: Job reset to its code default. Version 3."
    job = selectors.get_job(job_id=JOB)
    assert job.is_default_schedule and job.trigger == "cron"


@pytest.mark.parametrize("subcommand", ["pause", "resume", "reset", "trigger"])
def test_stale_if_version_is_refused_and_changes_nothing(synced, subcommand):
    services.reschedule_job(
        trigger_spec={"trigger": "interval", "trigger_args": {"minutes": 5}}, **operator()
    )
    trail = JobChange.objects.count()

    error = refused(subcommand, JOB, "--if-version", "1")

    assert str(error) == (
        f"Job '{JOB}' is at version 2, not 1: someone else changed it; reload and try again."
    )
    assert error.returncode == 1
    assert version() == 2 and JobChange.objects.count() == trail
    assert not RunRequest.objects.exists()


@pytest.mark.parametrize(
    "args",
    [
        ["show", "no.such.job"],
        ["pause", "no.such.job"],
        ["resume", "no.such.job"],
        ["reset", "no.such.job"],
        ["trigger", "no.such.job"],
        ["reschedule", "no.such.job", "--cron", "0 * * * *"],
        ["reschedule", "no.such.job", "--cron", "0 * * * *", "--dry-run"],
        ["history", "no.such.job"],
        ["changes", "no.such.job"],
    ],
)
def test_unknown_job_is_one_clear_line(synced, args):
    error = refused(*args)

    assert str(error) == "No job with id 'no.such.job'."
    assert error.returncode == 1


# reschedule


@pytest.mark.parametrize(
    ("options", "trigger", "expected_args"),
    [
        (["--cron", "*/5 * * * 1-5"], "cron",
         {"minute": "*/5", "hour": "*", "day_of_week": "mon-fri", "second": "0"}),
        (["--interval", "90s"], "interval", {"minutes": 1, "seconds": 30}),
        (["--interval", "5m"], "interval", {"minutes": 5, "hours": 0}),
        (["--interval", "2h"], "interval", {"hours": 2, "minutes": 0}),
        (["--interval", "1d"], "interval", {"days": 1, "hours": 0}),
        (["--at", "2090-01-31T09:00:00"], "date", {"run_date": "2090-01-31T09:00:00+00:00"}),
        (["--trigger", "interval", "--arg", "minutes=10", "--arg", "jitter=5"], "interval",
         {"minutes": 10, "jitter": 5}),
        (["--trigger", "cron", "--arg", "hour=3", "--arg", "minute=0"], "cron",
         {"hour": "3", "minute": "0", "second": "0"}),
        (["--cron", "0 9 * * *", "--timezone", "Europe/Paris"], "cron",
         {"hour": "9", "timezone": "Europe/Paris"}),
    ],
)
def test_reschedule_options_become_the_stored_trigger(synced, options, trigger, expected_args):
    output = scheduler("reschedule", JOB, *options)

    assert output.lines[0] == f"{JOB}: Job rescheduled. Version 2."
    job = selectors.get_job(job_id=JOB)
    assert job.trigger == trigger
    assert {key: job.trigger_args[key] for key in expected_args} == expected_args
    change = JobChange.objects.filter(job_id=JOB).first()
    assert (change.action, change.source) == ("rescheduled", "cli")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--trigger", "interval", "--arg", "minutes=-5"],
         "trigger_args.minutes: must be a finite number, 0 or more, not -5."),
        (["--cron", "61 * * * *"], "trigger_args.crontab: "),
        (["--at", "2001-01-01T00:00:00"], "trigger_args.run_date: "),
        (["--at", "next tuesday"], "trigger_args.run_date: "),
        (["--cron", "0 * * * *", "--timezone", "Mars/Olympus"],
         "trigger_args.timezone: unknown time zone 'Mars/Olympus'"),
        (["--trigger", "interval", "--arg", "minute=5"], "trigger_args.minute: unknown argument"),
        (["--trigger", "date"], "trigger_args.run_date: is required"),
        (["--trigger", "interval", "--arg", "seconds=0.000001"],
         "trigger_args.seconds: the interval is 0.000001 s; the shortest allowed is 1 s"),
    ],
)
@pytest.mark.parametrize("dry_run", [[], ["--dry-run"]])
def test_invalid_schedule_names_the_field_and_changes_nothing(synced, options, message, dry_run):
    trail = JobChange.objects.count()

    error = refused("reschedule", JOB, *options, *dry_run)

    assert str(error).startswith(message)
    assert "\n" not in str(error) and error.returncode == 1
    assert version() == 1 and JobChange.objects.count() == trail


def test_dry_run_prints_the_next_five_fire_times_and_changes_nothing(synced):
    before = DjangoJob.objects.get(id=JOB)
    trail = JobChange.objects.count()

    output = scheduler("reschedule", JOB, "--cron", "*/5 * * * *", "--dry-run")

    assert output.lines[0] == "Dry run: nothing was changed."
    assert re.search(r"^new schedule +Every 5 minutes \(UTC\)$", output.stdout, re.M)
    fire_times = re.findall(r" (\d\d):(\d\d):00 \(in ", output.stdout)
    assert len(fire_times) == 5
    assert all(int(minute) % 5 == 0 for _, minute in fire_times)
    after = DjangoJob.objects.get(id=JOB)
    assert (bytes(after.job_state), after.next_run_time) == (
        bytes(before.job_state), before.next_run_time
    )
    assert version() == 1 and JobChange.objects.count() == trail


def test_dry_run_checks_the_version_and_says_a_paused_job_stays_paused(synced):
    services.pause_job(**operator())

    assert "version 2, not 1" in str(
        refused("reschedule", JOB, "--interval", "5m", "--dry-run", "--if-version", "1")
    )
    output = scheduler("reschedule", JOB, "--interval", "5m", "--dry-run", "--if-version", "2")
    assert "the job is paused and would stay paused" in output.stdout


def test_reschedule_with_current_if_version_goes_through(synced):
    scheduler("reschedule", JOB, "--interval", "5m", "--if-version", "1")

    assert version() == 2


def test_reschedule_of_a_broken_job_is_refused(synced):
    add_broken_job()

    error = refused("reschedule", "renamed.job", "--interval", "5m")

    assert "is broken: its function 'tests.testapp.jobs:renamed_away' cannot be imported" in str(
        error
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["reschedule", JOB], "one of the arguments --cron --interval --at --trigger is required"),
        (["reschedule", JOB, "--cron", "* * * * *", "--interval", "5m"], "not allowed with"),
        (["reschedule", JOB, "--interval", "5x"], "'5x' is not a duration like 90s"),
        (["reschedule", JOB, "--interval", "0s"], "'0s' is not longer than 0"),
        (["reschedule", JOB, "--interval", "99999999999d"], "is longer than 100 years"),
        (["reschedule", JOB, "--cron", "* * * * *", "--arg", "minute=5"],
         "--arg goes with --trigger"),
        (["reschedule", JOB, "--trigger", "interval", "--arg", "minutes"], "is not KEY=VALUE"),
        (["reschedule", JOB, "--trigger", "interval", "--arg", "minutes=1", "--arg",
          "minutes=2"], "--arg minutes is given twice"),
        (["reschedule", JOB, "--trigger", "weekly"], "invalid choice: 'weekly'"),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
        (["list", "--bogus"], "unrecognized arguments: --bogus"),
        (["history", "--status", "exploded"], "invalid choice: 'exploded'"),
        (["history", "--limit", "0"], "'0' is not a whole number above 0"),
        (["trigger", JOB, "--wait", "--timeout", "soon"], "is not a number of seconds"),
        (["prune"], "the following arguments are required: --older-than"),
        (["prune", "--older-than", "30"], "'30' is not a duration"),
    ],
)
def test_command_line_mistakes_are_usage_errors(synced, args, message):
    error = refused(*args)

    assert message in str(error)
    assert error.returncode == 2
    assert version() == 1


# trigger


def test_trigger_records_a_run_request_and_warns_without_a_scheduler(synced):
    output = scheduler("trigger", JOB)

    request = RunRequest.objects.get()
    assert output.lines == [f"{JOB}: run requested (request #{request.id})."]
    assert output.stderr.startswith("warning: no scheduler process is running")
    assert (request.job_id, request.requested_by, request.source, request.status) == (
        JOB, getpass.getuser(), "cli", "pending"
    )
    assert JobChange.objects.filter(job_id=JOB).first().action == "run_requested"
    assert version() == 1, "run-now does not change the schedule"


def test_trigger_with_a_scheduler_running_does_not_warn(synced, monkeypatch):
    pretend_scheduler_is_running(monkeypatch)

    assert scheduler("trigger", JOB).stderr == ""


def test_trigger_wait_without_a_scheduler_times_out_with_a_clear_message(synced):
    started = time.monotonic()

    error = refused("trigger", JOB, "--wait", "--timeout", "0.3")

    assert 0.3 <= time.monotonic() - started < 5
    assert error.returncode == 3
    assert str(error).startswith(f"timed out after 0.3s waiting for {JOB}: no scheduler process")
    assert RunRequest.objects.get().status == "pending"


def test_trigger_of_a_broken_job_is_refused(synced):
    add_broken_job()

    assert "is broken" in str(refused("trigger", "renamed.job"))
    assert not RunRequest.objects.exists()


class FakeScheduler(threading.Thread):
    """Claims the first run request the way the scheduler process does, with a set outcome."""

    def __init__(self, *, status: str | None, exception: str = "") -> None:
        super().__init__(daemon=True)
        self.status = status
        self.exception = exception

    def run(self) -> None:
        try:
            request = wait_for(lambda: RunRequest.objects.first(), timeout=10)
            if self.status is None:
                request.status, request.detail = RunRequest.Status.SKIPPED, "Gone fishing."
                request.save()
                return
            request.status, request.run_time = RunRequest.Status.SUBMITTED, timezone.now()
            request.save()
            DjangoJobExecution.objects.create(
                job_id=request.job_id, run_time=request.run_time, status=DjangoJobExecution.SENT
            )
            time.sleep(0.3)
            DjangoJobExecution.objects.filter(run_time=request.run_time).update(
                status=self.status, duration=0.3, exception=self.exception or None
            )
        finally:
            connections.close_all()


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("status", "exception", "message"),
    [
        (DjangoJobExecution.ERROR, "ValueError('boom')",
         f"{JOB}: the run failed: ValueError('boom')"),
        (DjangoJobExecution.MISSED, "", f"{JOB}: the run started too late"),
        (DjangoJobExecution.MAX_INSTANCES, "", f"{JOB}: the run was skipped: the job already"),
        (EXECUTION_LOST, "", f"{JOB}: the run was lost: the process running it died"),
        (EXECUTION_EXPIRED, "", f"{JOB}: the run expired: no task worker started it in time"),
        (None, "", f"{JOB}: the scheduler skipped the run: Gone fishing."),
    ],
)
def test_trigger_wait_exits_with_the_failed_outcome(status, exception, message):
    services.sync_jobs_from_code()
    fake = FakeScheduler(status=status, exception=exception)
    fake.start()

    error = refused("trigger", JOB, "--wait", "--timeout", "10")

    fake.join(timeout=10)
    assert str(error).startswith(message)
    assert error.returncode == 1


@pytest.mark.django_db(transaction=True)
def test_trigger_wait_reports_success_after_the_run_finishes():
    services.sync_jobs_from_code()
    fake = FakeScheduler(status=DjangoJobExecution.SUCCESS)
    fake.start()

    output = scheduler("trigger", JOB, "--wait", "--timeout", "10")

    fake.join(timeout=10)
    execution = DjangoJobExecution.objects.get()
    assert output.lines[-1] == f"{JOB}: run succeeded in 0.30s (execution #{execution.id})."


# history


def test_history_lists_executions_newest_first_with_filters_and_limit(synced):
    oldest = add_execution(JOB, status=DjangoJobExecution.SUCCESS, age=timedelta(hours=3))
    failed = add_execution(
        JOB, status=DjangoJobExecution.ERROR, age=timedelta(hours=2), exception="KeyError('x')"
    )
    other = add_execution("cache.warm", status=DjangoJobExecution.SUCCESS, age=timedelta(hours=1))

    def ids(*options: str) -> list[int]:
        return [execution["id"] for execution in scheduler("history", *options, "--json").json()]

    assert ids() == [other, failed, oldest]
    assert ids(JOB) == [failed, oldest]
    assert ids("--status", "error") == [failed]
    assert ids("--limit", "1") == [other]
    table = scheduler("history").lines
    assert re.split(r"\s{2,}", table[0]) == [
        "ID", "JOB", "STATUS", "RUN TIME (UTC)", "LATENESS", "DURATION", "EXCEPTION",
    ]
    assert re.match(
        rf"{failed} +{re.escape(JOB)} +error .*\(2 h ago\) +0\.10s +0\.25s +KeyError\('x'\)$",
        table[2],
    )
    assert "JOB" not in scheduler("history", JOB).lines[0]


def test_history_json_uses_the_api_execution_fields(synced):
    add_execution(JOB, status=DjangoJobExecution.ERROR, age=timedelta(minutes=1), exception="x")

    [execution] = scheduler("history", "--json").json()

    assert set(execution) == API_EXECUTION_FIELDS
    assert (execution["job"], execution["status"], execution["duration"]) == (JOB, "error", 0.25)
    assert execution["lateness"] == 0.1


def test_history_defaults_to_twenty_entries(synced):
    for minutes in range(25):
        add_execution(JOB, status=DjangoJobExecution.SUCCESS, age=timedelta(minutes=minutes))

    assert len(scheduler("history", "--json").json()) == 20
    assert len(scheduler("history").lines) == 21


def test_history_without_executions_says_so(synced):
    assert scheduler("history", JOB).stdout == "No executions recorded.\n"


def test_long_exceptions_are_cut_to_fit_100_columns(synced):
    add_execution(JOB, status=DjangoJobExecution.ERROR, age=timedelta(minutes=1),
                  exception="RuntimeError: " + "very long\nmessage " * 30)

    lines = scheduler("history").lines

    assert len(lines) == 2
    assert all(len(line) <= 100 for line in lines)
    assert lines[1].endswith("…")


# changes


def test_changes_show_the_audit_trail_newest_first(synced):
    scheduler("reschedule", JOB, "--cron", "*/5 * * * *")
    scheduler("pause", JOB)

    lines = scheduler("changes", JOB).lines

    user = re.escape(getpass.getuser())
    assert re.split(r"\s{2,}", lines[0]) == [
        "WHEN (UTC)", "ACTION", "VERSION", "BY", "VIA", "WHAT CHANGED",
    ]
    assert re.search(rf"\d +paused +3 +{user} +cli +enabled True→False$", lines[1])
    assert re.search(rf"rescheduled +2 +{user} +cli +day 1→\*, hour 0→\*, minute 0→\*/5", lines[2])
    assert re.search(r"created +1 +scheduler +code", lines[3])
    assert len(lines) == 4
    assert all(len(line) <= 100 for line in lines)


def test_changes_json_limit_and_a_deleted_jobs_trail(synced):
    scheduler("pause", JOB)
    scheduler("trigger", JOB)
    DjangoJob.objects.filter(id=JOB).delete()

    changes = scheduler("changes", JOB, "--json").json()
    [newest] = scheduler("changes", JOB, "--limit", "1", "--json").json()

    assert [change["action"] for change in changes] == ["run_requested", "paused", "created"]
    assert newest == changes[0]
    assert set(newest) == {
        "id", "job", "version", "action", "actor", "source", "before", "after", "message",
        "created_at",
    }
    assert (newest["actor"], newest["source"]) == (getpass.getuser(), "cli")
    everything = scheduler("changes", "--json").json()
    assert {change["job"] for change in everything} >= {JOB, "cache.warm"}


# alerts


def test_alerts_list_the_log_newest_first_with_each_delivery(synced):
    delivered = Alert.objects.create(event="run_failed", job_id=JOB, message="Run failed: boom",
                                     delivery=Alert.Delivery.DELIVERED)
    failed = Alert.objects.create(
        event="job_overdue", job_id="cache.warm", message="Overdue",
        delivery=Alert.Delivery.FAILED, delivery_detail="webhook: timed out",
    )

    lines = scheduler("alerts").lines
    ids = [alert["id"] for alert in scheduler("alerts", "--json").json()]
    [only_failed] = scheduler("alerts", "--failed", "--json").json()

    assert re.split(r"\s{2,}", lines[0]) == ["WHEN (UTC)", "JOB", "EVENT", "DELIVERY", "MESSAGE"]
    # A failed delivery says why, next to the message.
    assert re.search(r"cache\.warm +job_overdue +failed +Overdue \[webhook: timed out\]$", lines[1])
    assert re.search(rf"{re.escape(JOB)} +run_failed +delivered +Run failed: boom$", lines[2])
    assert ids == [failed.id, delivered.id]
    assert only_failed["id"] == failed.id and set(only_failed) == {
        "id", "event", "job", "run_time", "message", "occurred_at", "delivery", "delivery_detail",
    }
    assert [a["id"] for a in scheduler("alerts", JOB, "--json").json()] == [delivered.id]
    assert [a["id"] for a in scheduler("alerts", "--event", "job_overdue", "--json").json()] == [
        failed.id
    ]
    assert scheduler("alerts", "probe.slow").stdout == "No alerts recorded.\n"
    assert "No job with id 'nope'" in str(refused("alerts", "nope"))


# status


def test_status_without_a_scheduler(synced):
    output = scheduler("status")

    assert re.search(r"^scheduler +not running$", output.stdout, re.M)
    assert re.search(r"^process +no scheduler process has ever reported$", output.stdout, re.M)
    assert re.search(rf"^jobs +{len(registry)}$", output.stdout, re.M)


def test_status_shows_a_running_scheduler_as_the_api_does(synced, monkeypatch):
    services.pause_job(**operator())
    status = pretend_scheduler_is_running(monkeypatch)

    output = scheduler("status")
    data = scheduler("status", "--json").json()

    assert re.search(r"^scheduler +running$", output.stdout, re.M)
    assert re.search(r"^process +pid 4242 on box$", output.stdout, re.M)
    assert re.search(r"^last heartbeat +\d{4}-.* \(2 s ago\)$", output.stdout, re.M)
    assert re.search(r"^notifications +notify$", output.stdout, re.M)
    assert re.search(r"^paused +1$", output.stdout, re.M)
    assert data == json.loads(json.dumps(SchedulerStatusSerializer(status).data))
    assert (data["running"], data["pid"], data["jobs_paused"]) == (True, 4242, 1)


def test_status_lists_the_active_scheduler_and_its_standbys(synced):
    now = timezone.now()
    SchedulerProcess.objects.create(instance="a", host="box-a", pid=11, notification_mode="notify")
    SchedulerProcess.objects.create(instance="b", host="box-b", pid=12, notification_mode="notify")
    SchedulerLease.objects.create(name="default", holder="b", epoch=7,
                                  expires_at=now + timedelta(seconds=5))

    output = scheduler("status")

    assert re.search(r"^scheduler +running$", output.stdout, re.M)
    assert re.search(r"^process +pid 12 on box-b$", output.stdout, re.M)
    assert re.search(r"^instance +active pid 12 on box-b, lease epoch 7, heartbeat ", output.stdout,
                     re.M)
    assert re.search(r"^instance +standby pid 11 on box-a, heartbeat ", output.stdout, re.M)


# prune


def test_prune_deletes_only_old_executions_and_dry_run_only_counts(synced):
    add_execution(JOB, status=DjangoJobExecution.SUCCESS, age=timedelta(days=40))
    add_execution(JOB, status=DjangoJobExecution.ERROR, age=timedelta(days=31))
    recent = add_execution(JOB, status=DjangoJobExecution.SUCCESS, age=timedelta(days=29))
    jobs = DjangoJob.objects.count()

    dry_run = scheduler("prune", "--older-than", "30d", "--dry-run")
    assert dry_run.stdout == "Dry run: 2 execution records older than 30 days would be deleted.\n"
    assert DjangoJobExecution.objects.count() == 3

    assert scheduler("prune", "--older-than", "30d").stdout == (
        "Deleted 2 execution records older than 30 days.\n"
    )
    assert list(DjangoJobExecution.objects.values_list("id", flat=True)) == [recent]
    assert DjangoJob.objects.count() == jobs and version() == 1

    assert scheduler("prune", "--older-than", "30d").stdout == (
        "Deleted 0 execution records older than 30 days.\n"
    )
    assert scheduler("prune", "--older-than", "1w").stdout == (
        "Deleted 1 execution record older than 1 week.\n"
    )


# database errors


def test_database_errors_become_one_line(synced, monkeypatch):
    def unreachable(**_: object) -> None:
        raise OperationalError('connection failed: port 1 refused\n\tIs the server running?')

    monkeypatch.setattr(selectors, "scheduler_status", unreachable)

    error = refused("status")

    assert str(error) == (
        "database unreachable: connection failed: port 1 refused Is the server running?"
    )
    assert error.returncode == 1
