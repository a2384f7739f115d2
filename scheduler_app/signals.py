"""
Signals the scheduler sends when something about a job needs an operator.

One signal per alert event. Each is sent once per incident (a job failing five
times in a row sends `run_failed` once), after the transaction that recorded the
cause has committed, with these keyword arguments:

- `event`: the event name (`run_failed`, `run_missed`, `job_overdue`,
  `job_auto_paused`, `job_recovered`), the same as the signal's name here;
- `job`: the job id;
- `run_time`: the run the alert is about (an aware date-time), or None;
- `message`: one line for a human;
- `occurred_at`: when the alert was raised (an aware date-time).

The sender is the string "scheduler_app". Raise an alert with
`scheduler_app.alerts.raise_alert`, not by sending a signal yourself: it dedupes,
honours `alerts=False`, logs the alert and hands it to the configured channels
(`SCHEDULER_APP["ALERTS"]`). Receivers run in the process that raised the alert
(the active scheduler, or a task worker in "tasks" mode) and must be quick: a slow
receiver delays the recording of the next outcome.
"""

from __future__ import annotations

from django.dispatch import Signal

run_failed = Signal()
run_missed = Signal()
job_overdue = Signal()
job_auto_paused = Signal()
job_recovered = Signal()

ALERT_SIGNALS: dict[str, Signal] = {
    "run_failed": run_failed,
    "run_missed": run_missed,
    "job_overdue": job_overdue,
    "job_auto_paused": job_auto_paused,
    "job_recovered": job_recovered,
}
