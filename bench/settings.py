"""Benchmark settings: the test project (for its probe jobs) with product defaults.

BENCH_NOTIFICATIONS picks how the scheduler learns of changes ("notify" or "poll");
everything else keeps the shipped SCHEDULER_APP defaults, so the figures are what a
deployment gets.
"""

import os

from tests.settings import *  # noqa: F403

SCHEDULER_APP = {"NOTIFICATIONS": os.environ.get("BENCH_NOTIFICATIONS", "auto")}
LOGGING = {"version": 1, "disable_existing_loggers": False}
SCHEDULER_APP["EXECUTION"] = os.environ.get("BENCH_EXECUTION", "threads")
