"""Test settings: the demo project plus an app whose jobs let tests watch real runs."""

import os

from project.settings import *  # noqa: F403

INSTALLED_APPS = [*INSTALLED_APPS, "tests.testapp"]  # noqa: F405

# Fast propagation, short back-off and a short lease, so tests with real scheduler
# processes (failover included) finish quickly.
SCHEDULER_APP = {
    "POLL_INTERVAL": 0.1,
    "MAX_RETRY_DELAY": 1.0,
    "HEARTBEAT_INTERVAL": float(os.environ.get("TEST_HEARTBEAT_INTERVAL", 0.5)),
    "LEASE_TTL": float(os.environ.get("TEST_LEASE_TTL", 3.0)),
    # Tests of the Tasks framework mode and of lease hand-over start their
    # schedulers with these (and the two above) set.
    "EXECUTION": os.environ.get("TEST_SCHEDULER_EXECUTION", "threads"),
    "LOST_RUN_TIMEOUT": float(os.environ.get("TEST_LOST_RUN_TIMEOUT", 3600)),
}

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
