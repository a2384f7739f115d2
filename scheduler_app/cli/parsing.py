"""
What operators type, turned into what the services take.

Durations ("90s", "5m", "2h", "1d", "30d"), `KEY=VALUE` trigger arguments and the
`reschedule` (or `create`) options become a trigger spec, `--kwarg NAME=VALUE` a job's
keyword arguments; the trigger module validates its content,
so an invalid schedule is reported there, naming the bad field. The argparse types
here raise `ArgumentTypeError`, which argparse reports as a usage error: one line on
stderr and exit status 2 (`arguments.one_line_usage_errors`).
"""

from __future__ import annotations

import argparse
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.core.management.base import CommandError
from django.utils import timezone as django_timezone

from scheduler_app.cli.errors import EXIT_USAGE
from scheduler_app.conf import app_settings

DURATION_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
UNIT_SECONDS = {"seconds": 1, "minutes": 60, "hours": 3600, "days": 86400, "weeks": 604800}
# The trigger module refuses longer intervals too; prune cut-offs stay inside the calendar.
MAX_DURATION_SECONDS = 36525 * 86400
_DURATION = re.compile(r"(?P<amount>[0-9]+)\s*(?P<unit>[smhdw])")
_INTEGER = re.compile(r"-?[0-9]+")
_DECIMAL = re.compile(r"-?[0-9]+\.[0-9]+")


@dataclass(frozen=True)
class Duration:
    """A whole number of one unit, as typed: `5m` is 5 minutes."""

    amount: int
    unit: str

    def as_timedelta(self) -> timedelta:
        return timedelta(**{self.unit: self.amount})

    def __str__(self) -> str:
        unit = self.unit[:-1] if self.amount == 1 else self.unit
        return f"{self.amount} {unit}"


def duration(text: str) -> Duration:
    """Parse `90s`, `5m`, `2h`, `1d` or `2w` (an argparse type)."""
    match = _DURATION.fullmatch(text.strip())
    if match is None:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a duration like 90s, 5m, 2h, 1d or 30d"
        )
    parsed = Duration(int(match["amount"]), DURATION_UNITS[match["unit"]])
    seconds = parsed.amount * UNIT_SECONDS[parsed.unit]
    if seconds == 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not longer than 0")
    if seconds > MAX_DURATION_SECONDS:
        raise argparse.ArgumentTypeError(f"{text!r} is longer than 100 years")
    return parsed


def trigger_argument(text: str) -> tuple[str, int | float | str]:
    """Parse `KEY=VALUE`; numbers become numbers, anything else stays text (an argparse type)."""
    key, separator, value = text.partition("=")
    if not separator or not key.strip():
        raise argparse.ArgumentTypeError(f"{text!r} is not KEY=VALUE, e.g. minutes=5")
    if _INTEGER.fullmatch(value):
        return key.strip(), int(value)
    if _DECIMAL.fullmatch(value):
        return key.strip(), float(value)
    return key.strip(), value


def positive_int(text: str) -> int:
    """An argparse type for counts such as `--limit`."""
    if not text.isdigit() or int(text) == 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number above 0")
    return int(text)


def run_kwarg(text: str) -> tuple[str, Any]:
    """Parse `NAME=VALUE` for `trigger --kwarg` and `create --kwarg`: the value as JSON
    when it is JSON (5, true, null, "5", [1, 2], {...}), else as text (an argparse type)."""
    name, separator, value = text.partition("=")
    if not separator or not name.strip():
        raise argparse.ArgumentTypeError(f"{text!r} is not NAME=VALUE, e.g. limit=100")
    try:
        return name.strip(), json.loads(value)
    except ValueError:
        return name.strip(), value


def run_kwargs(pairs: Sequence[tuple[str, Any]]) -> dict[str, Any]:
    """`--kwarg` pairs as a dict; a name given twice is refused, not guessed."""
    kwargs: dict[str, Any] = {}
    for name, value in pairs:
        if name in kwargs:
            raise CommandError(f"--kwarg {name} is given twice", returncode=EXIT_USAGE)
        kwargs[name] = value
    return kwargs


def count_or_none(text: str) -> int | None:
    """An argparse type for policy counts: a whole number, or `none` (the policy module
    checks the range, so every front door refuses the same values alike)."""
    if text.strip().lower() == "none":
        return None
    if not _INTEGER.fullmatch(text.strip()):
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number or none")
    return int(text)


def pause_end(text: str) -> datetime:
    """An argparse type for `pause --until`: a duration from now (2h) or an ISO 8601 time
    (in the scheduler's time zone when it has no offset)."""
    if _DURATION.fullmatch(text.strip()):
        return django_timezone.now() + duration(text).as_timedelta()
    try:
        return moment(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is neither a duration like 2h nor an ISO 8601 time like "
            "2027-01-31T06:00"
        ) from None


def moment(text: str) -> datetime:
    """An argparse type for an ISO 8601 time, in the scheduler's time zone when it has
    no offset."""
    try:
        parsed = datetime.fromisoformat(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an ISO 8601 time like 2027-01-31T06:00"
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=app_settings.timezone)
    return parsed


def positive_seconds(text: str) -> float:
    """An argparse type for waits such as `--timeout`."""
    try:
        seconds = float(text)
    except ValueError:
        seconds = 0.0
    if not 0 < seconds < float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds above 0")
    return seconds


def trigger_spec(
    *,
    cron: str | None = None,
    interval: Duration | None = None,
    at: str | None = None,
    trigger: str | None = None,
    arguments: Sequence[tuple[str, Any]] = (),
    timezone: str | None = None,
) -> dict[str, Any]:
    """The trigger spec that `reschedule`'s options describe (argparse allows only one kind)."""
    if arguments and trigger is None:
        raise CommandError(
            "--arg goes with --trigger, e.g. --trigger interval --arg minutes=5",
            returncode=EXIT_USAGE,
        )
    if cron is not None:
        kind, trigger_args = "cron", {"crontab": cron}
    elif interval is not None:
        kind, trigger_args = "interval", {interval.unit: interval.amount}
    elif at is not None:
        kind, trigger_args = "date", {"run_date": at}
    else:
        kind, trigger_args = trigger, _unique_arguments(arguments)
    if timezone is not None:
        trigger_args["timezone"] = timezone
    return {"trigger": kind, "trigger_args": trigger_args}


def _unique_arguments(arguments: Sequence[tuple[str, Any]]) -> dict[str, Any]:
    # A key given twice is a typo more often than an override: refuse to guess.
    trigger_args: dict[str, Any] = {}
    for key, value in arguments:
        if key in trigger_args:
            raise CommandError(f"--arg {key} is given twice", returncode=EXIT_USAGE)
        trigger_args[key] = value
    return trigger_args
