"""Tests for scheduler_app.triggers: specs to APScheduler triggers, validation, words, previews."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.combining import AndTrigger, OrTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger
from cron_descriptor import ExpressionDescriptor
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from scheduler_app import triggers as triggers_module
from scheduler_app.exceptions import InvalidTrigger
from scheduler_app.triggers import (
    build_trigger,
    describe_trigger,
    is_same_schedule,
    parse_crontab,
    preview_fire_times,
    trigger_fields,
)

PARIS = ZoneInfo("Europe/Paris")
BERLIN = ZoneInfo("Europe/Berlin")
NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)  # a Monday


def build(kind: str, allow_past: bool = False, default_zone: Any = UTC, **args: Any) -> Any:
    spec = {"trigger": kind, "trigger_args": args}
    return build_trigger(spec, timezone=default_zone, now=NOW, allow_past=allow_past)


def rejected(spec: Any, allow_past: bool = False) -> InvalidTrigger:
    with pytest.raises(InvalidTrigger) as caught:
        build_trigger(spec, timezone=UTC, now=NOW, allow_past=allow_past)
    return caught.value


def rejected_args(kind: str, allow_past: bool = False, **args: Any) -> InvalidTrigger:
    return rejected({"trigger": kind, "trigger_args": args}, allow_past=allow_past)


def strictly_increasing_instants(times: list[datetime]) -> bool:
    # As UTC instants: Python compares two times in the same zone by wall clock, ignoring fold.
    instants = [moment.astimezone(UTC) for moment in times]
    return all(earlier < later for earlier, later in zip(instants, instants[1:], strict=False))


def weekdays_fired(crontab: str, count: int = 14) -> set[int]:
    trigger = build("cron", crontab=crontab)
    return {moment.weekday() for moment in preview_fire_times(trigger, count=count, now=NOW)}


# Crontab day-of-week: cron numbering (0 and 7 = Sunday), proven by real fire dates.


def test_crontab_one_fires_on_mondays_at_nine() -> None:
    times = preview_fire_times(build("cron", crontab="0 9 * * 1"), count=4, now=NOW)

    assert [moment.weekday() for moment in times] == [0, 0, 0, 0]
    assert {(moment.hour, moment.minute) for moment in times} == {(9, 0)}
    assert times[0] == datetime(2026, 6, 8, 9, 0, tzinfo=UTC)


def test_apscheduler_from_crontab_would_fire_on_tuesday_where_ours_fires_on_monday() -> None:
    stock = CronTrigger.from_crontab("0 9 * * 1", timezone=UTC)
    ours = build("cron", crontab="0 9 * * 1")

    assert stock.get_next_fire_time(None, NOW).weekday() == 1
    assert ours.get_next_fire_time(None, NOW).weekday() == 0


def test_crontab_zero_and_seven_both_mean_sunday() -> None:
    assert parse_crontab("0 0 * * 0")["day_of_week"] == "sun"
    assert parse_crontab("0 0 * * 7")["day_of_week"] == "sun"
    assert weekdays_fired("0 0 * * 0") == {6}
    assert weekdays_fired("0 0 * * 7") == {6}


def test_crontab_weekday_range_becomes_mon_fri_and_skips_weekends() -> None:
    assert parse_crontab("0 9 * * 1-5")["day_of_week"] == "mon-fri"
    assert weekdays_fired("0 9 * * 1-5") == {0, 1, 2, 3, 4}


def test_crontab_five_to_seven_is_friday_saturday_sunday() -> None:
    assert parse_crontab("0 0 * * 5-7")["day_of_week"] == "fri-sun"
    assert weekdays_fired("0 0 * * 5-7") == {4, 5, 6}


@pytest.mark.parametrize(
    ("field", "weekdays"),
    [
        ("*/2", {6, 1, 3, 5}),  # cron days 0, 2, 4, 6: Sunday, Tuesday, Thursday, Saturday
        ("1-5/2", {0, 2, 4}),
        ("0,6", {5, 6}),
        ("sun,wed", {6, 2}),
        ("MON-fri", {0, 1, 2, 3, 4}),
        ("6/1", {5, 6}),  # cronie reads "6/1" as "6-7/1"
    ],
)
def test_crontab_day_of_week_lists_steps_and_names_follow_cron_numbering(
    field: str, weekdays: set[int]
) -> None:
    assert weekdays_fired(f"0 0 * * {field}") == weekdays


@pytest.mark.parametrize("field", ["6-0", "fri-sun", "5-1"])
def test_crontab_backwards_day_of_week_range_is_rejected(field: str) -> None:
    error = rejected_args("cron", crontab=f"0 0 * * {field}")

    assert error.field == "trigger_args.crontab"
    assert "backwards" in error.detail


@pytest.mark.parametrize("field", ["8", "funday", "*-2", "1-", "?", "1#2", "L", "*/0"])
def test_crontab_invalid_day_of_week_is_rejected(field: str) -> None:
    error = rejected_args("cron", crontab=f"0 0 * * {field}")

    assert error.field == "trigger_args.crontab"
    assert "day-of-week" in error.detail


def test_crontab_with_both_day_of_month_and_day_of_week_is_rejected_for_or_semantics() -> None:
    error = rejected_args("cron", crontab="0 0 1 * 1")

    assert error.field == "trigger_args.crontab"
    assert "EITHER" in error.detail and "BOTH" in error.detail


def test_crontab_with_starred_day_of_month_step_and_weekday_is_accepted_as_cron_ands_it() -> None:
    times = preview_fire_times(build("cron", crontab="0 0 */2 * 1"), count=5, now=NOW)

    assert all(moment.weekday() == 0 and moment.day % 2 == 1 for moment in times)


@pytest.mark.parametrize(
    ("alias", "expected"),
    [
        ("@hourly", {"minute": "0", "hour": "*", "day": "*", "month": "*", "day_of_week": "*"}),
        ("@daily", {"minute": "0", "hour": "0", "day": "*", "month": "*", "day_of_week": "*"}),
        ("@midnight", {"minute": "0", "hour": "0", "day": "*", "month": "*", "day_of_week": "*"}),
        ("@weekly", {"minute": "0", "hour": "0", "day": "*", "month": "*", "day_of_week": "sun"}),
        ("@monthly", {"minute": "0", "hour": "0", "day": "1", "month": "*", "day_of_week": "*"}),
        ("@yearly", {"minute": "0", "hour": "0", "day": "1", "month": "1", "day_of_week": "*"}),
        ("@annually", {"minute": "0", "hour": "0", "day": "1", "month": "1", "day_of_week": "*"}),
    ],
)
def test_crontab_aliases_expand_to_their_cron_meaning(alias: str, expected: dict) -> None:
    assert parse_crontab(alias) == {**expected, "second": "0"}


def test_weekly_alias_fires_on_sunday_midnight() -> None:
    times = preview_fire_times(build("cron", crontab="@weekly"), count=3, now=NOW)

    assert times == [datetime(2026, 6, day, tzinfo=UTC) for day in (7, 14, 21)]


def test_unknown_crontab_alias_is_rejected() -> None:
    error = rejected_args("cron", crontab="@reboot")

    assert error.field == "trigger_args.crontab"
    assert "@reboot" in error.detail


@pytest.mark.parametrize("crontab", ["* * * *", "0 0 * * * *", "", "   "])
def test_crontab_with_wrong_number_of_fields_is_rejected(crontab: str) -> None:
    error = rejected_args("cron", crontab=crontab)

    assert error.field == "trigger_args.crontab"
    assert "5 fields" in error.detail


@pytest.mark.parametrize(
    ("crontab", "words"),
    [
        ("61 * * * *", "minute '61'"),
        ("0 24 * * *", "hour '24'"),
        ("0 0 32 * *", "day '32'"),
        ("0 0 * 13 *", "month '13'"),
        ("0 0 L * *", "not a standard cron field"),
        ("*/0 * * * *", "minute '*/0'"),
    ],
)
def test_crontab_out_of_range_or_non_standard_field_is_rejected(crontab: str, words: str) -> None:
    error = rejected_args("cron", crontab=crontab)

    assert error.field == "trigger_args.crontab"
    assert words in error.detail


def test_crontab_mixed_with_cron_fields_is_rejected() -> None:
    error = rejected_args("cron", crontab="0 9 * * *", hour=10)

    assert error.field == "trigger_args.crontab"
    assert "not both" in error.detail and "hour" in error.detail


def test_crontab_month_names_are_accepted() -> None:
    fields = trigger_fields(build("cron", crontab="0 0 1 JAN-mar *"))

    assert fields["trigger_args"]["month"] == "jan-mar"


# Cron fields.


def test_cron_fields_use_apscheduler_numbering_where_zero_is_monday() -> None:
    trigger = build("cron", day_of_week=0, hour=9)

    assert trigger.get_next_fire_time(None, NOW + timedelta(hours=1)).weekday() == 0


def test_cron_without_any_field_is_rejected() -> None:
    for args in ({}, {"timezone": "UTC"}, {"hour": None}):
        error = rejected_args("cron", **args)

        assert error.field == "trigger_args"
        assert "at least one cron field" in error.detail


def test_cron_spec_without_trigger_args_is_rejected_with_what_is_missing() -> None:
    error = rejected({"trigger": "cron"})

    assert error.field == "trigger_args"
    assert "crontab" in error.detail


@pytest.mark.parametrize(
    ("args", "field", "words"),
    [
        ({"minute": 61}, "trigger_args.minute", "out of range 0-59"),
        ({"month": 13}, "trigger_args.month", "out of range 1-12"),
        ({"month": "13"}, "trigger_args.month", "higher than the maximum"),
        ({"hour": "*/0"}, "trigger_args.hour", "Increment must be higher than 0"),
        ({"day_of_week": 7}, "trigger_args.day_of_week", "out of range 0-6"),
        ({"minute": -1}, "trigger_args.minute", "out of range"),
        ({"minute": 10**30}, "trigger_args.minute", "out of range"),
        ({"month": "jan-feb-mar"}, "trigger_args.month", "not a valid expression"),
        ({"day": "1st mon xyz"}, "trigger_args.day", "not a valid expression"),
        ({"hour": "nine"}, "trigger_args.hour", "not a valid expression"),
        ({"hour": ""}, "trigger_args.hour", "not a valid expression"),
        ({"year": 1960}, "trigger_args.year", "out of range"),
    ],
)
def test_cron_field_out_of_range_or_garbage_is_rejected_naming_the_field(
    args: dict, field: str, words: str
) -> None:
    error = rejected_args("cron", **args)

    assert error.field == field
    assert words in error.detail


@pytest.mark.parametrize("value", [True, False, 1.5, [1], {"a": 1}])
def test_cron_field_of_wrong_json_type_is_rejected(value: Any) -> None:
    error = rejected_args("cron", hour=value)

    assert error.field == "trigger_args.hour"
    assert "must be a string or an integer" in error.detail


def test_cron_year_in_the_past_never_fires_again_and_is_rejected() -> None:
    error = rejected_args("cron", year=2001)

    assert error.field == "trigger_args"
    assert "no fire time after now" in error.detail


def test_cron_year_in_the_past_is_allowed_for_code_declarations() -> None:
    trigger = build("cron", allow_past=True, year=2001)

    assert trigger_fields(trigger)["trigger_args"]["year"] == "2001"


@pytest.mark.parametrize("allow_past", [False, True])
def test_cron_that_can_never_fire_is_rejected_even_with_allow_past(allow_past: bool) -> None:
    error = rejected_args("cron", allow_past=allow_past, day=31, month=2)

    assert error.field == "trigger_args"
    assert "never fires" in error.detail


def test_crontab_that_can_never_fire_names_the_crontab() -> None:
    error = rejected_args("cron", crontab="0 0 30 2 *")

    assert error.field == "trigger_args.crontab"
    assert "never fires" in error.detail


def test_cron_end_date_in_the_past_is_rejected_unless_allow_past() -> None:
    error = rejected_args("cron", hour=1, end_date="2026-01-01T00:00:00")

    assert error.field == "trigger_args.end_date"
    assert "in the past" in error.detail
    assert build("cron", allow_past=True, hour=1, end_date="2026-01-01T00:00:00").end_date == (
        datetime(2026, 1, 1, tzinfo=UTC)
    )


@pytest.mark.parametrize(("kind", "unit"), [("cron", {"hour": 1}), ("interval", {"hours": 1})])
def test_end_date_before_start_date_is_rejected_even_with_allow_past(kind: str, unit: dict) -> None:
    error = rejected_args(
        kind, allow_past=True, start_date="2027-02-01", end_date="2027-01-01", **unit
    )

    assert error.field == "trigger_args.end_date"
    assert "before start_date" in error.detail


def test_naive_dates_are_wall_times_in_the_trigger_time_zone() -> None:
    trigger = build("cron", hour=9, start_date="2027-01-01T08:00:00", default_zone=PARIS)

    assert trigger.start_date == datetime(2027, 1, 1, 8, tzinfo=PARIS)
    assert trigger_fields(trigger)["trigger_args"]["start_date"] == "2027-01-01T08:00:00+01:00"


def test_dates_with_an_offset_are_converted_to_the_trigger_time_zone() -> None:
    trigger = build("cron", hour=9, start_date="2027-01-01T08:00:00Z", default_zone=PARIS)

    assert trigger_fields(trigger)["trigger_args"]["start_date"] == "2027-01-01T09:00:00+01:00"


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("2027-02-30", "day is out of range"),
        ("2027-13-01T00:00:00", "month must be in 1..12"),
        ("tomorrow", "not a valid ISO 8601"),
        ("2027-01-01T25:00:00", "hour must be in 0..23"),
    ],
)
def test_impossible_or_unparsable_start_date_is_rejected(value: str, words: str) -> None:
    error = rejected_args("cron", hour=1, start_date=value)

    assert error.field == "trigger_args.start_date"
    assert words in error.detail


@pytest.mark.parametrize("value", [20270101, True, ["2027-01-01"], {"year": 2027}])
def test_date_of_wrong_json_type_is_rejected(value: Any) -> None:
    error = rejected_args("interval", minutes=1, end_date=value)

    assert error.field == "trigger_args.end_date"
    assert "must be a string" in error.detail


def test_date_too_close_to_the_end_of_the_calendar_is_rejected() -> None:
    error = rejected_args("cron", hour=1, end_date="9999-12-31T23:59:59")

    assert error.field == "trigger_args.end_date"
    assert "too far in the future" in error.detail


# Time zones.


def test_trigger_uses_the_default_time_zone_unless_trigger_args_name_one() -> None:
    assert build("cron", hour=9, default_zone=PARIS).timezone == PARIS
    tokyo = build("cron", hour=9, default_zone=PARIS, timezone="Asia/Tokyo")
    assert tokyo.timezone == ZoneInfo("Asia/Tokyo")
    assert build("interval", minutes=5, default_zone=PARIS).timezone == PARIS


@pytest.mark.parametrize(
    "name", ["Mars/Olympus", "europe/paris", "../etc/passwd", "/etc/localtime", "", "Europe"]
)
def test_unknown_time_zone_is_rejected(name: str) -> None:
    error = rejected_args("cron", hour=1, timezone=name)

    assert error.field == "trigger_args.timezone"
    assert "unknown time zone" in error.detail


@pytest.mark.parametrize("value", [1, True, ["UTC"], {"name": "UTC"}])
def test_time_zone_that_is_not_a_string_is_rejected(value: Any) -> None:
    error = rejected_args("interval", minutes=1, timezone=value)

    assert error.field == "trigger_args.timezone"
    assert "must be a string" in error.detail


# Jitter.


@pytest.mark.parametrize("value", ["5", -1, 1.5, True, [], {}, 10**9])
def test_jitter_that_is_not_a_sane_whole_number_of_seconds_is_rejected(value: Any) -> None:
    error = rejected_args("cron", hour=1, jitter=value)

    assert error.field == "trigger_args.jitter"
    assert "whole number of seconds" in error.detail


def test_jitter_zero_number_and_null_are_accepted() -> None:
    assert build("cron", hour=1, jitter=0).jitter == 0
    assert build("interval", minutes=1, jitter=30).jitter == 30
    assert build("interval", minutes=1, jitter=None).jitter is None


def test_date_trigger_takes_no_jitter() -> None:
    error = rejected_args("date", run_date="2027-01-01T00:00:00", jitter=5)

    assert error.field == "trigger_args.jitter"
    assert "unknown argument" in error.detail


# Spec shape and lengths.


@pytest.mark.parametrize("spec", [None, [], "cron", 5, True])
def test_spec_that_is_not_an_object_is_rejected(spec: Any) -> None:
    error = rejected(spec)

    assert error.field is None
    assert "must be an object" in error.detail


@pytest.mark.parametrize("kind", ["crontab", None, 1, ["cron"], {"cron": 1}, True, "CRON"])
def test_unknown_or_missing_trigger_type_is_rejected(kind: Any) -> None:
    error = rejected({"trigger": kind, "trigger_args": {"hour": 1}})

    assert error.field == "trigger"
    assert "'cron', 'interval' or 'date'" in error.detail


def test_unknown_top_level_key_is_rejected_naming_it() -> None:
    error = rejected({"trigger": "cron", "trigger_args": {"hour": 1}, "args": []})

    assert error.field == "args"
    assert "unknown key" in error.detail


@pytest.mark.parametrize("args", [[], "hour=1", 5])
def test_trigger_args_that_are_not_an_object_are_rejected(args: Any) -> None:
    error = rejected({"trigger": "cron", "trigger_args": args})

    assert error.field == "trigger_args"
    assert "must be an object" in error.detail


@pytest.mark.parametrize(
    ("kind", "name"), [("interval", "minute"), ("cron", "minutes"), ("date", "start_date")]
)
def test_unknown_argument_is_rejected_naming_it(kind: str, name: str) -> None:
    error = rejected_args(kind, **{name: 1})

    assert error.field == f"trigger_args.{name}"
    assert f"unknown argument for a {kind} trigger" in error.detail


def test_non_string_argument_name_is_rejected() -> None:
    error = rejected({"trigger": "cron", "trigger_args": {1: "2"}})

    assert error.field == "trigger_args.1"
    assert "unknown argument" in error.detail


@pytest.mark.parametrize(
    ("args", "field"),
    [
        ({"crontab": "* " * 150}, "trigger_args.crontab"),
        ({"hour": "1," * 120}, "trigger_args.hour"),
        ({"hour": 1, "timezone": "A" * 201}, "trigger_args.timezone"),
        ({"hour": 1, "start_date": "2" * 300}, "trigger_args.start_date"),
    ],
)
def test_absurdly_long_strings_are_rejected(args: dict, field: str) -> None:
    error = rejected_args("cron", **args)

    assert error.field == field
    assert "too long" in error.detail and "at most 200" in error.detail


# Interval triggers.


@pytest.mark.parametrize("unit", ["weeks", "days", "hours", "minutes", "seconds"])
def test_negative_interval_is_rejected_naming_the_unit(unit: str) -> None:
    error = rejected_args("interval", **{unit: -1})

    assert error.field == f"trigger_args.{unit}"
    assert "0 or more" in error.detail


@pytest.mark.parametrize("args", [{}, {"minutes": 0}, {"hours": 0, "seconds": 0.0}])
def test_zero_interval_is_rejected(args: dict) -> None:
    error = rejected_args("interval", **args)

    assert error.field == "trigger_args"
    assert "longer than 0" in error.detail


@pytest.mark.parametrize(
    ("value", "words"),
    [
        (True, "must be a number"),
        ("5", "must be a number"),
        ([5], "must be a number"),
        (float("nan"), "finite"),
        (float("inf"), "finite"),
        pytest.param(10**5000, "longer than 100 years", id="5000-digit-int"),
        (1e300, "longer than 100 years"),
    ],
)
def test_interval_unit_of_wrong_type_or_absurd_size_is_rejected(value: Any, words: str) -> None:
    error = rejected_args("interval", seconds=value)

    assert error.field == "trigger_args.seconds"
    assert words in error.detail


def test_interval_longer_than_a_century_in_total_is_rejected() -> None:
    error = rejected_args("interval", weeks=5000, days=2000)

    assert error.field == "trigger_args"
    assert "100 years" in error.detail


@pytest.mark.parametrize(
    ("args", "parts"),
    [
        ({"seconds": 90}, (0, 0, 0, 1, 30)),
        ({"minutes": 90}, (0, 0, 1, 30, 0)),
        ({"days": 8, "seconds": 3661.5}, (1, 1, 1, 1, 1.5)),
        ({"hours": 1.5}, (0, 0, 1, 30, 0)),
        ({"weeks": 2}, (2, 0, 0, 0, 0)),
    ],
)
def test_interval_fields_are_decomposed_into_units(args: dict, parts: tuple) -> None:
    fields = trigger_fields(build("interval", **args))["trigger_args"]

    assert tuple(fields[unit] for unit in ("weeks", "days", "hours", "minutes", "seconds")) == parts


def test_interval_end_date_in_the_past_is_rejected_unless_allow_past() -> None:
    args = {"minutes": 5, "start_date": "2025-01-01T00:00:00", "end_date": "2025-02-01T00:00:00"}
    error = rejected_args("interval", **args)

    assert error.field == "trigger_args.end_date"
    assert "in the past" in error.detail
    assert isinstance(build("interval", allow_past=True, **args), IntervalTrigger)


# Date triggers.


def test_date_in_the_past_is_rejected() -> None:
    error = rejected_args("date", run_date="2026-05-31T12:00:00")

    assert error.field == "trigger_args.run_date"
    assert "in the past" in error.detail


def test_date_in_the_past_is_allowed_with_allow_past() -> None:
    trigger = build("date", allow_past=True, run_date="2026-05-31T12:00:00")

    assert trigger.run_date == datetime(2026, 5, 31, 12, tzinfo=UTC)


def test_date_without_run_date_is_rejected() -> None:
    for args in ({}, {"run_date": None}, {"timezone": "UTC"}):
        error = rejected_args("date", **args)

        assert error.field == "trigger_args.run_date"
        assert "is required" in error.detail


def test_impossible_run_date_is_rejected() -> None:
    error = rejected_args("date", run_date="2027-02-30T09:00:00")

    assert error.field == "trigger_args.run_date"
    assert "day is out of range for month" in error.detail


def test_naive_run_date_is_in_the_default_time_zone() -> None:
    fields = trigger_fields(build("date", run_date="2027-01-01T09:00:00", default_zone=PARIS))

    assert fields["trigger_args"] == {
        "run_date": "2027-01-01T09:00:00+01:00",
        "timezone": "Europe/Paris",
    }


def test_run_date_with_an_offset_keeps_it_unless_a_time_zone_is_named() -> None:
    kept = build("date", run_date="2027-01-01T09:00:00+05:00", default_zone=PARIS)
    converted = build(
        "date", run_date="2027-01-01T09:00:00+05:00", default_zone=PARIS, timezone="UTC"
    )

    assert trigger_fields(kept)["trigger_args"] == {
        "run_date": "2027-01-01T09:00:00+05:00",
        "timezone": None,
    }
    assert trigger_fields(converted)["trigger_args"] == {
        "run_date": "2027-01-01T04:00:00+00:00",
        "timezone": "UTC",
    }


# trigger_fields and the round trip.


def test_cron_fields_are_all_eight_strings_plus_dates_zone_and_jitter() -> None:
    trigger = build(
        "cron", default_zone=PARIS, crontab="*/5 9-17 * * 1-5", end_date="2027-06-01", jitter=10
    )

    assert trigger_fields(trigger) == {
        "trigger": "cron",
        "trigger_args": {
            "year": "*",
            "month": "*",
            "day": "*",
            "week": "*",
            "day_of_week": "mon-fri",
            "hour": "9-17",
            "minute": "*/5",
            "second": "0",
            "start_date": None,
            "end_date": "2027-06-01T00:00:00+02:00",
            "timezone": "Europe/Paris",
            "jitter": 10,
        },
    }


def test_a_trigger_without_canonical_fields_is_custom_and_describes_itself() -> None:
    combined = OrTrigger([build("cron", hour=1), build("cron", hour=2)])

    assert trigger_fields(combined) == {"trigger": "custom", "trigger_args": {}}
    assert describe_trigger(combined).startswith("Custom trigger: or[")
    now = datetime(2030, 1, 1, tzinfo=UTC)
    assert [t.hour for t in preview_fire_times(combined, count=3, now=now)] == [1, 2, 1]


class _FailingTrigger(BaseTrigger):
    def get_next_fire_time(self, previous_fire_time, now):
        raise RuntimeError("this trigger is broken")

    def __str__(self) -> str:
        raise RuntimeError("and cannot even say so")


def test_a_custom_trigger_that_fails_still_has_words_and_no_fire_times() -> None:
    assert describe_trigger(_FailingTrigger()) == "Custom trigger (_FailingTrigger)"
    assert preview_fire_times(_FailingTrigger(), count=3) == []


@pytest.mark.parametrize(
    ("args", "field"),
    [
        ({"seconds": 0.000001}, "trigger_args.seconds"),
        ({"seconds": 0.999}, "trigger_args.seconds"),
        ({"minutes": 0.001}, "trigger_args.minutes"),
        ({"minutes": 0.001, "seconds": 0.5}, "trigger_args"),
    ],
)
def test_intervals_below_the_minimum_are_refused_naming_the_field(args, field) -> None:
    with pytest.raises(InvalidTrigger) as caught:
        build("interval", **args)

    assert caught.value.field == field
    assert "shortest allowed is 1 s" in caught.value.detail


def test_the_minimum_interval_is_a_setting(settings) -> None:
    settings.SCHEDULER_APP = {**settings.SCHEDULER_APP, "MIN_INTERVAL": 60}

    with pytest.raises(InvalidTrigger, match="shortest allowed is 60 s"):
        build("interval", seconds=59)
    assert build("interval", minutes=1).interval == timedelta(minutes=1)


def test_scheduled_job_declarations_below_the_minimum_interval_fail_at_import() -> None:
    from scheduler_app import scheduled_job

    with pytest.raises(InvalidTrigger, match="trigger_args.seconds"):
        scheduled_job("interval", seconds=0.001, id="tests.too_fast")(_declared_too_fast)


def _declared_too_fast() -> None:
    """A job function for the declaration test."""


ZONES = st.sampled_from([None, "UTC", "Europe/Berlin", "America/New_York", "Asia/Kolkata"])
DEFAULT_ZONES = st.sampled_from([UTC, PARIS, ZoneInfo("Australia/Lord_Howe")])
DATES = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1)).map(
    datetime.isoformat
)
CRON_VALUES = {
    "year": st.sampled_from(["*", "2030", "2028-2035", "*/2"]),
    "month": st.integers(1, 12) | st.sampled_from(["*", "*/3", "jan-mar", "6,12", "feb"]),
    "day": st.integers(1, 28) | st.sampled_from(["*", "last", "1st mon", "*/10", "1-7"]),
    "week": st.integers(1, 52) | st.sampled_from(["*", "1-10", "*/2"]),
    "day_of_week": st.integers(0, 6) | st.sampled_from(["*", "mon-fri", "sat,sun", "0-2", "*/2"]),
    "hour": st.integers(0, 23) | st.sampled_from(["*", "*/6", "9-17"]),
    "minute": st.integers(0, 59) | st.sampled_from(["*", "*/15", "0,30"]),
    "second": st.integers(0, 59) | st.sampled_from(["*", "*/30"]),
}
COMMON = {
    "timezone": ZONES,
    "start_date": st.none() | DATES,
    "end_date": st.none() | DATES,
    "jitter": st.none() | st.integers(0, 3600),
}
CRON_SPECS = st.fixed_dictionaries(
    {}, optional={**CRON_VALUES, **COMMON, "crontab": st.just("*/7 1-5 * * 6-7")}
).map(lambda args: {"trigger": "cron", "trigger_args": args})
INTERVAL_SPECS = st.fixed_dictionaries(
    {},
    optional={
        "weeks": st.integers(0, 500),
        "days": st.integers(0, 1000),
        "hours": st.integers(0, 1000),
        "minutes": st.integers(0, 10**5),
        "seconds": st.integers(0, 10**9).map(lambda micro: micro / 1_000_000)
        | st.integers(0, 10**6),
        **COMMON,
    },
).map(lambda args: {"trigger": "interval", "trigger_args": args})
DATE_SPECS = st.fixed_dictionaries({"run_date": DATES}, optional={"timezone": ZONES}).map(
    lambda args: {"trigger": "date", "trigger_args": args}
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(spec=CRON_SPECS | INTERVAL_SPECS | DATE_SPECS, first=DEFAULT_ZONES, second=DEFAULT_ZONES)
def test_trigger_fields_round_trip_through_build_trigger(
    spec: dict, first: Any, second: Any
) -> None:
    try:
        trigger = build_trigger(spec, timezone=first, allow_past=True)
    except InvalidTrigger:
        assume(False)  # an empty or never-firing combination, tested elsewhere

    fields = trigger_fields(trigger)
    rebuilt = build_trigger(fields, timezone=second, allow_past=True)

    assert trigger_fields(rebuilt) == fields
    assert type(rebuilt) is type(trigger)


JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=10**20, max_value=10**400)
    | st.floats()
    | st.text(max_size=30)
    | st.sampled_from(["*/5", "mon-fri", "2027-02-30", "UTC", "0 0 1 * 1", "1e9", "", "-1"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=5,
)
ARG_NAMES = st.sampled_from(
    ["crontab", "minute", "hour", "day", "day_of_week", "year", "weeks", "seconds", "minutes"]
    + ["start_date", "end_date", "run_date", "timezone", "jitter", "bogus"]
)


@settings(max_examples=400, deadline=None)
@given(
    kind=st.sampled_from(["cron", "interval", "date"]) | JSON_VALUES,
    args=st.dictionaries(ARG_NAMES, JSON_VALUES, max_size=4) | JSON_VALUES,
    allow_past=st.booleans(),
)
def test_any_json_input_gives_a_trigger_or_invalid_trigger_never_another_error(
    kind: Any, args: Any, allow_past: bool
) -> None:
    spec = {"trigger": kind, "trigger_args": args}
    try:
        trigger = build_trigger(spec, timezone=UTC, now=NOW, allow_past=allow_past)
    except InvalidTrigger as error:
        assert error.field is None or error.field.startswith(("trigger", "trigger_args"))
        return
    assert isinstance(trigger, CronTrigger | IntervalTrigger | DateTrigger)
    fields = trigger_fields(trigger)
    assert trigger_fields(build_trigger(fields, timezone=UTC, allow_past=True)) == fields


# Descriptions.


@pytest.mark.parametrize(
    ("args", "words"),
    [
        ({"crontab": "0 9 * * 1-5"}, "At 09:00, Monday through Friday (Europe/Paris)"),
        ({"crontab": "*/5 * * * *"}, "Every 5 minutes (Europe/Paris)"),
        ({"crontab": "0 0 * * 0"}, "At 00:00, only on Sunday (Europe/Paris)"),
        ({"crontab": "30 2 1 * *"}, "At 02:30, on day 1 of the month (Europe/Paris)"),
        ({"day_of_week": "0", "hour": 9}, "At 09:00, only on Monday (Europe/Paris)"),
        (
            {"day_of_week": "sat,sun", "hour": 9},
            "At 09:00, only on Saturday and Sunday (Europe/Paris)",
        ),
        ({"second": "*/10"}, "Every 10 seconds (Europe/Paris)"),
        (
            {"day": 1, "day_of_week": "mon", "hour": 9},
            "At 09:00:00, when day of month is 1 and day of week is mon (Europe/Paris)",
        ),
        (
            {"week": 10, "hour": "*/2"},
            "At hour */2, minute 0, second 0, when ISO week is 10 (Europe/Paris)",
        ),
        ({"day": "last", "hour": 23}, "At 23:00:00, when day of month is last (Europe/Paris)"),
    ],
)
def test_describe_cron_in_words(args: dict, words: str) -> None:
    assert describe_trigger(build("cron", default_zone=PARIS, **args)) == words


@pytest.mark.parametrize(
    ("args", "words"),
    [
        ({"minutes": 5}, "Every 5 minutes"),
        ({"minutes": 90}, "Every 1 hour 30 minutes"),
        ({"days": 1}, "Every day"),
        ({"hours": 1}, "Every hour"),
        ({"weeks": 1, "days": 2}, "Every 1 week 2 days"),
        ({"seconds": 1.5}, "Every 1.5 seconds"),
    ],
)
def test_describe_interval_in_words(args: dict, words: str) -> None:
    assert describe_trigger(build("interval", **args)) == words


def test_describe_date_in_words() -> None:
    assert describe_trigger(build("date", run_date="2027-01-01T09:00:00")) == (
        "Once at 2027-01-01 09:00 (UTC)"
    )
    assert describe_trigger(build("date", run_date="2027-01-01T09:00:30", default_zone=PARIS)) == (
        "Once at 2027-01-01 09:00:30 (Europe/Paris)"
    )


# Previews.


def test_preview_returns_count_increasing_times_in_the_trigger_time_zone() -> None:
    trigger = build("cron", default_zone=PARIS, crontab="0 9 * * *")

    times = preview_fire_times(trigger, count=3, now=NOW)

    assert times == [datetime(2026, 6, day, 9, tzinfo=PARIS) for day in (2, 3, 4)]
    assert all(moment.tzinfo == PARIS for moment in times)


def test_preview_defaults_to_five_times_after_the_real_now() -> None:
    before = datetime.now(UTC)
    times = preview_fire_times(build("interval", minutes=1))

    assert len(times) == 5
    assert times[0] > before
    assert [b - a for a, b in zip(times, times[1:], strict=False)] == [timedelta(minutes=1)] * 4


def test_preview_stops_when_the_schedule_ends() -> None:
    trigger = build(
        "interval", hours=1, start_date="2026-06-02T00:00:00", end_date="2026-06-02T02:00:00"
    )

    assert preview_fire_times(trigger, count=10, now=NOW) == [
        datetime(2026, 6, 2, hour, tzinfo=UTC) for hour in (0, 1, 2)
    ]


def test_preview_of_a_date_trigger_is_its_one_run() -> None:
    trigger = build("date", run_date="2027-01-01T09:00:00")

    assert preview_fire_times(trigger, count=5, now=NOW) == [datetime(2027, 1, 1, 9, tzinfo=UTC)]
    assert preview_fire_times(trigger, count=5, now=datetime(2027, 2, 1, tzinfo=UTC)) == []


def test_preview_shows_nominal_times_without_jitter() -> None:
    trigger = build("cron", minute="*/10", jitter=300)

    times = preview_fire_times(trigger, count=6, now=NOW)

    assert [moment.minute for moment in times] == [0, 10, 20, 30, 40, 50]
    assert trigger.jitter == 300


@pytest.mark.parametrize("count", [-1, 1001, True, 2.0, "5"])
def test_preview_with_bad_count_is_rejected(count: Any) -> None:
    with pytest.raises(InvalidTrigger) as caught:
        preview_fire_times(build("cron", hour=1), count=count, now=NOW)

    assert caught.value.field == "count"


def test_preview_of_zero_is_empty() -> None:
    assert preview_fire_times(build("cron", hour=1), count=0, now=NOW) == []


def test_daily_cron_in_the_dst_gap_still_fires_once_a_day_in_berlin() -> None:
    # 2027-03-28: Berlin clocks jump from 02:00 to 03:00, so 02:30 does not exist that day.
    trigger = build("cron", default_zone=BERLIN, hour=2, minute=30)

    times = preview_fire_times(trigger, count=6, now=datetime(2027, 3, 25, tzinfo=BERLIN))

    assert strictly_increasing_instants(times)
    assert [moment.date().day for moment in times] == [25, 26, 27, 28, 29, 30]
    assert [(moment.hour, moment.minute) for moment in times] == [(2, 30)] * 3 + [(3, 30)] + [
        (2, 30)
    ] * 2
    assert times[3].utcoffset() == timedelta(hours=2)


def test_daily_cron_across_the_autumn_dst_fold_fires_at_both_half_past_twos() -> None:
    # 2027-10-31: Berlin clocks go back from 03:00 to 02:00, so 02:30 happens twice, and
    # APScheduler fires at both; the preview must show both rather than stop at the "repeat".
    trigger = build("cron", default_zone=BERLIN, hour=2, minute=30)

    times = preview_fire_times(trigger, count=5, now=datetime(2027, 10, 29, tzinfo=BERLIN))

    assert strictly_increasing_instants(times)
    assert [(moment.day, moment.hour, moment.utcoffset()) for moment in times] == [
        (29, 2, timedelta(hours=2)),
        (30, 2, timedelta(hours=2)),
        (31, 2, timedelta(hours=2)),
        (31, 2, timedelta(hours=1)),
        (1, 2, timedelta(hours=1)),
    ]


# is_same_schedule.


def test_interval_default_without_start_date_is_still_the_same_schedule_later() -> None:
    default = {"trigger": "interval", "trigger_args": {"minutes": 5}}
    stored = build_trigger(default, timezone=PARIS)
    stored.start_date -= timedelta(days=3)  # built at an earlier startup

    assert is_same_schedule(stored, default, timezone=PARIS)


def test_interval_with_another_period_is_not_the_same_schedule() -> None:
    stored = build("interval", minutes=10, default_zone=PARIS)

    assert not is_same_schedule(
        stored, {"trigger": "interval", "trigger_args": {"minutes": 5}}, timezone=PARIS
    )


def test_interval_default_with_start_date_compares_start_date() -> None:
    default = {
        "trigger": "interval",
        "trigger_args": {"minutes": 5, "start_date": "2026-01-01T00:00:00"},
    }
    same = build_trigger(default, timezone=PARIS)
    moved = build("interval", minutes=5, default_zone=PARIS, start_date="2026-01-01T00:01:00")

    assert is_same_schedule(same, default, timezone=PARIS)
    assert not is_same_schedule(moved, default, timezone=PARIS)


def test_cron_schedule_compares_fields_zone_and_type() -> None:
    default = {"trigger": "cron", "trigger_args": {"crontab": "0 9 * * 1-5"}}
    stored = build("cron", default_zone=PARIS, day_of_week="mon-fri", hour=9)

    assert is_same_schedule(stored, default, timezone=PARIS)
    assert not is_same_schedule(stored, default, timezone=BERLIN)
    assert not is_same_schedule(build("interval", hours=1), default, timezone=PARIS)
    assert not is_same_schedule(build("cron", default_zone=PARIS, hour=10), default, timezone=PARIS)


@pytest.mark.parametrize("expression", [
    "0 30 8 * * 1 *",
    "0 */5 * * * * *",
    "15 0 9-17 * * 1-5 *",
    "0 0 0 1 1 * *",
    "0 0 12 */2 * * 2030",
    "0 0,30 6 * jan-mar 6-7 *",
    "30 45 23 15 * * *",
    "0 0 * * * 1,3,5 *",
])
def test_cron_words_are_cron_descriptors_own(expression):
    # Our descriptor shares one translation catalogue; the words must not change.
    stock = ExpressionDescriptor(expression, locale_code="en_US", use_24hour_time_format=True)

    assert triggers_module._CronDescriptor(expression).get_description() == (
        stock.get_description()
    )


# Next fire times in bounded time, APScheduler's AndTrigger included

MONDAY_3AM = datetime(2026, 12, 14, 3, tzinfo=UTC)


def test_an_and_trigger_steps_from_one_common_time_to_the_next():
    # APScheduler's own AndTrigger loops forever from a previous fire time: it asks its
    # cron triggers again from that same moment while only `now` moves.
    mondays_at_3 = AndTrigger([CronTrigger(hour=3, minute=0, timezone=UTC),
                               CronTrigger(day_of_week="mon", hour="*", timezone=UTC)])

    first = triggers_module.next_fire_time(mondays_at_3, None, datetime(2026, 12, 7, 12,
                                                                         tzinfo=UTC))
    following = triggers_module.next_fire_time(mondays_at_3, first, first)

    assert (first, following) == (MONDAY_3AM, MONDAY_3AM + timedelta(days=7))
    assert triggers_module.preview_fire_times(mondays_at_3, count=2, now=first) == [
        MONDAY_3AM, MONDAY_3AM + timedelta(days=7)]


def test_triggers_that_never_agree_give_up_instead_of_looping_to_the_end_of_the_calendar():
    never = OrTrigger([AndTrigger([CronTrigger(hour=3, timezone=UTC),
                                   CronTrigger(day_of_week="mon", timezone=UTC)])])

    with pytest.raises(triggers_module.TriggerStuck, match="agreed on no time"):
        triggers_module.next_fire_time(never, None, MONDAY_3AM)
    assert triggers_module.preview_fire_times(never, count=3, now=MONDAY_3AM) == []


# `TriggerBuilder`: `build_trigger` for an import of many lines, each distinct spec built
# once. Its answers must be the ones `build_trigger` gives, spec by spec.

BUILDER_SPECS = [
    {"trigger": "cron", "trigger_args": {"hour": 7, "minute": 30}},
    {"trigger": "cron", "trigger_args": {"minute": 30, "hour": 7}},  # the same, reordered
    {"trigger": "cron", "trigger_args": {"hour": "7", "minute": "30"}},
    {"trigger": "cron", "trigger_args": {"crontab": "*/5 9-17 * * 1-5",
                                         "timezone": "Europe/Paris"}},
    {"trigger": "cron", "trigger_args": {"hour": 3, "jitter": 60}},
    {"trigger": "cron", "trigger_args": {"hour": 3, "start_date": "2020-01-01T00:00:00",
                                         "end_date": "2999-01-01T00:00:00"}},
    {"trigger": "interval", "trigger_args": {"minutes": 90}},
    {"trigger": "interval", "trigger_args": {"hours": 1, "start_date": "2020-01-01T00:10:00"}},
    {"trigger": "date", "trigger_args": {"run_date": "2999-01-31T09:00:00+01:00"}},
    # Refused, each naming its field:
    {"trigger": "cron", "trigger_args": {"day": 31, "month": 2}},  # never fires
    {"trigger": "cron", "trigger_args": {"hour": 25}},
    {"trigger": "cron", "trigger_args": {"hour": True}},
    {"trigger": "cron", "trigger_args": {"crontab": "0 9 1 * 1"}},
    {"trigger": "interval", "trigger_args": {"minutes": -5}},
    {"trigger": "interval", "trigger_args": {"seconds": 0.5}},
    {"trigger": "interval", "trigger_args": {"hours": 1, "end_date": "2001-01-01T00:00:00"}},
    {"trigger": "date", "trigger_args": {"run_date": "2001-01-31T09:00:00"}},
    {"trigger": "weekly", "trigger_args": {}},
    {"trigger": "cron", "trigger_args": {"hour": 1, "colour": "red"}},
    {"trigger": "cron", "trigger_args": [1, 2]},
]


def outcome(build: Any) -> tuple[Any, ...]:
    """What a build answers, as an operator sees it: the schedule's fields and its first
    fire time, or the refusal's field (and words, unless they quote the time now)."""
    try:
        trigger, first_run_time = build()
    except InvalidTrigger as error:
        return ("refused", error.field, "" if "it is now" in error.message else error.message)
    fields = trigger_fields(trigger)
    if "start_date" in fields["trigger_args"] and isinstance(trigger, IntervalTrigger):
        # An interval without a start date starts from when it is built.
        fields["trigger_args"].pop("start_date")
        first_run_time = None
    if getattr(trigger, "jitter", None):
        first_run_time = None  # drawn at random for every job
    return ("built", fields, first_run_time)


