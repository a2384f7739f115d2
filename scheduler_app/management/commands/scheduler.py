"""
`manage.py scheduler <subcommand>`: the whole scheduler from the terminal.

Each subcommand is a thin caller of the services and selectors that the API and the
admin use, so the three front doors never disagree, and `--json` prints what the API's
serializers produce. Changes are recorded in the audit trail with the operating-system
user as actor and "cli" as the source. Errors are one line on stderr and a non-zero
exit status (`scheduler_app.cli.errors`); `trigger --wait` exits with the run's outcome.
"""

from __future__ import annotations

import getpass
import json
import os
import sys
from collections.abc import Iterable
from datetime import datetime
from typing import Any, TextIO

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.core.management.color import no_style
from django.utils import timezone

from scheduler_app import selectors, services, triggers
from scheduler_app.api.serializers import (
    AlertSerializer,
    ExecutionSerializer,
    JobChangeSerializer,
    JobSerializer,
    SchedulerStatusSerializer,
)
from scheduler_app.cli import arguments, imports, output, parsing, presenters, runs
from scheduler_app.cli.errors import EXIT_FAILED, EXIT_TIMED_OUT, EXIT_USAGE, command_errors
from scheduler_app.exceptions import JobNotFound
from scheduler_app.models import Alert, RunRequest, Source
from scheduler_app.policy import POLICY_FIELDS
from scheduler_app.selectors import ExecutionView

SHOWN_EXECUTIONS = 5
PREVIEW_COUNT = 5


