"""
The `scheduler` command's command line: its subcommands, their options, and usage
mistakes reported in one line.

Option names are what operators type and script; keep them.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any, NoReturn

from django.core.management.base import CommandError, CommandParser

from scheduler_app import selectors, triggers
from scheduler_app.cli import parsing
from scheduler_app.cli.errors import EXIT_FAILED, EXIT_TIMED_OUT, EXIT_USAGE
from scheduler_app.conf import app_settings
from scheduler_app.models import Alert

DEFAULT_LIMIT = 20
DEFAULT_WAIT_SECONDS = 60.0
EXECUTION_STATUSES = sorted(set(selectors.EXECUTION_STATUS_SLUGS.values()))

AddParser = Callable[..., CommandParser]


def add_subcommands(parser: CommandParser) -> None:
    """Add every subcommand to the command's parser, in the order `--help` lists them."""
    subcommands = parser.add_subparsers(
        dest="subcommand", required=True, metavar="SUBCOMMAND", title="subcommands"
    )
    common_options = _django_output_options()

    def add_parser(name: str, **kwargs: Any) -> CommandParser:
        subparser = subcommands.add_parser(name, parents=[common_options], **kwargs)
        return one_line_usage_errors(subparser)

    for add_subcommand in (
        _add_list, _add_show, _add_create, _add_delete, _add_pause_and_resume, _add_trigger,
        _add_reschedule, _add_policy, _add_revert, _add_backfill, _add_reset, _add_history,
        _add_changes, _add_alerts, _add_status, _add_prune, _add_import, _add_export,
    ):
        add_subcommand(add_parser)


def one_line_usage_errors(parser: CommandParser) -> CommandParser:
    """Make a parser report a mistake in one line, instead of printing the usage first."""

    def error(message: str) -> NoReturn:
        if parser.called_from_command_line:
            parser.exit(EXIT_USAGE, f"{parser.prog}: error: {message} (see --help)\n")
        # Called through call_command(): Django's way, with the usage exit status.
        raise CommandError(f"Error: {message}", returncode=EXIT_USAGE)

    parser.error = error  # type: ignore[method-assign]
    return parser


def _django_output_options() -> argparse.ArgumentParser:
    """Django's output options, accepted after the subcommand too (`list --no-color`).

    Without a default, a subcommand leaves the value the main parser set alone.
    """
    options = argparse.ArgumentParser(add_help=False)
    for flag in ("--no-color", "--force-color", "--traceback"):
        options.add_argument(flag, action="store_true", default=argparse.SUPPRESS,
                             help=argparse.SUPPRESS)
    return options


def _add_list(add_parser: AddParser) -> None:
    listing = add_parser("list", help="Jobs: schedule in words, next run, enabled, last status.")
    state = listing.add_mutually_exclusive_group()
    state.add_argument(
        "--enabled", dest="enabled", action="store_const", const=True, default=None,
        help="Only jobs that run on their schedule.",
    )
    state.add_argument(
        "--paused", dest="enabled", action="store_const", const=False, help="Only paused jobs."
    )
    listing.add_argument(
        "--broken", action="store_true", help="Only jobs whose function cannot be imported."
    )
    _add_json_option(listing)


def _add_show(add_parser: AddParser) -> None:
    show = add_parser("show", help="Everything about one job.")
    show.add_argument("job_id", metavar="JOB_ID")
    _add_json_option(show)


def _add_pause_and_resume(add_parser: AddParser) -> None:
    pause = add_parser("pause", help="Stop a job from running until it is resumed.")
    pause.add_argument("job_id", metavar="JOB_ID")
    pause.add_argument("--reason", metavar="TEXT", help="Why, for the other operators.")
    pause.add_argument(
        "--until", type=parsing.pause_end, metavar="DURATION|ISO8601",
        help="Resume by itself then: in 2h, 1d... or at 2027-01-31T06:00 "
        f"(default zone {app_settings.timezone}).",
    )
    _add_if_version_option(pause)
    resume = add_parser("resume", help="Let a paused job run on its schedule again.")
    resume.add_argument("job_id", metavar="JOB_ID")
    _add_if_version_option(resume)


