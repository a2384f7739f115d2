"""`bench.settings` plus django-celery-beat, for the baseline of `bench.throughput`.

Beat gets persistent database connections: with Django's default CONN_MAX_AGE = 0
its `schedule_changed()` (which calls `close_old_connections()`) opens a new
PostgreSQL connection at every tick, which caps it at about 30 publishes/s here.
The baseline is celery-beat as its users would tune it.
"""

from bench.settings import *  # noqa: F403

INSTALLED_APPS = [*INSTALLED_APPS, "django_celery_beat"]  # noqa: F405
DATABASES["default"]["CONN_MAX_AGE"] = 600  # noqa: F405
