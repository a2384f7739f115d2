"""Test settings: the demo project plus an app whose jobs let tests watch real runs."""

import os

# Production settings refuse to start without a key; tests need none of their own.
os.environ.setdefault("DJANGO_SECRET_KEY", "tests-only-not-a-secret")

from project.settings import *  # noqa: E402, F403

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
    "QUEUED_RUN_TIMEOUT": float(os.environ.get("TEST_QUEUED_RUN_TIMEOUT", 3600)),
    # Tests of runs claimed ahead of their time widen the window a change can land in.
    "CLAIM_AHEAD": float(os.environ.get("TEST_CLAIM_AHEAD", 0.05)),
}
# Tests of alerts start their schedulers with a webhook on a loopback server.
if os.environ.get("TEST_ALERT_WEBHOOK_URL"):
    SCHEDULER_APP["ALERTS"] = {
        "webhooks": [{"url": os.environ["TEST_ALERT_WEBHOOK_URL"], "secret": "test-secret"}],
        "timeout": float(os.environ.get("TEST_ALERT_TIMEOUT", 5)),
        "retries": int(os.environ.get("TEST_ALERT_RETRIES", 3)),
    }

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

# Static files from the apps' folders (whitenoise finds them there), without
# `collectstatic` and its manifest.
STATIC_ROOT = None
WHITENOISE_USE_FINDERS = True
STORAGES = {
    **STORAGES,  # noqa: F405
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
