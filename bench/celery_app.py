"""The baseline for `bench.throughput`: django-celery-beat's DatabaseScheduler on Redis.

Run as `celery -A bench.celery_app beat`; every task it publishes is logged (job
index, publish time) to BENCH_CELERY_PUBLISH_LOG, the publish time standing for
the run's start. Nothing consumes the queue: beat's part ends with the publish.
"""

from __future__ import annotations

import os
import time

import django
from celery import Celery
from celery.signals import after_task_publish

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.celery_settings")
django.setup()

app = Celery("bench")
app.conf.update(
    broker_url=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/12"),
    beat_scheduler="django_celery_beat.schedulers:DatabaseScheduler",
    timezone="UTC",
    enable_utc=True,
)

_log = open(os.environ.get("BENCH_CELERY_PUBLISH_LOG", os.devnull), "a", buffering=1)  # noqa: SIM115


@after_task_publish.connect
def _log_publish(sender: str | None = None, body: object = None, **_: object) -> None:
    args = body[0] if isinstance(body, tuple | list) else []
    if args:
        _log.write(f"{args[0]} {time.time():.6f}\n")
