"""
Waiting for a run-now request to finish, for `scheduler trigger --wait`.

The command does not run the job itself (web and command processes never do): it
watches the request row until the scheduler process claims it, then the execution
the scheduler records under the request's run time, until that run finishes.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from scheduler_app.models import RunRequest
from scheduler_app.selectors import ExecutionView

POLL_INTERVAL = 0.1


@dataclass(frozen=True)
class RunOutcome:
    """Where a run request got to: finished, skipped, or still on its way at the deadline."""

    run_request: RunRequest
    execution: ExecutionView | None

    @property
    def finished(self) -> bool:
        return self.execution is not None and self.execution.has_outcome

    @property
    def skipped(self) -> bool:
        """The scheduler will not run it: skipped, or expired before any claimed it."""
        return self.run_request.status in (RunRequest.Status.SKIPPED, RunRequest.Status.EXPIRED)


def wait_for_run(run_request: RunRequest, *, timeout: float) -> RunOutcome:
    """Poll the database until the run finishes or is skipped, or `timeout` seconds pass."""
    deadline = time.monotonic() + timeout
    while True:
        outcome = _current_outcome(run_request)
        if outcome.finished or outcome.skipped or time.monotonic() >= deadline:
            return outcome
        time.sleep(POLL_INTERVAL)


def _current_outcome(run_request: RunRequest) -> RunOutcome:
    run_request.refresh_from_db()
    row = run_request.execution
    return RunOutcome(
        run_request=run_request, execution=ExecutionView.from_row(row) if row else None
    )