def _add_policy(add_parser: AddParser) -> None:
    policy = add_parser(
        "policy", help="Change a job's run policy; the options left out keep their value."
    )
    policy.add_argument("job_id", metavar="JOB_ID")
    policy.add_argument(
        "--max-instances", type=parsing.count_or_none, default=argparse.SUPPRESS, metavar="N",
        help="Runs of the job that may overlap (at least 1).",
    )
    coalesce = policy.add_mutually_exclusive_group()
    coalesce.add_argument(
        "--coalesce", dest="coalesce", action="store_const", const=True, default=None,
        help="Several missed runs run once.",
    )
    coalesce.add_argument(
        "--no-coalesce", dest="coalesce", action="store_const", const=False,
        help="Each missed run runs.",
    )
    policy.add_argument(
        "--misfire-grace", dest="misfire_grace_time", type=parsing.count_or_none,
        default=argparse.SUPPRESS, metavar="SECONDS|none",
        help="How late a run may start; none: late runs always run.",
    )
    policy.add_argument(
        "--pause-after-failures", type=parsing.count_or_none, default=argparse.SUPPRESS,
        metavar="N|none", help="Pause the job when N runs in a row fail; none: never.",
    )
    policy.add_argument(
        "--alert-after", type=parsing.count_or_none, default=argparse.SUPPRESS,
        metavar="SECONDS|none",
        help="Raise job_overdue when no run succeeds this long after one was due; "
        "none: SCHEDULER_APP['ALERT_AFTER'].",
    )
    _add_if_version_option(policy)


def _add_trigger(add_parser: AddParser) -> None:
    trigger = add_parser("trigger", help="Run a job once, now, through the scheduler process.")
    trigger.add_argument("job_id", metavar="JOB_ID")
    trigger.add_argument(
        "--kwarg", dest="run_kwargs", action="append", type=parsing.run_kwarg,
        metavar="NAME=VALUE",
        help="A keyword argument for this run only (VALUE is JSON, or else text); repeatable.",
    )
    trigger.add_argument(
        "--wait", action="store_true",
        help=f"Wait for the run and exit with its outcome: 0 success, {EXIT_FAILED} failure, "
        f"{EXIT_TIMED_OUT} timeout.",
    )
    trigger.add_argument(
        "--timeout", type=parsing.positive_seconds, default=DEFAULT_WAIT_SECONDS,
        metavar="SECONDS", help=f"How long --wait waits (default {DEFAULT_WAIT_SECONDS:g}).",
    )
    _add_if_version_option(trigger)


def _add_create(add_parser: AddParser) -> None:
    create = add_parser(
        "create", help="Create a job that calls a registered job function (@job_function)."
    )
    create.add_argument("job_id", metavar="JOB_ID")
    create.add_argument(
        "--function", required=True, metavar="NAME",
        help="The registered name of the function, e.g. reports.customer_report.",
    )
    create.add_argument("--name", metavar="TEXT", help="The job's name (default: its id).")
    create.add_argument(
        "--kwarg", dest="keyword_arguments", action="append", type=parsing.run_kwarg,
        metavar="NAME=VALUE",
        help='A keyword argument of every run; VALUE is JSON (42, true, "text") or text. '
        "Repeatable.",
    )
    for option, metavar, help_text in (
        ("--max-instances", "N", "Runs of this job at once (default 1)."),
        ("--misfire-grace", "SECONDS", "How late a run may still start (default "
         f"{app_settings.MISFIRE_GRACE_TIME})."),
    ):
        create.add_argument(option, type=parsing.positive_int, metavar=metavar, help=help_text)
    _add_schedule_options(create)


def _add_delete(add_parser: AddParser) -> None:
    delete = add_parser(
        "delete",
        help="Delete a job created at runtime; its history and audit trail stay readable.",
    )
    delete.add_argument("job_id", metavar="JOB_ID")
    _add_if_version_option(delete)


def _add_import(add_parser: AddParser) -> None:
    load = add_parser(
        "import",
        help="Create or update runtime jobs from JSON lines (one POST jobs/ body a line).",
    )
    load.add_argument("path", metavar="FILE", help="A JSON lines file, or - for stdin.")
    load.add_argument(
        "--batch-size", type=parsing.positive_int, default=1000, metavar="N",
        help="Lines written per transaction (default 1000); a bad line refuses its batch.",
    )


def _add_export(add_parser: AddParser) -> None:
    add_parser("export", help="Print every runtime job as JSON lines, as `import` reads them.")


def _add_reschedule(add_parser: AddParser) -> None:
    reschedule = add_parser(
        "reschedule", help="Give a job a new schedule; a paused job stays paused."
    )
    reschedule.add_argument("job_id", metavar="JOB_ID")
    _add_schedule_options(reschedule)
    _add_if_version_option(reschedule)
    reschedule.add_argument(
        "--dry-run", action="store_true",
        help="Validate and print the next fire times; change nothing.",
    )


