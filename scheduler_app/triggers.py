"""
Trigger specs in, APScheduler triggers out, and back again.

This is the one place that turns a trigger spec (``{"trigger": "cron", "trigger_args":
{...}}``, where a cron spec may carry a standard ``crontab`` string) into an APScheduler 3
trigger, and a trigger back into canonical, JSON-serialisable fields. Validation is strict
because APScheduler is not: it accepts negative intervals, string jitter, past dates and
schedules that never fire, and only fails later, inside the scheduler loop. Every bad input
raises `InvalidTrigger` naming the offending key. The module also describes triggers in
words, previews their next fire times and works out any trigger's next fire time in
bounded time (`next_fire_time`).
"""

from __future__ import annotations

import copy
import json
import math
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta, tzinfo
from functools import cache, lru_cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.combining import AndTrigger, OrTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.cron.expressions import WEEKDAYS
from apscheduler.triggers.cron.fields import MAX_VALUES, MIN_VALUES, SEPARATOR, DayOfWeekField
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger
from cron_descriptor import ExpressionDescriptor, Options
from cron_descriptor.ExpressionParser import ExpressionParser
from cron_descriptor.GetText import GetText

from scheduler_app.conf import app_settings
from scheduler_app.exceptions import InvalidTrigger

CRON_FIELDS = CronTrigger.FIELD_NAMES
INTERVAL_UNITS = ("weeks", "days", "hours", "minutes", "seconds")
_COMMON_ARGS = ("start_date", "end_date", "timezone", "jitter")
ALLOWED_ARGS = {
    "cron": (*CRON_FIELDS, "crontab", *_COMMON_ARGS),
    "interval": (*INTERVAL_UNITS, *_COMMON_ARGS),
    "date": ("run_date", "timezone"),
}
MAX_STRING_LENGTH = 200
MAX_JITTER = 7 * 24 * 3600
MAX_INTERVAL = timedelta(days=36525)
MAX_PREVIEW = 1000
# Far enough from datetime.max that APScheduler's date arithmetic cannot overflow.
LATEST_YEAR = 9000
CRONTAB = "trigger_args.crontab"
CRONTAB_ALIASES = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
CRON_DAY_NAMES = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
_CRONTAB_DAY_ITEM = re.compile(
    r"(?P<first>\*|[0-9a-zA-Z]+)(?:-(?P<last>[0-9a-zA-Z]+))?(?:/(?P<step>[0-9]+))?"
)
# Standard cron syntax: numbers, "*", ranges, steps and lists; months may also be names.
_PLAIN_CRON = re.compile(r"[0-9*/,-]+")
_PLAIN_MONTH = re.compile(r"[0-9a-z*/,-]+", re.IGNORECASE)
_CRON_LABELS = {
    "year": "year",
    "month": "month",
    "week": "ISO week",
    "day": "day of month",
    "day_of_week": "day of week",
}


def build_trigger(
    spec: Mapping[str, Any],
    *,
    timezone: tzinfo,
    now: datetime | None = None,
    allow_past: bool = False,
) -> BaseTrigger:
    """Validate a trigger spec and return a fresh APScheduler trigger for it.

    ``allow_past`` accepts schedules whose only fault is lying in the past (code
    declarations checked at startup); everything else is still refused.
    """
    built = _Built.of(spec, timezone)
    built.check(now=_aware(now, built.zone), allow_past=allow_past)
    return built.trigger


class TriggerBuilder:
    """`build_trigger` for many specs in a row (an import of 100,000 jobs), with each
    distinct spec validated and built once.

    What `build_trigger` checks falls in two parts. The spec itself (its shape, its
    fields, whether it fires at all between its start and end) does not depend on
    the time: that is worked out once per distinct spec, and its trigger shared (a
    trigger is never changed once built). Whether it still fires after now is
    checked at every call, against that call's now; the next fire time worked out
    for it is reused while it is still ahead, because a schedule's next fire time
    after `now` stays the same until `now` passes it. An interval without a start
    date starts from the moment it is built, so it is built anew at every call.
    """

    # Distinct specs kept: a cron trigger is a few KB, and an import of 100,000
    # schedules of their own must not hold them all.
    MAX_SPECS = 4096

    def __init__(self, *, timezone: tzinfo) -> None:
        self.timezone = timezone
        self._built: dict[str, _Built] = {}

    def build(self, spec: Mapping[str, Any]) -> tuple[BaseTrigger, datetime | None]:
        """What `build_trigger(spec)` returns (or raises), and the trigger's first fire
        time from now (None: it has none)."""
        key = _spec_key(spec)
        built = self._built.get(key) if key is not None else None
        if built is None:
            built = _Built.of(spec, self.timezone)
            if key is not None and not built.starts_when_built:
                if len(self._built) >= self.MAX_SPECS:
                    self._built.clear()
                self._built[key] = built
        now = _aware(None, built.zone)
        next_fire_time = built.check(now=now, allow_past=False)
        if getattr(built.trigger, "jitter", None):
            # Jitter is drawn for every fire time: this job's own.
            next_fire_time = built.trigger.get_next_fire_time(None, now)
        return built.trigger, next_fire_time


