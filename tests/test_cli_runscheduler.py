"""`manage.py runscheduler`'s command line: its log level option and start-up summary."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django_apscheduler.models import DjangoJob

from scheduler_app import services
from scheduler_app.management.commands.runscheduler import Command
from scheduler_app.registry import registry
from scheduler_app.state import dump_state, load_state
from tests.conftest import wait_for


@pytest.mark.parametrize("typed", ["debug", "Warning", "ERROR"])
def test_log_level_is_accepted_in_any_case(typed):
    options = Command().create_parser("manage.py", "runscheduler").parse_args(
        ["--log-level", typed]
    )

    assert options.log_level == typed.upper()


def test_unknown_log_level_is_refused():
    with pytest.raises(CommandError, match="invalid choice: 'CHATTY'"):
        call_command("runscheduler", "--log-level", "chatty")


@pytest.mark.slow
def test_start_up_summary_counts_jobs_and_names_database_and_notifications(start_scheduler):
    services.sync_jobs_from_code()
    services.pause_job(job_id="probe.record", actor="someone", source="cli")
    state = load_state(DjangoJob.objects.get(id="probe.slow").job_state)
    state["id"] = "retired.job"
    DjangoJob.objects.create(
        id="retired.job", job_state=dump_state(state), next_run_time=state["next_run_time"]
    )

    scheduler = start_scheduler()

    wait_for(lambda: "Log level:" in scheduler.output, timeout=5)
    lines = scheduler.output.splitlines()
    database = connection.settings_dict
    expected_database = (
        f"Database: sqlite {database['NAME']}"
        if connection.vendor == "sqlite"
        else f"Database: postgresql {database['NAME']} on {database['HOST']}:{database['PORT']}"
    )
    for expected in [
        f"Jobs declared in code: {len(registry)} (0 new, 0 updated from code)",
        f"Jobs in the store: {len(registry) + 1} (1 paused)",
        "Orphaned (in the store, no longer in code): 1 (retired.job)",
        "Broken (function cannot be imported): 0",
        expected_database,
        "Log level: DEBUG",
    ]:
        assert expected in lines
    notifications = next(line for line in lines if line.startswith("Change notifications: "))
    assert notifications.endswith(
        "PostgreSQL LISTEN/NOTIFY" if connection.vendor == "postgresql" else "polling every 0.1s"
    )


@pytest.mark.django_db
def test_start_up_summary_names_twenty_orphaned_jobs_and_counts_the_rest():
    report = services.SyncReport(orphaned=[f"old.{index:02d}" for index in range(25)])
    output = StringIO()

    Command(stdout=output)._print_summary(report, log_level="INFO")

    named = ", ".join(f"old.{index:02d}" for index in range(20))
    assert f"Orphaned (in the store, no longer in code): 25 ({named}, and 5 more)\n" in (
        output.getvalue()
    )