def full_build(spec: Any) -> tuple[Any, datetime | None]:
    """The one-at-a-time path: `build_trigger`, then the trigger's first fire time."""
    trigger = build_trigger(spec, timezone=PARIS)
    return trigger, trigger.get_next_fire_time(None, datetime.now(PARIS))


def test_trigger_builder_answers_each_spec_as_build_trigger_does_however_often_it_comes():
    builder = triggers_module.TriggerBuilder(timezone=PARIS)
    expected = [outcome(lambda spec=spec: full_build(spec)) for spec in BUILDER_SPECS]

    # Three passes: the first builds each spec, the others find it built.
    for _ in range(3):
        answers = [outcome(lambda spec=spec: builder.build(spec)) for spec in BUILDER_SPECS]
        assert answers == expected
    assert [answer[0] for answer in expected].count("refused") == 11


def test_trigger_builder_works_out_the_first_run_again_once_the_time_has_passed():
    # Every second from a start long ago: the next fire time is at most a second away.
    spec = {"trigger": "interval",
            "trigger_args": {"seconds": 1, "start_date": "2020-01-01T00:00:00"}}
    builder = triggers_module.TriggerBuilder(timezone=UTC)
    _, first = builder.build(spec)
    while datetime.now(UTC) <= first:
        time.sleep(0.05)

    now = datetime.now(UTC)

    _, later = builder.build(spec)

    assert first < now <= later