def _spec_key(spec: Any) -> str | None:
    """The spec as text that tells specs apart exactly (None: not plain JSON)."""
    try:
        return json.dumps(spec, sort_keys=True, allow_nan=False)
    except (TypeError, ValueError):
        return None


class _Built:
    """A spec's trigger, with what was checked of it that does not depend on the time."""

    __slots__ = ("args", "fires", "next_fire_time", "starts_when_built", "trigger", "zone")

    def __init__(self, trigger: BaseTrigger, args: dict[str, Any], zone: tzinfo) -> None:
        self.trigger = trigger
        self.args = args
        self.zone = zone
        origin = getattr(trigger, "start_date", None) or datetime(1970, 1, 2, tzinfo=UTC)
        # Whether anything matches between its start and end dates.
        self.fires = _without_jitter(trigger).get_next_fire_time(None, origin) is not None
        self.starts_when_built = (
            isinstance(trigger, IntervalTrigger) and args.get("start_date") is None
        )
        self.next_fire_time: datetime | None = None

    @classmethod
    def of(cls, spec: Mapping[str, Any], timezone: tzinfo) -> _Built:
        kind, args = _split_spec(spec)
        zone = _zone_arg(args, default=timezone)
        builder = {"cron": _build_cron, "interval": _build_interval, "date": _build_date}[kind]
        return cls(builder(args, zone), args, zone)

    def check(self, *, now: datetime, allow_past: bool) -> datetime | None:
        """Refuse schedules that never fire, and (unless allowed) those whose times are
        all past; return the next fire time after `now`, without jitter (None with
        `allow_past`)."""
        trigger, args = self.trigger, self.args
        field = CRONTAB if args.get("crontab") is not None else "trigger_args"
        if not allow_past:
            for name in ("run_date", "end_date"):
                moment = getattr(trigger, name, None)
                if moment is not None and moment < now:
                    raise InvalidTrigger(
                        f"{moment.isoformat()} is in the past (it is now {now.isoformat()}).",
                        field=f"trigger_args.{name}",
                    )
        if not self.fires:
            raise InvalidTrigger(
                "this schedule never fires: nothing matches it between its start_date and "
                "end_date (like day 31 in February, or an end_date before the first run).",
                field=field,
            )
        if allow_past:
            return None
        if self.next_fire_time is None or self.next_fire_time < now:
            self.next_fire_time = _without_jitter(trigger).get_next_fire_time(None, now)
        if self.next_fire_time is None:
            raise InvalidTrigger(
                f"this schedule has no fire time after now ({now.isoformat()}).", field=field
            )
        return self.next_fire_time


# The trigger type shown for any trigger that is not cron, interval or date (an
# `OrTrigger`, an `AndTrigger`, a class of another app's): it has no canonical
# fields, only its own words and fire times.
CUSTOM = "custom"
STANDARD_TRIGGERS = (CronTrigger, IntervalTrigger, DateTrigger)


def is_standard(trigger: Any) -> bool:
    """Whether this module can describe the trigger by canonical fields."""
    return type(trigger) in STANDARD_TRIGGERS


def trigger_fields(trigger: BaseTrigger) -> dict[str, Any]:
    """Return the canonical, JSON-serialisable spec of a cron, interval or date trigger.

    Any other trigger is `{"trigger": "custom", "trigger_args": {}}`.
    """
    if not is_standard(trigger):
        return {"trigger": CUSTOM, "trigger_args": {}}
    if isinstance(trigger, CronTrigger):
        fields = {field.name: str(field) for field in trigger.fields}
        return {"trigger": "cron", "trigger_args": {**fields, **_common_fields(trigger)}}
    if isinstance(trigger, IntervalTrigger):
        parts = _interval_parts(trigger.interval)
        return {"trigger": "interval", "trigger_args": {**parts, **_common_fields(trigger)}}
    run_date = trigger.run_date  # a DateTrigger
    args = {"run_date": run_date.isoformat(), "timezone": _zone_name(run_date.tzinfo)}
    return {"trigger": "date", "trigger_args": args}


