"""
The admin's forms: a schedule (a trigger type and its fields, or a crontab line), and the
rest of a new job's definition.

Neither is a ModelForm: the pickled `job_state` is never edited. The schedule form only
collects a trigger spec and validates it with `scheduler_app.triggers.build_trigger`,
the same validation the API and the commands use; each `InvalidTrigger` is shown on
the field it names. Saving goes through `services.reschedule_job` with the version the
form was loaded with, so a stale form is refused instead of overwriting a newer change.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.date import DateTrigger
from django import forms

from scheduler_app import triggers
from scheduler_app.conf import app_settings
from scheduler_app.exceptions import InvalidTrigger
from scheduler_app.selectors import JobView

PREVIEW_COUNT = 5
CRONTAB = "crontab"
MODES = (
    ("cron", "Cron, field by field"),
    (CRONTAB, "Cron, as a crontab line"),
    ("interval", "Every fixed interval"),
    ("date", "Once, at a date and time"),
)
# Crontab's order first, then the fields crontab lacks.
CRON_FIELD_ORDER = ("minute", "hour", "day", "month", "day_of_week", "second", "week", "year")
# The form's fields in groups, each shown for the modes it names; a mode sends the
# fields of its groups to the trigger module as trigger_args.
FIELDSETS = (
    (("cron",), "Cron fields", CRON_FIELD_ORDER),
    ((CRONTAB,), "Crontab", (CRONTAB,)),
    (("interval",), "Interval", triggers.INTERVAL_UNITS),
    (("date",), "Date", ("run_date",)),
    (("cron", CRONTAB, "interval"), "Limits", ("start_date", "end_date", "jitter")),
    (("cron", CRONTAB, "interval", "date"), "Time zone", ("timezone",)),
)
MODE_FIELDS = {
    mode: tuple(name for modes, _, names in FIELDSETS if mode in modes for name in names)
    for mode, _ in MODES
}
DATE_HELP = "ISO 8601, e.g. 2027-01-31T09:00:00; without an offset it is a wall time in the zone."


@dataclass(frozen=True)
class FireTime:
    """One previewed run: when, in the job's time zone, and any daylight-saving warning."""

    at: datetime
    warning: str | None

    @property
    def display(self) -> str:
        return f"{self.at:%a %Y-%m-%d %H:%M:%S} {self.at.tzname()}"

    def as_json(self) -> dict[str, Any]:
        return {"at": self.at.isoformat(), "display": self.display, "warning": self.warning}


def _text_field(label: str, **kwargs: Any) -> forms.CharField:
    return forms.CharField(label=label, required=False, max_length=triggers.MAX_STRING_LENGTH,
                           **kwargs)


