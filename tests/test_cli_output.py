"""What the `scheduler` command prints and parses, below the command: tables that fit a
terminal with or without colour, relative times, durations and KEY=VALUE arguments."""

from __future__ import annotations

import argparse
import re
from datetime import UTC, datetime, timedelta

import pytest
from django.core.management.color import color_style, no_style

from scheduler_app.cli import output, parsing
from scheduler_app.cli.output import Styled

ANSI = re.compile(r"\x1b\[[0-9;]*m")
NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


def test_table_cuts_the_flexible_column_first_to_fit_100_columns():
    rows = [["reports.weekly", "x" * 150, "2026-05-01 12:00:00 (in 4 min)"]]

    lines = output.table(["ID", "SCHEDULE", "NEXT RUN"], rows, style=no_style(),
                         flexible={"SCHEDULE"})

    assert [len(line) for line in lines] == [100 - 30 + len("NEXT RUN"), 100]
    assert lines[1].startswith("reports.weekly  xxx")
    assert lines[1].endswith("x…  2026-05-01 12:00:00 (in 4 min)")


def test_table_columns_stay_aligned_when_cells_are_coloured():
    rows = [["a", Styled("success", "SUCCESS"), "1"], ["bbbb", Styled("error", "ERROR"), "2"]]

    coloured = output.table(["ID", "STATUS", "N"], rows, style=color_style(force_color=True))
    plain = output.table(["ID", "STATUS", "N"], rows, style=no_style())

    assert all(ANSI.search(line) for line in coloured)
    assert [ANSI.sub("", line) for line in coloured] == plain
    assert plain == ["ID    STATUS   N", "a     success  1", "bbbb  error    2"]


def test_table_shows_multi_line_text_on_one_line():
    [_, row] = output.table(["EXCEPTION"], [["Traceback:\n  boom"]], style=no_style())

    assert row == "Traceback: boom"


def test_details_wrap_long_values_under_their_label():
    lines = output.details([("schedule", "word " * 30), ("version", "3")], style=no_style())

    assert lines[0].startswith("schedule  word")
    assert lines[1].startswith("          word")
    assert lines[-1] == "version   3"
    assert all(len(line) <= 100 for line in lines)


@pytest.mark.parametrize(
    ("offset", "text"),
    [
        (timedelta(seconds=0.4), "now"),
        (timedelta(seconds=42), "in 42 s"),
        (timedelta(minutes=4, seconds=59), "in 4 min"),
        (-timedelta(hours=3), "3 h ago"),
        (timedelta(hours=47), "in 47 h"),
        (timedelta(days=3), "in 3 days"),
        (timedelta(days=400), "in 1 year"),
        (-timedelta(days=365 * 73), "73 years ago"),
    ],
)
def test_relative_times(offset, text):
    assert output.relative_time(NOW + offset, now=NOW) == text


@pytest.mark.parametrize(
    ("typed", "amount", "unit", "said"),
    [
        ("90s", 90, "seconds", "90 seconds"),
        ("5m", 5, "minutes", "5 minutes"),
        ("2h", 2, "hours", "2 hours"),
        ("1d", 1, "days", "1 day"),
        ("30d", 30, "days", "30 days"),
        ("2w", 2, "weeks", "2 weeks"),
    ],
)
def test_durations(typed, amount, unit, said):
    duration = parsing.duration(typed)

    assert (duration.amount, duration.unit, str(duration)) == (amount, unit, said)
    assert duration.as_timedelta() == timedelta(**{unit: amount})


@pytest.mark.parametrize("typed", ["", "5", "m", "5 minutes", "-5m", "1.5h", "0s", "36526d"])
def test_bad_durations_are_refused(typed):
    with pytest.raises(argparse.ArgumentTypeError):
        parsing.duration(typed)


@pytest.mark.parametrize(
    ("typed", "parsed"),
    [
        ("minutes=5", ("minutes", 5)),
        ("minutes=-5", ("minutes", -5)),
        ("seconds=1.5", ("seconds", 1.5)),
        ("second=*", ("second", "*")),
        ("day_of_week=mon-fri", ("day_of_week", "mon-fri")),
        ("start_date=2027-01-01T00:00:00", ("start_date", "2027-01-01T00:00:00")),
    ],
)
def test_trigger_arguments_are_numbers_when_numeric(typed, parsed):
    assert parsing.trigger_argument(typed) == parsed


@pytest.mark.parametrize("typed", ["minutes", "=5", ""])
def test_trigger_arguments_need_a_key_and_a_value(typed):
    with pytest.raises(argparse.ArgumentTypeError):
        parsing.trigger_argument(typed)