class _ByKey:
    """A value that hashes and compares by a text key which determines everything
    computed from it: the argument of the memoized functions below."""

    __slots__ = ("key", "value")

    def __init__(self, key: str, value: Any) -> None:
        self.key = key
        self.value = value

    def __hash__(self) -> int:
        return hash(self.key)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _ByKey) and other.key == self.key


class Schedule(_ByKey):
    """A cron, interval or date trigger with its canonical fields, worked out once.

    It hashes by those fields, so the words and fire times worked out from it are
    memoized: pure computations are not redone for every row of every list page,
    and can never answer for a stale schedule (a changed schedule is another key).
    """

    __slots__ = ("fields",)

    def __init__(self, trigger: BaseTrigger) -> None:
        self.fields = trigger_fields(trigger)
        args = sorted(self.fields["trigger_args"].items())
        super().__init__(repr((self.fields["trigger"], args)), trigger)

    @property
    def trigger(self) -> BaseTrigger:
        return self.value

    def describe(self) -> str:
        """The schedule in a few words."""
        return _describe(self)

    def fire_times(self, *, count: int, now: datetime) -> list[datetime]:
        """The next ``count`` fire times after the aware instant ``now`` (memoized)."""
        return list(_preview(self, count, now))

    def matches(
        self, default_spec: Mapping[str, Any], *, timezone: tzinfo, built: BaseTrigger | None = None
    ) -> bool:
        """Whether this is still the schedule a code declaration (or an import) gives its
        job; `built` is the trigger that spec was just built into, when at hand."""
        default_type, default_args = (
            _fields_of(built, default_spec) if built is not None
            else _default_fields(_ByKey(repr(default_spec), default_spec), timezone)
        )
        if type(self.trigger).__name__ != default_type:
            return False
        stored_args = dict(self.fields["trigger_args"])
        if "start_date" not in default_args:
            stored_args.pop("start_date", None)
        return stored_args == default_args


def describe_trigger(trigger: BaseTrigger) -> str:
    """Say in a few words when a trigger fires; a custom trigger says it itself."""
    if is_standard(trigger):
        return Schedule(trigger).describe()
    try:
        return f"Custom trigger: {trigger}"[:MAX_STRING_LENGTH]
    except Exception:  # another app's __str__ may fail: the class name still helps
        return f"Custom trigger ({type(trigger).__name__})"


# Words are a few dozen bytes, and a cron description costs cron-descriptor about
# 0.6 ms (it reloads its translations every time): room for every schedule of a large store.
@lru_cache(maxsize=16384)
def _describe(schedule: Schedule) -> str:
    trigger = schedule.trigger
    if isinstance(trigger, CronTrigger):
        return f"{_describe_cron(trigger)} ({_zone_label(trigger.timezone)})"
    if isinstance(trigger, IntervalTrigger):
        return _describe_interval(trigger.interval)
    if isinstance(trigger, DateTrigger):
        run_date = trigger.run_date
        moment = f"{run_date:%Y-%m-%d %H:%M}" + (f":{run_date:%S}" if run_date.second else "")
    return f"Once at {moment} ({_zone_label(run_date.tzinfo)})"


def preview_fire_times(
    trigger: BaseTrigger, *, count: int = 5, now: datetime | None = None
) -> list[datetime]:
    """Return the next ``count`` fire times after ``now``, fewer if the schedule ends.

    With an explicit ``now`` (a stored next run time, say) the result is memoized.
    """
    if isinstance(count, bool) or not isinstance(count, int) or not 0 <= count <= MAX_PREVIEW:
        raise InvalidTrigger(f"must be a whole number from 0 to {MAX_PREVIEW}.", field="count")
    if not is_standard(trigger):
        try:
            return _preview_uncached(trigger, count, now)
        except Exception:  # another app's trigger may fail: it just shows no times
            return []
    if now is not None and now.tzinfo is not None:
        return Schedule(trigger).fire_times(count=count, now=now)
    return _preview_uncached(trigger, count, now)


# Rounds an `AndTrigger` may take to find a time all its triggers agree on.
AND_TRIGGER_ROUNDS = 1000


class TriggerStuck(ValueError):
    """A trigger found no next fire time within a bounded amount of work."""


