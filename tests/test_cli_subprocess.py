"""`manage.py scheduler` as operators run it: a real process, its exit status and its stderr,
and a real scheduler process acting on what it changes."""

from __future__ import annotations

import getpass
import json
import os
import subprocess
import sys
import time

import pytest
from django_apscheduler.models import DjangoJobExecution

from scheduler_app import selectors, services
from scheduler_app.models import JobChange, RunRequest
from tests.conftest import PROJECT_ROOT, database_url, wait_for
from tests.testapp.models import ProbeRun

JOB = "probe.record"


def manage(*args: str, database: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "DATABASE_URL": database or database_url(),
        "DJANGO_SETTINGS_MODULE": "tests.settings",
    }
    return subprocess.run(
        [sys.executable, "manage.py", "scheduler", *args],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def assert_one_line_error(result: subprocess.CompletedProcess[str], returncode: int) -> str:
    assert result.returncode == returncode, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.endswith("\n") and result.stderr.count("\n") == 1, result.stderr
    assert result.stdout == ""
    return result.stderr.strip()


@pytest.fixture
def jobs(transactional_db: None) -> None:
    """Declared jobs, committed so that other processes see them."""
    services.sync_jobs_from_code()


def test_a_change_made_by_a_real_process_is_read_back_at_once(jobs):
    result = manage("reschedule", JOB, "--interval", "5m", "--if-version", "1")

    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == f"{JOB}: Job rescheduled. Version 2."
    assert result.stderr == ""
    job = selectors.get_job(job_id=JOB)
    assert (job.trigger, job.trigger_args["minutes"], job.version) == ("interval", 5, 2)
    change = JobChange.objects.filter(job_id=JOB).first()
    assert (change.actor, change.source) == (getpass.getuser(), "cli")

    listed = manage("list", "--json")
    assert listed.returncode == 0, listed.stderr
    [job_json] = [job for job in json.loads(listed.stdout) if job["id"] == JOB]
    assert (job_json["trigger"], job_json["version"]) == ("interval", 2)


@pytest.mark.parametrize(
    ("args", "returncode", "message"),
    [
        (["show", "no.such.job"], 1, "CommandError: No job with id 'no.such.job'."),
        (["reschedule", JOB, "--trigger", "interval", "--arg", "minutes=-5"], 1,
         "CommandError: trigger_args.minutes: must be a finite number, 0 or more, not -5."),
        (["pause", JOB, "--if-version", "7"], 1,
         f"CommandError: Job '{JOB}' is at version 1, not 7: someone else changed it; "
         "reload and try again."),
        (["frobnicate"], 2, "manage.py scheduler: error: argument SUBCOMMAND: invalid choice: "
         "'frobnicate'"),
        (["list", "--bogus"], 2,
         "manage.py scheduler: error: unrecognized arguments: --bogus (see --help)"),
        (["reschedule", JOB], 2, "manage.py scheduler reschedule: error: one of the arguments "
         "--cron --interval --at --trigger is required (see --help)"),
    ],
)
def test_mistakes_are_one_line_on_stderr_with_a_non_zero_status(jobs, args, returncode, message):
    result = manage(*args)

    assert assert_one_line_error(result, returncode).startswith(message)
    assert selectors.get_job(job_id=JOB).version == 1


@pytest.mark.parametrize(
    "database",
    ["postgres://postgres@127.0.0.1:1/nowhere", "sqlite:////nonexistent/directory/db.sqlite3"],
)
def test_an_unreachable_database_is_one_line_on_stderr(database):
    result = manage("status", database=database)

    assert assert_one_line_error(result, 1).startswith("CommandError: database unreachable: ")


def test_trigger_wait_without_a_scheduler_times_out_with_its_own_status(jobs):
    result = manage("trigger", JOB, "--wait", "--timeout", "0.5")

    assert result.returncode == 3
    warning, error = result.stderr.splitlines()
    assert warning.startswith("warning: no scheduler process is running")
    assert error.startswith(f"CommandError: timed out after 0.5s waiting for {JOB}: no scheduler")
    assert RunRequest.objects.get().status == RunRequest.Status.PENDING


@pytest.mark.slow
def test_trigger_wait_runs_through_the_real_scheduler_within_a_second(start_scheduler):
    start_scheduler()

    result = manage("trigger", JOB, "--wait", "--timeout", "20")

    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    execution = DjangoJobExecution.objects.get(job_id=JOB)
    assert result.stdout.splitlines()[-1] == (
        f"{JOB}: run succeeded in {execution.duration:.2f}s (execution #{execution.id})."
    )
    request = RunRequest.objects.get()
    started = ProbeRun.objects.get(job_id=JOB).started_at
    assert (started - request.requested_at).total_seconds() < 1.0
    assert selectors.get_job(job_id=JOB).next_run_time.year == 2099


@pytest.mark.slow
def test_the_real_scheduler_follows_a_cli_reschedule_at_once(start_scheduler):
    start_scheduler()

    result = manage("reschedule", JOB, "--trigger", "cron", "--arg", "second=*")
    committed = time.monotonic()

    assert result.returncode == 0, result.stderr
    wait_for(lambda: ProbeRun.objects.filter(job_id=JOB).exists(), timeout=2.0)
    assert time.monotonic() - committed < 2.0
    wait_for(lambda: ProbeRun.objects.filter(job_id=JOB).count() >= 2, timeout=3.0)
