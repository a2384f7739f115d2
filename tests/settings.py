"""Test settings: the demo project plus an app whose jobs let tests watch real runs."""

from project.settings import *  # noqa: F403

INSTALLED_APPS = [*INSTALLED_APPS, "tests.testapp"]  # noqa: F405

# Fast propagation, short back-off and a short lease, so tests with real scheduler
# processes (failover included) finish quickly.
SCHEDULER_APP = {
    "POLL_INTERVAL": 0.1,
    "MAX_RETRY_DELAY": 1.0,
    "HEARTBEAT_INTERVAL": 0.5,
    "LEASE_TTL": 3.0,
}

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