def next_fire_time(
    trigger: BaseTrigger, previous: datetime | None, now: datetime
) -> datetime | None:
    """`trigger.get_next_fire_time(previous, now)`, in bounded time for every trigger.

    APScheduler 3's `AndTrigger` can loop forever, inside a claim or a page: it
    asks its triggers again with the same `previous_fire_time` while only `now`
    moves, and a cron trigger counts from `previous_fire_time`, so two that disagree
    never meet; and triggers that never agree (03:00 and Mondays at midnight) loop
    until the calendar ends. Here an `AndTrigger` (also inside an `OrTrigger`) is
    evaluated round by round from the moment after `previous`, for at most
    AND_TRIGGER_ROUNDS rounds, and then raises `TriggerStuck`.
    """
    if isinstance(trigger, AndTrigger):
        start = previous + timedelta(microseconds=1) if previous is not None else now
        for _ in range(AND_TRIGGER_ROUNDS):
            fire_times = [next_fire_time(part, None, start) for part in trigger.triggers]
            if None in fire_times:
                return None
            if min(fire_times) == max(fire_times):
                return trigger._apply_jitter(fire_times[0], trigger.jitter, now)
            start = max(fire_times)
        raise TriggerStuck(f"its triggers agreed on no time in {AND_TRIGGER_ROUNDS} rounds")
    if isinstance(trigger, OrTrigger):
        fire_times = [moment for part in trigger.triggers
                      if (moment := next_fire_time(part, previous, now)) is not None]
        return trigger._apply_jitter(min(fire_times), trigger.jitter, now) if fire_times else None
    return trigger.get_next_fire_time(previous, now)


@lru_cache(maxsize=4096)
def _preview(schedule: Schedule, count: int, now: datetime) -> tuple[datetime, ...]:
    return tuple(_preview_uncached(schedule.trigger, count, now))


def _preview_uncached(trigger: BaseTrigger, count: int, now: datetime | None) -> list[datetime]:
    zone = _trigger_zone(trigger)
    nominal = _without_jitter(trigger)
    floor = _aware(now, zone).astimezone(UTC)
    times: list[datetime] = []
    previous = last = None
    while len(times) < count:
        try:
            upcoming = next_fire_time(nominal, previous, previous or floor)
        except (OverflowError, ValueError):
            break  # the schedule ran past the end of the calendar (year 9999)
        if upcoming is None:
            break
        # Compared as UTC instants, so that both 02:30s of a DST fold count. A date trigger
        # returns its run date even when past; a trigger repeating a time would loop forever.
        instant = upcoming.astimezone(UTC)
        if instant < floor or (last is not None and instant <= last):
            break
        times.append(instant.astimezone(zone))
        previous, last = upcoming, instant
    return times


def fire_times_between(
    trigger: BaseTrigger, *, start: datetime, end: datetime, limit: int
) -> list[datetime]:
    """The fire times from `start` to `end` (both aware, inclusive), as the trigger
    would have made them, without jitter; at most `limit` + 1, so that a caller can
    tell a range that holds more than `limit` from one that holds exactly that many."""
    times = _preview_uncached(trigger, limit + 1, start)
    return [moment for moment in times if moment <= end]


def is_same_schedule(
    stored: BaseTrigger,
    default_spec: Mapping[str, Any],
    *,
    timezone: tzinfo,
    built: BaseTrigger | None = None,
) -> bool:
    """Tell whether a stored trigger still has the schedule a code declaration (or an
    import line) gives it; `built` is the trigger that spec was built into, if at hand."""
    if not is_standard(stored):
        return False
    return Schedule(stored).matches(default_spec, timezone=timezone, built=built)


@lru_cache(maxsize=1024)
def _default_fields(spec: _ByKey, timezone: tzinfo) -> tuple[str, dict[str, Any]]:
    """A code default's trigger type and canonical fields, built (and validated) once."""
    default_spec = spec.value
    return _fields_of(build_trigger(default_spec, timezone=timezone, allow_past=True),
                      default_spec)