class Command(BaseCommand):
    help = (
        "List, inspect, create, delete and change scheduled jobs: pause, resume, run now, "
        "reschedule, change the run policy, revert to a version, backfill, reset, import and "
        "export, execution history, audit trail, alert log, scheduler status and pruning of "
        "old executions."
    )

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any) -> CommandParser:
        parser = super().create_parser(prog_name, subcommand, **kwargs)
        return arguments.one_line_usage_errors(parser)

    def add_arguments(self, parser: CommandParser) -> None:
        arguments.add_subcommands(parser)

    def handle(self, *args: Any, subcommand: str, **options: Any) -> None:
        # Django decides colour by sys.stdout; the stream we print to is what matters.
        if not (options["force_color"] or self.stdout.isatty()):
            self.style = no_style()
        with command_errors():
            getattr(self, f"handle_{subcommand}")(**options)

    # Reading

    def handle_list(self, *, enabled: bool | None, broken: bool, as_json: bool, **_: Any) -> None:
        views = selectors.job_views(selectors.job_queryset(enabled=enabled))
        if broken:
            views = [view for view in views if view.broken]
        if as_json:
            self._write_json(JobSerializer(views, many=True).data)
        elif views:
            self._print(presenters.jobs_table(views, now=timezone.now(), style=self.style))
        else:
            self.stdout.write("No jobs match.")

    def handle_show(self, *, job_id: str, as_json: bool, **_: Any) -> None:
        view = selectors.get_job(job_id=job_id)
        if as_json:
            self._write_json(JobSerializer(view).data)
            return
        now = timezone.now()
        self._print(presenters.job_details(view, now=now, style=self.style))
        rows = selectors.execution_queryset(job_id=job_id)[:SHOWN_EXECUTIONS]
        executions = [ExecutionView.from_row(row) for row in rows]
        self.stdout.write("")
        self.stdout.write(self.style.MIGRATE_HEADING("Last executions"))
        if executions:
            self._print(
                presenters.executions_table(executions, job_id=job_id, now=now, style=self.style)
            )
        else:
            self.stdout.write("None recorded.")

    def handle_history(
        self, *, job_id: str | None, status: str | None, limit: int, as_json: bool, **_: Any
    ) -> None:
        if job_id is not None and not selectors.job_exists(job_id=job_id):
            raise JobNotFound(job_id)
        rows = selectors.execution_queryset(job_id=job_id, status=status)[:limit]
        executions = [ExecutionView.from_row(row) for row in rows]
        if as_json:
            self._write_json(ExecutionSerializer(executions, many=True).data)
        elif executions:
            self._print(
                presenters.executions_table(
                    executions, job_id=job_id, now=timezone.now(), style=self.style
                )
            )
        else:
            self.stdout.write("No executions recorded.")

    def handle_changes(self, *, job_id: str | None, limit: int, as_json: bool, **_: Any) -> None:
        changes = list(selectors.change_queryset(job_id=job_id)[:limit])
        # The trail outlives its job, so only an id with neither is a mistake.
        if job_id is not None and not changes and not selectors.job_exists(job_id=job_id):
            raise JobNotFound(job_id)
        if as_json:
            self._write_json(JobChangeSerializer(changes, many=True).data)
        elif changes:
            self._print(presenters.changes_table(changes, job_id=job_id, style=self.style))
        else:
            self.stdout.write("No changes recorded.")

    def handle_alerts(
        self, *, job_id: str | None, event: str | None, failed: bool, limit: int, as_json: bool,
        **_: Any,
    ) -> None:
        alerts = list(
            selectors.alert_queryset(
                job_id=job_id, event=event, delivery=Alert.Delivery.FAILED if failed else None
            )[:limit]
        )
        # The log outlives its job, so only an id with neither is a mistake.
        if job_id is not None and not alerts and not selectors.job_exists(job_id=job_id):
            raise JobNotFound(job_id)
        if as_json:
            self._write_json(AlertSerializer(alerts, many=True).data)
        elif alerts:
            self._print(presenters.alerts_table(alerts, job_id=job_id, style=self.style))
        else:
            self.stdout.write("No alerts recorded.")

    def handle_status(self, *, as_json: bool, check: bool, **_: Any) -> None:
        if check:
            if not selectors.scheduler_is_running():
                raise CommandError("no active scheduler with a fresh heartbeat",
                                   returncode=EXIT_FAILED)
            return
        status = selectors.scheduler_status()
        if as_json:
            self._write_json(SchedulerStatusSerializer(status).data)
        else:
            self._print(presenters.status_details(
                status, now=status.checked_at or timezone.now(), style=self.style
            ))

    # Changing

    def handle_create(
        self,
        *,
        job_id: str,
        function: str,
        name: str | None,
        keyword_arguments: list[tuple[str, Any]] | None,
        max_instances: int | None,
        misfire_grace: int | None,
        **options: Any,
    ) -> None:
        definition: dict[str, Any] = {
            "id": job_id,
            "function": function,
            **_schedule_spec(options),
            "kwargs": parsing.run_kwargs(keyword_arguments or ()),
        }
        for key, value in (("name", name), ("max_instances", max_instances),
                           ("misfire_grace_time", misfire_grace)):
            if value is not None:
                definition[key] = value
        outcome = services.create_job(
            definition=definition, actor=_operating_system_user(), source=Source.CLI
        )
        self._report_change(outcome)

    def handle_delete(self, *, job_id: str, if_version: int | None, **_: Any) -> None:
        services.delete_job(**_change_request(job_id, if_version))
        self.stdout.write(self.style.SUCCESS(
            f"{job_id}: Job deleted. Its history stays readable (scheduler history {job_id})."
        ))

    def handle_import(self, *, path: str, batch_size: int, **_: Any) -> None:
        lines = sys.stdin if path == "-" else _open_for_reading(path)
        report = imports.import_lines(
            lines, batch_size=batch_size, actor=_operating_system_user(), source=Source.CLI
        )
        for refusal in report.refused:
            self.stderr.write(refusal, style_func=self.style.ERROR)
        self.stdout.write(report.summary())
        if report.refused:
            raise CommandError(
                f"{len(report.refused)} bad line(s): their batches were not written.",
                returncode=EXIT_FAILED,
            )

    def handle_export(self, **_: Any) -> None:
        for line in imports.export_lines():
            self.stdout.write(line)

    def handle_pause(
        self,
        *,
        job_id: str,
        reason: str | None,
        until: datetime | None,
        if_version: int | None,
        **_: Any,
    ) -> None:
        outcome = services.pause_job(
            reason=reason, until=until, **_change_request(job_id, if_version)
        )
        self._report_change(outcome)

    def handle_policy(
        self, *, job_id: str, coalesce: bool | None, if_version: int | None, **options: Any
    ) -> None:
        # Options left out are absent (argparse.SUPPRESS), so "none" can mean null.
        policy = {name: options[name] for name in POLICY_FIELDS if name in options}
        if coalesce is not None:
            policy["coalesce"] = coalesce
        if not policy:
            raise CommandError(
                "give at least one of --max-instances, --coalesce/--no-coalesce, "
                "--misfire-grace, --pause-after-failures",
                returncode=EXIT_USAGE,
            )
        outcome = services.set_job_policy(policy=policy, **_change_request(job_id, if_version))
        self._report_change(outcome)
        self._print(presenters.policy_details(outcome.job))

    def handle_resume(self, *, job_id: str, if_version: int | None, **_: Any) -> None:
        self._report_change(services.resume_job(**_change_request(job_id, if_version)))

    def handle_revert(
        self, *, job_id: str, version: int, if_version: int | None, **_: Any
    ) -> None:
        outcome = services.revert_job(version=version, **_change_request(job_id, if_version))
        self._report_change(outcome)

    def handle_backfill(
        self,
        *,
        job_id: str,
        start: datetime,
        end: datetime,
        dry_run: bool,
        if_version: int | None,
        **_: Any,
    ) -> None:
        outcome = services.backfill_job(
            start=start, end=end, dry_run=dry_run, **_change_request(job_id, if_version)
        )
        queued, there = len(outcome.queued), len(outcome.already_there)
        counts = f"{there} already ran or queued"
        if dry_run:
            self.stdout.write(self.style.WARNING("Dry run: nothing was queued."))
            self.stdout.write(f"{job_id}: {queued} run(s) would be queued, {counts}.")
            self._print(output.local_time(moment) for moment in outcome.queued)
        else:
            self.stdout.write(
                self.style.SUCCESS(f"{job_id}: {queued} run(s) queued for the scheduler")
                + f", {counts}."
            )

    def handle_reset(self, *, job_id: str, if_version: int | None, **_: Any) -> None:
        self._report_change(services.reset_job(**_change_request(job_id, if_version)))

    def handle_reschedule(
        self,
        *,
        job_id: str,
        cron: str | None,
        interval: parsing.Duration | None,
        at: str | None,
        trigger: str | None,
        trigger_arguments: list[tuple[str, Any]] | None,
        zone: str | None,
        if_version: int | None,
        dry_run: bool,
        **_: Any,
    ) -> None:
        spec = _schedule_spec({
            "cron": cron, "interval": interval, "at": at, "trigger": trigger,
            "trigger_arguments": trigger_arguments, "zone": zone,
        })
        if dry_run:
            self._preview_schedule(job_id=job_id, spec=spec, if_version=if_version)
            return
        outcome = services.reschedule_job(trigger_spec=spec, **_change_request(job_id, if_version))
        self._report_change(outcome)

    def handle_trigger(
        self,
        *,
        job_id: str,
        run_kwargs: list[tuple[str, Any]] | None,
        wait: bool,
        timeout: float,
        if_version: int | None,
        **_: Any,
    ) -> None:
        if not selectors.scheduler_status().running:
            self.stderr.write(
                "warning: no scheduler process is running; the job runs when one starts "
                "(manage.py runscheduler).",
                style_func=self.style.WARNING,
            )
        kwargs = parsing.run_kwargs(run_kwargs) if run_kwargs else None
        run_request = services.request_job_run(
            kwargs=kwargs, **_change_request(job_id, if_version)
        )
        with_kwargs = f" with {json.dumps(kwargs)}" if kwargs else ""
        self.stdout.write(f"{job_id}: run requested (request #{run_request.id}){with_kwargs}.")
        if wait:
            self._report_run(runs.wait_for_run(run_request, timeout=timeout), timeout=timeout)

    def handle_prune(self, *, older_than: parsing.Duration, dry_run: bool, **_: Any) -> None:
        count = services.prune_executions(older_than=older_than.as_timedelta(), dry_run=dry_run)
        records = "execution record" if count == 1 else "execution records"
        if dry_run:
            self.stdout.write(
                f"Dry run: {count} {records} older than {older_than} would be deleted."
            )
        else:
            self.stdout.write(f"Deleted {count} {records} older than {older_than}.")

    # Helpers

    def _preview_schedule(
        self, *, job_id: str, spec: dict[str, Any], if_version: int | None
    ) -> None:
        """Check what `reschedule` would check and show the new fire times; change nothing."""
        preview = services.preview_reschedule(
            job_id=job_id, trigger_spec=spec, expected_version=if_version
        )
        now = timezone.now()
        fire_times = triggers.preview_fire_times(preview.trigger, count=PREVIEW_COUNT, now=now)
        self.stdout.write(self.style.WARNING("Dry run: nothing was changed."))
        self._print(
            presenters.schedule_preview(
                preview.job, preview.trigger, fire_times, now=now, style=self.style
            )
        )

    def _report_change(self, outcome: services.ChangeOutcome) -> None:
        job = outcome.job
        if outcome.changed:
            self.stdout.write(
                self.style.SUCCESS(f"{job.id}: {outcome.message}") + f" Version {job.version}."
            )
        else:
            self.stdout.write(
                f"{job.id}: {outcome.message} Nothing changed (version {job.version})."
            )
        self._print(presenters.change_outcome(job, now=timezone.now(), style=self.style))

    def _report_run(self, outcome: runs.RunOutcome, *, timeout: float) -> None:
        job_id = outcome.run_request.job_id
        execution = outcome.execution
        if outcome.skipped:
            expired = outcome.run_request.status == RunRequest.Status.EXPIRED
            what = "the run request expired" if expired else "the scheduler skipped the run"
            raise CommandError(
                f"{job_id}: {what}: {outcome.run_request.detail}", returncode=EXIT_FAILED
            )
        if execution is None or not outcome.finished:
            message = presenters.timeout_message(outcome, timeout=timeout)
            raise CommandError(message, returncode=EXIT_TIMED_OUT)
        if execution.status != "success":
            message = f"{job_id}: {presenters.run_failure(execution)}"
            raise CommandError(message, returncode=EXIT_FAILED)
        self.stdout.write(
            self.style.SUCCESS(
                f"{job_id}: run succeeded in {output.seconds(execution.duration)} "
                f"(execution #{execution.id})."
            )
        )

    def _write_json(self, data: Any) -> None:
        self.stdout.write(output.to_json(data))

    def _print(self, lines: Iterable[str]) -> None:
        for line in lines:
            self.stdout.write(line)


def _schedule_spec(options: dict[str, Any]) -> dict[str, Any]:
    """The trigger spec of the schedule options `reschedule` and `create` share."""
    return parsing.trigger_spec(
        cron=options["cron"],
        interval=options["interval"],
        at=options["at"],
        trigger=options["trigger"],
        arguments=options["trigger_arguments"] or (),
        timezone=options["zone"],
    )


def _open_for_reading(path: str) -> TextIO:
    try:
        return open(path, encoding="utf-8")  # noqa: SIM115 - read to the end by the import
    except OSError as error:
        message = f"cannot read {path}: {error.strerror}"
        raise CommandError(message, returncode=EXIT_FAILED) from None


def _change_request(job_id: str, if_version: int | None) -> dict[str, Any]:
    return {
        "job_id": job_id,
        "actor": _operating_system_user(),
        "source": Source.CLI,
        "expected_version": if_version,
    }


def _operating_system_user() -> str:
    """Who ran the command, for the audit trail."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        # A container user with no name: the uid still tells who it was.
        return f"uid {os.getuid()}"