def _add_schedule_options(parser: Any) -> None:
    """--cron, --interval, --at or --trigger with --arg, and --timezone."""
    schedule = parser.add_mutually_exclusive_group(required=True)
    schedule.add_argument(
        "--cron", metavar="EXPR",
        help='A standard crontab, e.g. "*/5 * * * *" (0 = Sunday), or @daily and friends.',
    )
    schedule.add_argument(
        "--interval", type=parsing.duration, metavar="DURATION", help="Every 90s, 5m, 2h, 1d..."
    )
    schedule.add_argument(
        "--at", metavar="ISO8601", help="Once, at this time, e.g. 2027-01-31T09:00:00."
    )
    schedule.add_argument(
        "--trigger", choices=sorted(triggers.ALLOWED_ARGS),
        help="Any trigger, with its fields as --arg KEY=VALUE.",
    )
    parser.add_argument(
        "--arg", dest="trigger_arguments", action="append", type=parsing.trigger_argument,
        metavar="KEY=VALUE", help="A field of the --trigger, e.g. minutes=5; repeatable.",
    )
    parser.add_argument(
        "--timezone", dest="zone", metavar="TZ",
        help=f"Time zone of the schedule (default {app_settings.timezone}, the scheduler's).",
    )


def _add_revert(add_parser: AddParser) -> None:
    revert = add_parser(
        "revert", help="Give a job back the schedule, run policy and paused state of a version."
    )
    revert.add_argument("job_id", metavar="JOB_ID")
    revert.add_argument(
        "--to", dest="version", type=parsing.positive_int, required=True, metavar="N",
        help="The version, as `changes JOB_ID` lists it.",
    )
    _add_if_version_option(revert)


def _add_backfill(add_parser: AddParser) -> None:
    backfill = add_parser(
        "backfill", help="Run, through the scheduler, the runs a job's schedule would have "
        "made in a time range.",
    )
    backfill.add_argument("job_id", metavar="JOB_ID")
    backfill.add_argument(
        "--from", dest="start", type=parsing.moment, required=True, metavar="ISO8601",
        help=f"The first run time to consider (default zone {app_settings.timezone}).",
    )
    backfill.add_argument(
        "--to", dest="end", type=parsing.moment, required=True, metavar="ISO8601",
        help="The last run time to consider, inclusive; not in the future.",
    )
    backfill.add_argument(
        "--dry-run", action="store_true", help="Say which runs would be queued; queue nothing."
    )
    _add_if_version_option(backfill)


def _add_reset(add_parser: AddParser) -> None:
    reset = add_parser("reset", help="Put a job's schedule and arguments back to the code default.")
    reset.add_argument("job_id", metavar="JOB_ID")
    _add_if_version_option(reset)


def _add_history(add_parser: AddParser) -> None:
    history = add_parser("history", help="Executions, newest first.")
    history.add_argument("job_id", metavar="JOB_ID", nargs="?")
    history.add_argument("--status", choices=EXECUTION_STATUSES, help="Only this outcome.")
    _add_limit_option(history)
    _add_json_option(history)


def _add_alerts(add_parser: AddParser) -> None:
    alerts = add_parser("alerts", help="The alert log, newest first, with each delivery's outcome.")
    alerts.add_argument("job_id", metavar="JOB_ID", nargs="?")
    alerts.add_argument("--event", choices=Alert.Event.values, help="Only this event.")
    alerts.add_argument("--failed", action="store_true", help="Only alerts whose delivery failed.")
    _add_limit_option(alerts)
    _add_json_option(alerts)


def _add_changes(add_parser: AddParser) -> None:
    changes = add_parser("changes", help="The audit trail, newest first.")
    changes.add_argument("job_id", metavar="JOB_ID", nargs="?")
    _add_limit_option(changes)
    _add_json_option(changes)


def _add_status(add_parser: AddParser) -> None:
    status = add_parser("status", help="Scheduler process health, as the API shows it.")
    _add_json_option(status)
    status.add_argument(
        "--check", action="store_true",
        help="Print nothing; exit 0 while an active scheduler's heartbeat is fresh, else 1 "
        "(a liveness probe, as GET /healthz/scheduler).",
    )


def _add_prune(add_parser: AddParser) -> None:
    prune = add_parser("prune", help="Delete old execution records.")
    prune.add_argument(
        "--older-than", type=parsing.duration, required=True, metavar="DURATION",
        help="Age of the records to delete, e.g. 30d, 12h, 2w.",
    )
    prune.add_argument(
        "--dry-run", action="store_true", help="Only say how many would be deleted."
    )


def _add_json_option(parser: Any) -> None:
    parser.add_argument(
        "--json", dest="as_json", action="store_true",
        help="Print JSON with the API's field names.",
    )


def _add_limit_option(parser: Any) -> None:
    parser.add_argument(
        "--limit", type=parsing.positive_int, default=DEFAULT_LIMIT, metavar="N",
        help=f"At most N entries (default {DEFAULT_LIMIT}).",
    )


def _add_if_version_option(parser: Any) -> None:
    parser.add_argument(
        "--if-version", type=int, metavar="N",
        help="Refuse the change unless the job is still at version N (as `show` printed it).",
    )