def _fields_of(built: BaseTrigger, spec: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """The type and canonical fields of the trigger built from `spec`, to compare with."""
    args = trigger_fields(built)["trigger_args"]
    # IntervalTrigger sets start_date to "construction time + interval" when none is given,
    # so two builds of the same default never agree on it.
    if isinstance(built, IntervalTrigger) and _spec_args(spec).get("start_date") is None:
        del args["start_date"]
    return type(built).__name__, args


def parse_crontab(expression: str) -> dict[str, str]:
    """Turn a standard 5-field crontab (or an @alias) into CronTrigger keyword arguments.

    Day-of-week is converted to day names, because cron counts from Sunday = 0 (and 7)
    while APScheduler 3, `CronTrigger.from_crontab` included, counts from Monday = 0.
    """
    text = _text(expression, CRONTAB).strip()
    if text.startswith("@"):
        if text.lower() not in CRONTAB_ALIASES:
            raise InvalidTrigger(
                f"unknown alias {text!r}; use one of {', '.join(CRONTAB_ALIASES)}.", field=CRONTAB
            )
        text = CRONTAB_ALIASES[text.lower()]
    parts = text.split()
    if len(parts) != 5:
        raise InvalidTrigger(
            f"a crontab has 5 fields (minute hour day-of-month month day-of-week), "
            f"got {len(parts)}.",
            field=CRONTAB,
        )
    minute, hour, day, month, day_of_week = parts
    # Cron's rule (Vixie and cronie): a field starting with "*" is unrestricted.
    if not day.startswith("*") and not day_of_week.startswith("*"):
        raise InvalidTrigger(
            "both day-of-month and day-of-week are restricted: cron fires when EITHER matches, "
            "but this scheduler fires only when BOTH match. Restrict only one of them, or give "
            "separate 'day' and 'day_of_week' fields if both must match.",
            field=CRONTAB,
        )
    kwargs = {"minute": minute, "hour": hour, "day": day, "month": month}
    for name, value in kwargs.items():
        if not (_PLAIN_MONTH if name == "month" else _PLAIN_CRON).fullmatch(value):
            raise InvalidTrigger(f"{name} {value!r} is not a standard cron field.", field=CRONTAB)
        _cron_expression(name, value, field=CRONTAB)
    weekdays = {(number - 1) % 7 for number in _crontab_weekdays(day_of_week)}
    kwargs["day_of_week"] = "*" if len(weekdays) == 7 else _join_runs(weekdays, WEEKDAYS)
    return {**kwargs, "second": "0"}


def _split_spec(spec: Any) -> tuple[str, dict[str, Any]]:
    if not isinstance(spec, Mapping):
        raise InvalidTrigger(f"a trigger spec must be an object, not {_type_name(spec)}.")
    for key in spec:
        if key not in ("trigger", "trigger_args"):
            raise InvalidTrigger(
                "unknown key; a trigger spec has only 'trigger' and 'trigger_args'.",
                field=_key_label(key),
            )
    kind = spec.get("trigger")
    if not isinstance(kind, str) or kind not in ALLOWED_ARGS:
        raise InvalidTrigger(
            f"must be 'cron', 'interval' or 'date', not {_shown(kind)}.", field="trigger"
        )
    args = _spec_args(spec)
    for name in args:
        if name not in ALLOWED_ARGS[kind]:
            raise InvalidTrigger(
                f"unknown argument for a {kind} trigger; use {', '.join(ALLOWED_ARGS[kind])}.",
                field=f"trigger_args.{_key_label(name)}",
            )
    return kind, dict(args)


def _spec_args(spec: Mapping[str, Any]) -> Mapping[Any, Any]:
    args = spec.get("trigger_args")
    if args is None:
        return {}
    if not isinstance(args, Mapping):
        raise InvalidTrigger(f"must be an object, not {_type_name(args)}.", field="trigger_args")
    return args


def _build_cron(args: dict[str, Any], zone: tzinfo) -> CronTrigger:
    given = {name: args[name] for name in CRON_FIELDS if args.get(name) is not None}
    if args.get("crontab") is not None:
        if given:
            raise InvalidTrigger(
                f"give either a crontab string or cron fields, not both (got {', '.join(given)}).",
                field=CRONTAB,
            )
        fields = parse_crontab(args["crontab"])
    elif given:
        fields = {
            name: _cron_expression(name, value, field=f"trigger_args.{name}")
            for name, value in given.items()
        }
    else:
        raise InvalidTrigger(
            f"give at least one cron field ({', '.join(CRON_FIELDS)}) or a crontab string.",
            field="trigger_args",
        )
    start_date, end_date = _date_range(args, zone)
    return CronTrigger(
        **fields, start_date=start_date, end_date=end_date, timezone=zone, jitter=_jitter(args)
    )


def _build_interval(args: dict[str, Any], zone: tzinfo) -> IntervalTrigger:
    interval = sum((_interval_part(unit, args.get(unit)) for unit in INTERVAL_UNITS), timedelta())
    if not interval:
        raise InvalidTrigger(
            f"the interval must be longer than 0: give one of {', '.join(INTERVAL_UNITS)} above 0.",
            field="trigger_args",
        )
    if interval > MAX_INTERVAL:
        raise InvalidTrigger("the interval is longer than 100 years.", field="trigger_args")
    _check_min_interval(interval, args)
    start_date, end_date = _date_range(args, zone)
    return IntervalTrigger(
        days=interval.days,
        seconds=interval.seconds + interval.microseconds / 1_000_000,
        start_date=start_date,
        end_date=end_date,
        timezone=zone,
        jitter=_jitter(args),
    )


def _check_min_interval(interval: timedelta, args: Mapping[str, Any]) -> None:
    # APScheduler runs an interval of a microsecond; the scheduler then does nothing
    # but fire it, and its history fills with a million runs a second.
    minimum = app_settings.MIN_INTERVAL
    if interval >= timedelta(seconds=minimum):
        return
    given = [unit for unit in INTERVAL_UNITS if args.get(unit)]
    raise InvalidTrigger(
        f"the interval is {_amount(interval.total_seconds())} s; the shortest allowed is "
        f"{_amount(float(minimum))} s (SCHEDULER_APP['MIN_INTERVAL']).",
        field=f"trigger_args.{given[0]}" if len(given) == 1 else "trigger_args",
    )


def _build_date(args: dict[str, Any], zone: tzinfo) -> DateTrigger:
    if args.get("run_date") is None:
        raise InvalidTrigger(
            "is required: the date and time to run at, e.g. '2027-01-31T09:00:00'.",
            field="trigger_args.run_date",
        )
    # Without an explicit time zone, a run_date that carries an offset keeps it.
    keep_offset = args.get("timezone") is None
    return DateTrigger(run_date=_date_arg(args, "run_date", zone, keep_offset=keep_offset))


def _cron_expression(name: str, value: Any, *, field: str) -> str:
    """Validate one CronTrigger field value with APScheduler's own parser, strictly."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        message = f"must be a string or an integer, not {_type_name(value)}."
        raise InvalidTrigger(message, field=field)
    low, high = MIN_VALUES[name], MAX_VALUES[name]
    if isinstance(value, int):
        if not low <= value <= high:
            message = f"{name} {_shown(value)} is out of range {low}-{high}."
            raise InvalidTrigger(message, field=field)
        return str(value)
    field_class = CronTrigger.FIELDS_MAP[name]
    for part in SEPARATOR.split(_text(value, field).strip()):
        # APScheduler matches name-based expressions by prefix only ("jan-feb-mar" would
        # silently mean "jan-feb"); insist that the expression it picks covers the whole part.
        match = next(filter(None, (c.value_re.match(part) for c in field_class.COMPILERS)), None)
        if match is None or match.end() != len(part):
            raise InvalidTrigger(f"{name} {part!r} is not a valid expression.", field=field)
    try:
        field_class(name, value)
    except ValueError as error:
        raise InvalidTrigger(f"{name} {value!r} is invalid: {error}.", field=field) from None
    return value


def _crontab_weekdays(text: str) -> set[int]:
    """Expand a cron day-of-week field to cron day numbers (0 = Sunday)."""
    days: set[int] = set()
    for item in text.split(","):
        match = _CRONTAB_DAY_ITEM.fullmatch(item)
        if match is None or (match["first"] == "*" and match["last"]):
            raise InvalidTrigger(f"day-of-week {item!r} is not a valid cron field.", field=CRONTAB)
        step = int(match["step"] or 1)
        if step == 0:
            raise InvalidTrigger(f"day-of-week {item!r} has a step of 0.", field=CRONTAB)
        if match["first"] == "*":
            first, last = 0, 7
        elif match["last"]:
            first, last = _crontab_day_number(match["first"]), _crontab_day_number(match["last"])
        else:
            # A lone day is just that day; cronie reads "5/2" as "5-7/2".
            first = _crontab_day_number(match["first"])
            last = 7 if match["step"] else first
        if first > last:
            raise InvalidTrigger(
                f"day-of-week range {item!r} runs backwards; cron ranges go from low to high "
                "(use 7 for a Sunday at the end, as in 5-7).",
                field=CRONTAB,
            )
        days.update(number % 7 for number in range(first, last + 1, step))
    return days


def _crontab_day_number(token: str) -> int:
    if token.isdigit() and int(token) <= 7:
        return int(token)
    if token.lower() in CRON_DAY_NAMES:
        return CRON_DAY_NAMES.index(token.lower())
    raise InvalidTrigger(
        f"day-of-week {token!r} is neither 0-7 (0 and 7 are Sunday) nor a day name like 'mon'.",
        field=CRONTAB,
    )


def _join_runs(numbers: set[int], labels: Sequence[str]) -> str:
    """Format day numbers as a list, collapsing runs of three or more into ranges."""
    runs: list[list[int]] = []
    for number in sorted(numbers):
        if runs and number == runs[-1][-1] + 1:
            runs[-1].append(number)
        else:
            runs.append([number])
    return ",".join(
        f"{labels[run[0]]}-{labels[run[-1]]}" if len(run) >= 3 else ",".join(labels[n] for n in run)
        for run in runs
    )


def _interval_part(unit: str, value: Any) -> timedelta:
    field = f"trigger_args.{unit}"
    if value is None:
        return timedelta()
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidTrigger(f"must be a number, not {_type_name(value)}.", field=field)
    if (isinstance(value, float) and not math.isfinite(value)) or value < 0:
        raise InvalidTrigger(
            f"must be a finite number, 0 or more, not {_shown(value)}.", field=field
        )
    try:
        part = timedelta(**{unit: value})
    except OverflowError:
        part = MAX_INTERVAL * 2
    if part > MAX_INTERVAL:
        raise InvalidTrigger("is longer than 100 years.", field=field)
    return part


def _jitter(args: Mapping[str, Any]) -> int | None:
    value = args.get("jitter")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_JITTER:
        raise InvalidTrigger(
            f"must be a whole number of seconds from 0 to {MAX_JITTER} or null, "
            f"not {_shown(value)}.",
            field="trigger_args.jitter",
        )
    return value


def _date_range(args: Mapping[str, Any], zone: tzinfo) -> tuple[datetime | None, datetime | None]:
    start_date = _date_arg(args, "start_date", zone)
    end_date = _date_arg(args, "end_date", zone)
    if start_date and end_date and end_date < start_date:
        raise InvalidTrigger(
            f"{end_date.isoformat()} is before start_date {start_date.isoformat()}.",
            field="trigger_args.end_date",
        )
    return start_date, end_date


def _date_arg(
    args: Mapping[str, Any], name: str, zone: tzinfo, *, keep_offset: bool = False
) -> datetime | None:
    """Parse an ISO 8601 argument; naive values are wall times in ``zone``."""
    value, field = args.get(name), f"trigger_args.{name}"
    if value is None:
        return None
    if not isinstance(value, datetime):
        text = _text(value, field)
        try:
            value = datetime.fromisoformat(text)
        except ValueError as error:
            raise InvalidTrigger(
                f"{text!r} is not a valid ISO 8601 date-time ({error}); "
                "write it like '2027-01-31T09:00:00' or '2027-01-31T09:00:00+01:00'.",
                field=field,
            ) from None
    try:
        moment = value if keep_offset and value.tzinfo else _in_zone(value, zone)
    except (OverflowError, ValueError):
        moment = None
    if moment is None or moment.year > LATEST_YEAR:
        raise InvalidTrigger(f"{value.isoformat()} is too far in the future.", field=field)
    return moment


def _in_zone(moment: datetime, zone: tzinfo) -> datetime:
    # Via UTC, because astimezone() to the datetime's own tzinfo is a no-op and would keep
    # a wall time that falls in a DST gap.
    aware = moment if moment.tzinfo else moment.replace(tzinfo=zone)
    return aware.astimezone(UTC).astimezone(zone)


def _aware(moment: datetime | None, zone: tzinfo) -> datetime:
    if moment is None:
        return datetime.now(zone)
    return moment if moment.tzinfo else moment.replace(tzinfo=zone)


def _zone_arg(args: Mapping[str, Any], *, default: tzinfo) -> tzinfo:
    value = args.get("timezone")
    if value is None:
        return default
    name = _text(value, "trigger_args.timezone")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise InvalidTrigger(
            f"unknown time zone {name!r}; use an IANA name such as 'Europe/Paris' or 'UTC'.",
            field="trigger_args.timezone",
        ) from None


def _zone_name(zone: tzinfo | None) -> str | None:
    if isinstance(zone, ZoneInfo):
        return zone.key
    return "UTC" if zone == UTC else None


def _zone_label(zone: tzinfo | None) -> str:
    return _zone_name(zone) or str(zone)


def _trigger_zone(trigger: BaseTrigger) -> tzinfo:
    if isinstance(trigger, DateTrigger):  # it has no timezone attribute; its run_date does
        return trigger.run_date.tzinfo or UTC
    return getattr(trigger, "timezone", None) or UTC


def _without_jitter(trigger: BaseTrigger) -> BaseTrigger:
    # Jitter is random per run: a preview shows the nominal times it is added to.
    if not getattr(trigger, "jitter", None):
        return trigger
    nominal = copy.copy(trigger)
    nominal.jitter = None
    return nominal


def _common_fields(trigger: CronTrigger | IntervalTrigger) -> dict[str, Any]:
    return {
        "start_date": trigger.start_date.isoformat() if trigger.start_date else None,
        "end_date": trigger.end_date.isoformat() if trigger.end_date else None,
        "timezone": _zone_name(trigger.timezone),
        "jitter": trigger.jitter,
    }


def _interval_parts(interval: timedelta) -> dict[str, int | float]:
    weeks, days = divmod(interval.days, 7)
    hours, rest = divmod(interval.seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    fraction = interval.microseconds / 1_000_000
    return {
        "weeks": weeks,
        "days": days,
        "hours": hours,
        "minutes": minutes,
        "seconds": seconds + fraction if fraction else seconds,
    }


def _describe_interval(interval: timedelta) -> str:
    parts = [(value, unit) for unit, value in _interval_parts(interval).items() if value]
    if len(parts) == 1 and parts[0][0] == 1:
        return f"Every {parts[0][1][:-1]}"
    return "Every " + " ".join(
        f"{_amount(value)} {unit[:-1] if value == 1 else unit}" for value, unit in parts
    )


def _describe_cron(trigger: CronTrigger) -> str:
    values = {field.name: str(field) for field in trigger.fields}
    expression = _descriptor_expression(values)
    if expression is not None:
        try:
            return _CronDescriptor(expression).get_description()
        except Exception:  # cron-descriptor is best effort: fall back to our own words
            pass
    time_names = ("hour", "minute", "second")
    if all(values[name].isdigit() for name in time_names):
        time = ":".join(values[name].zfill(2) for name in time_names)
    else:
        time = ", ".join(f"{name} {values[name]}" for name in time_names)
    dates = [
        f"{label} is {values[name]}" for name, label in _CRON_LABELS.items() if values[name] != "*"
    ]
    return f"At {time}" + (f", when {' and '.join(dates)}" if dates else "")


class _CronDescriptor(ExpressionDescriptor):
    """cron-descriptor's English, 24-hour descriptions, with one translation catalogue.

    `ExpressionDescriptor.__init__` reads and parses the locale's .mo file for every
    expression: 0.45 ms of the 0.6 ms a description costs, paid for each schedule a
    list page shows for the first time. This sets up the same parts (cron-descriptor
    2.2.1's attributes, from its own modules), with the catalogue loaded once; tests
    compare the words with the library's own, so an upgrade that moves them fails there.
    """

    def __init__(self, expression: str) -> None:
        options = Options()
        options.locale_code = "en_US"
        options.use_24hour_time_format = True
        self._expression = expression
        self._options = options
        self._expression_parts = ExpressionParser(expression, options).parse()
        self.get_text = _english_catalogue()


@cache
def _english_catalogue() -> GetText:
    return GetText("en_US")


def _descriptor_expression(values: dict[str, str]) -> str | None:
    """A 7-field cron expression meaning what the trigger means, or None if there is none."""
    # cron-descriptor reads day and day-of-week with cron's OR; APScheduler ANDs them.
    if values["week"] != "*" or "*" not in (values["day"], values["day_of_week"]):
        return None
    plain = ("second", "minute", "hour", "day", "year")
    if not all(_PLAIN_CRON.fullmatch(values[name]) for name in plain):
        return None
    if not _PLAIN_MONTH.fullmatch(values["month"]):
        return None
    # Ask APScheduler which weekdays (0 = Monday) match, then write them in cron numbers,
    # Sunday as 7 so that a run like Friday-Sunday stays an ascending range (5-7).
    weekday_field = DayOfWeekField("day_of_week", values["day_of_week"])
    monday = datetime(2024, 1, 1)
    weekdays = {
        day for day in range(7) if weekday_field.get_next_value(monday + timedelta(days=day)) == day
    }
    day_of_week = "*" if len(weekdays) == 7 else _join_runs(weekdays, "1234567")
    parts = [values[name] for name in ("second", "minute", "hour", "day", "month")]
    return " ".join([*parts, day_of_week, values["year"]])


def _text(value: Any, field: str) -> str:
    if not isinstance(value, str):
        raise InvalidTrigger(f"must be a string, not {_type_name(value)}.", field=field)
    if len(value) > MAX_STRING_LENGTH:
        raise InvalidTrigger(
            f"is too long ({len(value)} characters; at most {MAX_STRING_LENGTH}).", field=field
        )
    return value


def _type_name(value: Any) -> str:
    """Name a value's type the way a JSON client would."""
    names = {bool: "a boolean", int: "an integer", float: "a number", str: "a string"}
    names |= {type(None): "null", list: "a list", tuple: "a list", dict: "an object"}
    return names.get(type(value), type(value).__name__)


def _shown(value: Any) -> str:
    if isinstance(value, int) and abs(value) > 10**12:
        return "a huge number"
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _key_label(key: Any) -> str:
    return key if isinstance(key, str) and len(key) <= 50 else _shown(key)


def _amount(value: float) -> str:
    return f"{value:.6f}".rstrip("0").rstrip(".") if isinstance(value, float) else str(value)