def test_an_interval_without_start_date_starts_when_each_job_is_built():
    spec = {"trigger": "interval", "trigger_args": {"hours": 1}}
    builder = triggers_module.TriggerBuilder(timezone=UTC)
    first, _ = builder.build(spec)
    time.sleep(0.01)

    second, _ = builder.build(spec)

    assert second.start_date > first.start_date


def test_comparing_with_the_trigger_an_import_built_answers_as_comparing_with_the_spec():
    builder = triggers_module.TriggerBuilder(timezone=PARIS)
    valid = [spec for spec in BUILDER_SPECS
             if outcome(lambda spec=spec: full_build(spec))[0] == "built"]
    stored = [build_trigger(spec, timezone=PARIS) for spec in valid]
    answers = {
        (index, other): (
            is_same_schedule(trigger, spec, timezone=PARIS),
            is_same_schedule(trigger, spec, timezone=PARIS, built=builder.build(spec)[0]),
        )
        for index, trigger in enumerate(stored) for other, spec in enumerate(valid)
    }

    assert all(full == fast for full, fast in answers.values())
    # Specs written differently but meaning the same schedule compare equal.
    assert answers[(0, 1)] == answers[(0, 2)] == (True, True)
    assert sum(full for full, _ in answers.values()) == len(valid) + 6
