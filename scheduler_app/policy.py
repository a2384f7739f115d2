"""
A job's run policy: how many runs may overlap, what happens to late runs, when
repeated failures pause the job, and how long it may go without a success before
it is overdue (`alert_after`, see `scheduler_app.alerts`).

Three of its fields are APScheduler's own and live in the pickled job state
(`max_instances`, `coalesce`, `misfire_grace_time`); `pause_after_failures` and
`alert_after` are ours and live on `JobRecord`, where the scheduler counts failures
in a row. Code
declares the defaults (`@scheduled_job(..., pause_after_failures=3)`), operators
change them at runtime (`services.set_job_policy`), `reset` restores them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from scheduler_app.exceptions import InvalidPolicy

# The fields, in the order the API, the admin and the CLI show them.
POLICY_FIELDS = (
    "max_instances", "coalesce", "misfire_grace_time", "pause_after_failures", "alert_after",
)
# The ones APScheduler keeps in the job state.
STATE_FIELDS = ("max_instances", "coalesce", "misfire_grace_time")
# Which fields take null, and what null means.
NULLABLE = {
    "misfire_grace_time": "always run late runs",
    "pause_after_failures": "never pause",
    "alert_after": "SCHEDULER_APP['ALERT_AFTER']",
}


def validate_policy(changes: Mapping[str, Any]) -> dict[str, Any]:
    """Check a (partial) policy; return it, or raise `InvalidPolicy` naming the field.

    Booleans are not integers here, though Python says they are: `max_instances:
    true` is a client's mistake, not 1.
    """
    unknown = sorted(str(key) for key in changes if key not in POLICY_FIELDS)
    if unknown:
        raise InvalidPolicy(
            f"unknown field; a run policy has {', '.join(POLICY_FIELDS)}.", field=unknown[0]
        )
    if not changes:
        raise InvalidPolicy(f"give at least one of {', '.join(POLICY_FIELDS)}.")
    for name, value in changes.items():
        if name == "coalesce":
            if not isinstance(value, bool):
                raise InvalidPolicy("must be true or false.", field=name)
        elif value is None:
            if name not in NULLABLE:
                raise InvalidPolicy("must be a whole number of at least 1.", field=name)
        elif isinstance(value, bool) or not isinstance(value, int) or value < 1:
            meaning = f", or null ({NULLABLE[name]})" if name in NULLABLE else ""
            raise InvalidPolicy(f"must be a whole number of at least 1{meaning}.", field=name)
        elif value > 2**31 - 1:
            raise InvalidPolicy("is too large.", field=name)
    return dict(changes)


def policy_of(
    state: Mapping[str, Any], *, pause_after_failures: int | None, alert_after: int | None
) -> dict[str, Any]:
    """The fields of a stored job's policy, from its state and its record."""
    return {
        **{name: state.get(name) for name in STATE_FIELDS},
        "pause_after_failures": pause_after_failures,
        "alert_after": alert_after,
    }
