"""
What the store learns when a run starts and when it ends.

Both execution modes (the scheduler's thread pool, and task workers in "tasks"
mode) record a run's start and outcome through these functions and nowhere else,
so lateness, the run counters behind the Prometheus metrics and the incidents that
alerts are raised from stay the same whichever mode ran the job.
"""

from __future__ import annotations

import logging
from datetime import datetime

from django.db import DatabaseError
from django.utils import timezone

from scheduler_app.models import ExecutionRecord

logger = logging.getLogger(__name__)


def record_run_started(*, job_id: str, run_time: datetime) -> None:
    """Record that the run of `job_id` due at `run_time` starts now (its lateness).

    A database error is logged, not raised: the run goes ahead without its start time.
    """
    try:
        ExecutionRecord.objects.filter(
            execution__job_id=job_id, execution__run_time=run_time
        ).update(started_at=timezone.now())
    except DatabaseError as error:
        logger.warning("Could not record the start of %r at %s: %s", job_id, run_time, error)