class ScheduleForm(forms.Form):
    """A new schedule for one job, and the job version the form was loaded with."""

    version = forms.IntegerField(widget=forms.HiddenInput, min_value=0)
    trigger = forms.ChoiceField(label="Schedule type", choices=MODES, widget=forms.RadioSelect)

    crontab = _text_field(
        "Crontab line",
        help_text="Five fields: minute hour day-of-month month day-of-week (0 and 7 are Sunday), "
        "or an alias like @daily.",
        widget=forms.TextInput(attrs={"placeholder": "*/5 * * * *"}),
    )
    second = _text_field("Second")
    minute = _text_field("Minute")
    hour = _text_field("Hour")
    day = _text_field("Day of month")
    month = _text_field("Month")
    day_of_week = _text_field("Day of week", help_text="0 = Monday, or mon-sun, as APScheduler.")
    week = _text_field("ISO week")
    year = _text_field("Year")

    weeks = forms.FloatField(label="Weeks", required=False)
    days = forms.FloatField(label="Days", required=False)
    hours = forms.FloatField(label="Hours", required=False)
    minutes = forms.FloatField(label="Minutes", required=False)
    seconds = forms.FloatField(label="Seconds", required=False)

    run_date = _text_field("Run at", help_text=DATE_HELP)
    start_date = _text_field("Start", help_text=DATE_HELP)
    end_date = _text_field("End", help_text=DATE_HELP)
    timezone = _text_field(
        "Time zone",
        help_text="An IANA name like Europe/Paris; empty means the scheduler's time zone.",
        widget=forms.TextInput(attrs={"list": "scheduler-time-zones"}),
    )
    jitter = forms.IntegerField(
        label="Jitter", required=False, help_text="Seconds of random delay added to each run."
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["timezone"].widget.attrs["placeholder"] = app_settings.timezone.key
        self.trigger_spec: dict[str, Any] | None = None
        self.built_trigger: BaseTrigger | None = None

    def fieldsets(self) -> list[tuple[str, str, list[forms.BoundField]]]:
        """(space-separated modes, title, bound fields) for the template to show by mode."""
        return [(" ".join(modes), title, [self[name] for name in names])
                for modes, title, names in FIELDSETS]

    @classmethod
    def initial_for(cls, job: JobView) -> dict[str, Any]:
        """Initial values showing a job's current schedule, for an unbound form."""
        args = {key: value for key, value in job.trigger_args.items() if value is not None}
        return {"version": job.version, "trigger": job.trigger or "cron", **args}

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        mode = cleaned.get("trigger")
        if mode is None or self.errors:
            return cleaned
        trigger_args = {
            name: self._spec_value(cleaned.get(name))
            for name in MODE_FIELDS[mode]
            if cleaned.get(name) not in (None, "")
        }
        spec = {"trigger": "cron" if mode == CRONTAB else mode, "trigger_args": trigger_args}
        try:
            self.built_trigger = triggers.build_trigger(spec, timezone=app_settings.timezone)
        except InvalidTrigger as error:
            self.add_trigger_error(error)
        else:
            self.trigger_spec = spec
        return cleaned

    def preview(self, *, now: datetime | None = None) -> list[FireTime]:
        """The next fire times of the valid schedule, with daylight-saving warnings."""
        assert self.built_trigger is not None, "preview() needs a valid form"
        times = triggers.preview_fire_times(self.built_trigger, count=PREVIEW_COUNT, now=now)
        return [FireTime(at=moment, warning=self._dst_warning(moment)) for moment in times]

    def _dst_warning(self, moment: datetime) -> str | None:
        trigger = self.built_trigger
        if isinstance(trigger, DateTrigger):
            return _date_gap_warning(self.cleaned_data.get("run_date"), moment) or _repeat_warning(
                moment
            )
        if isinstance(trigger, CronTrigger):
            return _cron_gap_warning(trigger, moment) or _repeat_warning(moment)
        # Interval triggers count elapsed time: a clock change neither skips nor repeats a run.
        return None

    @staticmethod
    def _spec_value(value: Any) -> Any:
        # The trigger module wants whole numbers as int, and rejects a float jitter.
        if isinstance(value, float) and value.is_integer():
            return int(value)
        return value.strip() if isinstance(value, str) else value

    def add_trigger_error(self, error: InvalidTrigger) -> None:
        """Show a trigger error on the field it names ("trigger_args.minute"), else on top."""
        name = (error.field or "").removeprefix("trigger_args.")
        self.add_error(name if name in self.fields else None, error.detail)


def _repeat_warning(moment: datetime) -> str | None:
    """Warn when a wall time happens twice because the clocks go back that night."""
    other = moment.replace(fold=1 - moment.fold)
    if other.utcoffset() == moment.utcoffset():
        return None
    which = "second" if moment.fold else "first"
    return (
        f"{moment:%H:%M} happens twice on {moment:%Y-%m-%d} (clocks go back): this run is at "
        f"the {which} {moment:%H:%M}, UTC{moment:%z}."
    )


def _cron_gap_warning(trigger: CronTrigger, moment: datetime) -> str | None:
    """Warn when a cron run moved because its wall time was skipped (clocks went forward).

    APScheduler then fires at the first existing time after the gap, a time the cron
    fields do not match; a run that matches its fields is a regular one.
    """
    if all(field.get_next_value(moment) == field.get_value(moment) for field in trigger.fields):
        return None
    return _gap_message(moment)


def _date_gap_warning(run_date: str | None, moment: datetime) -> str | None:
    """Warn when a one-off run's wall time does not exist and was moved forward."""
    try:
        wanted = datetime.fromisoformat(run_date or "")
    except ValueError:
        return None
    if wanted.tzinfo is not None or wanted == moment.replace(tzinfo=None):
        return None
    return _gap_message(moment)


def _gap_message(moment: datetime) -> str:
    return (
        f"Its wall time does not exist on {moment:%Y-%m-%d} (clocks go forward that night): "
        f"it runs at {moment:%H:%M} {moment.tzname()} instead."
    )


class JobDefinitionForm(forms.Form):
    """What the admin's "Add job" page asks besides the schedule: id, name, function,
    keyword arguments and run policy.

    Only the shape is checked here; `services.create_job` checks the content (a
    registered function, kwargs bound to its signature, printable id and name), the
    same way for every front door, and the page shows its errors on these fields.
    """

    id = forms.CharField(
        label="Job id", max_length=10_000,
        help_text="Printable, without spaces or slashes, e.g. reports.customer.42.",
    )
    name = forms.CharField(label="Name", required=False, max_length=10_000,
                           help_text="Shown in every list; defaults to the id.")
    function = forms.ChoiceField(label="Function", help_text="A function registered in code "
                                 "with @job_function (or a declared job's).")
    kwargs = forms.CharField(
        label="Keyword arguments", required=False, initial="{}",
        widget=forms.Textarea(attrs={"rows": 6, "cols": 60, "class": "scheduler-json"}),
        help_text='A JSON object, checked against the function\'s parameters, e.g. '
        '{"customer_id": 42}.',
    )
    max_instances = forms.IntegerField(label="Max instances", min_value=1, initial=1)
    coalesce = forms.BooleanField(label="Coalesce missed runs", required=False, initial=True)
    misfire_grace_time = forms.IntegerField(
        label="Misfire grace time", min_value=1, required=False,
        initial=app_settings.MISFIRE_GRACE_TIME,
        help_text="Seconds a late run may still start; empty: however late.",
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        from scheduler_app.registry import registry

        super().__init__(*args, **kwargs)
        self.fields["function"].choices = [
            (function.name, function.name) for function in registry.functions()
        ]

    def clean_kwargs(self) -> Any:
        text = self.cleaned_data["kwargs"].strip() or "{}"
        try:
            return json.loads(text)
        except ValueError as error:
            raise forms.ValidationError(f"Not JSON: {error}.") from None

    def definition(self, schedule: dict[str, Any]) -> dict[str, Any]:
        """The job definition (`scheduler_app.definitions`) of this form and a trigger spec."""
        data = self.cleaned_data
        definition = {
            "id": data["id"],
            "function": data["function"],
            **schedule,
            "kwargs": data["kwargs"],
            "max_instances": data["max_instances"],
            "coalesce": data["coalesce"],
            "misfire_grace_time": data["misfire_grace_time"],
        }
        if data["name"]:
            definition["name"] = data["name"]
        return definition

    def add_definition_error(self, field: str, message: str) -> None:
        """Show a refusal on the field it names ("kwargs.customer_id" on kwargs), else on top."""
        name, _, parameter = field.partition(".")
        if name in self.fields:
            self.add_error(name, f"{parameter}: {message}" if parameter else message)
        else:
            self.add_error(None, f"{field}: {message}")
