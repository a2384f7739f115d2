"""
The pickled job state in `DjangoJob.job_state`, read and written as a plain dict.

APScheduler 3 pickles `Job.__getstate__()`: a dict whose `func` is a textual
reference ("module:qualname"). Unpickling the dict needs APScheduler's trigger
classes but never the job's function, so reads keep working for a job whose code
is gone, and web processes never import job code from the database.
"""

from __future__ import annotations

import math
import pickle
from datetime import datetime
from typing import Any

from apscheduler.util import ref_to_obj

from scheduler_app import triggers

PICKLE_PROTOCOL = pickle.HIGHEST_PROTOCOL


class UnreadableState(Exception):
    """The stored bytes are not a job state this APScheduler version can read."""


def load_state(job_state: bytes | memoryview) -> dict[str, Any]:
    """The job state dict stored in a `DjangoJob.job_state` column."""
    try:
        state = pickle.loads(bytes(job_state))
    except Exception as error:  # a corrupt or foreign pickle can raise anything
        raise UnreadableState(str(error)) from error
    if not isinstance(state, dict) or "trigger" not in state or "func" not in state:
        raise UnreadableState("not an APScheduler 3 job state")
    return state


def dump_state(state: dict[str, Any]) -> bytes:
    return pickle.dumps(state, PICKLE_PROTOCOL)


def function_is_importable(func_ref: str) -> bool:
    """Whether a stored function reference still resolves to a callable."""
    try:
        return callable(ref_to_obj(func_ref))
    except Exception:  # an import can fail with any error, SyntaxError included
        return False


def json_value(value: Any) -> Any:
    """A value from a stored state as JSON carries it, for the API and the audit trail.

    Job arguments are any Python values code gave (a date, bytes, an object), and
    other code may store anything: JSON's own values stay as they are, anything else
    (a float JSON has no number for included) becomes its repr, as the admin shows it.
    """
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float) and math.isfinite(value):
        return value
    if isinstance(value, list | tuple):
        return [json_value(item) for item in value]
    if isinstance(value, dict):
        return {str(key): json_value(item) for key, item in value.items()}
    return repr(value)


# `JobRecord.func_ref` holds references up to this long; a longer one is not kept.
MAX_FUNC_REF_LENGTH = 255


def func_ref_of(state: dict[str, Any]) -> str | None:
    """What `JobRecord.func_ref` records of a state (None: not a reference it can keep)."""
    func_ref = state.get("func")
    if isinstance(func_ref, str) and len(func_ref) <= MAX_FUNC_REF_LENGTH:
        return func_ref
    return None


def record_mirror(state: dict[str, Any]) -> dict[str, Any]:
    """The `JobRecord` fields that mirror a state, which every writer of the state
    stores in the same transaction: its trigger type, its function reference and
    (for APScheduler's own triggers) its schedule in words; None where not known.
    Readers that trust them spare unpickling every state (`selectors`)."""
    trigger = state.get("trigger")
    schedule = None
    if triggers.is_standard(trigger):
        try:
            schedule = triggers.Schedule(trigger).describe()
        except Exception:  # a trigger stored behind the checks: readers read the state
            schedule = None
    return {"trigger_type": trigger_type_name(trigger), "func_ref": func_ref_of(state),
            "schedule": schedule}


def isoformat(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def trigger_type_name(trigger: Any) -> str:
    """"cron", "interval" or "date" for APScheduler's triggers, else "custom"."""
    from apscheduler.triggers.cron import CronTrigger
    from apscheduler.triggers.date import DateTrigger
    from apscheduler.triggers.interval import IntervalTrigger

    names = {CronTrigger: "cron", IntervalTrigger: "interval", DateTrigger: "date"}
    return names.get(type(trigger), "custom")
