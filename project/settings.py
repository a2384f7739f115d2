"""
Settings for the demo project that hosts scheduler_app, and the production settings
an operator sets in the environment (see deploy/README.md):

- DJANGO_SECRET_KEY: required unless DJANGO_DEBUG=1;
- DJANGO_DEBUG: 1 for development (Django's debug pages); off otherwise;
- DJANGO_ALLOWED_HOSTS, DJANGO_CSRF_TRUSTED_ORIGINS: comma-separated;
- DATABASE_URL: the database; without it, an SQLite file beside this project,
  tuned for a web process and a scheduler process writing at once;
- DJANGO_CONN_MAX_AGE: seconds a database connection is reused across requests
  (default 60; 0 closes it after each request), with a health check before reuse;
- DJANGO_SECURE=1 behind HTTPS: secure cookies, HSTS, redirect to HTTPS, and the
  proxy's X-Forwarded-Proto trusted.
"""

import os
import sys
from datetime import timedelta
from pathlib import Path

import dj_database_url
import django


def _environment_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


BASE_DIR = Path(__file__).resolve().parent.parent

DEBUG = os.environ.get("DJANGO_DEBUG", "0") == "1"
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG:
        # One clear line instead of Django's traceback about an empty SECRET_KEY.
        sys.exit("DJANGO_SECRET_KEY is not set: set it (or DJANGO_DEBUG=1 for development).")
    SECRET_KEY = "insecure-development-key-debug-only"
ALLOWED_HOSTS = _environment_list("DJANGO_ALLOWED_HOSTS", "localhost,127.0.0.1")
CSRF_TRUSTED_ORIGINS = _environment_list("DJANGO_CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "axes",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_apscheduler",
    # Django's Tasks framework (for SCHEDULER_APP["EXECUTION"] = "tasks"): built in
    # from Django 6, the django-tasks backport before.
    *(["django_tasks"] if django.VERSION < (6, 0) else []),
    "django_tasks_db",
    "scheduler_app",
    "project",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Static files (admin, Swagger UI) from STATIC_ROOT, before anything else runs.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Turns django-axes' lock-out of a password guesser into a 429 answer; last, as
    # django-axes asks.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "project.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

WSGI_APPLICATION = "project.wsgi.application"
ASGI_APPLICATION = "project.asgi.application"

DEFAULT_SQLITE_PATH = BASE_DIR / "db.sqlite3"
DATABASES = {
    "default": dj_database_url.config(
        default=f"sqlite:///{DEFAULT_SQLITE_PATH}",
        # Web requests reuse their connection; the scheduler's threads keep theirs
        # anyway and reconnect after a database error (scheduler_app.scheduler).
        conn_max_age=int(os.environ.get("DJANGO_CONN_MAX_AGE", "60")),
        # A reused connection is checked before a request uses it: a database restart
        # costs no failed request.
        conn_health_checks=True,
    ),
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    _sqlite_path = Path(DATABASES["default"]["NAME"])
    DATABASES["default"]["OPTIONS"] = {
        # BEGIN IMMEDIATE takes the write lock at the start of every transaction:
        # two writers queue instead of failing with "database is locked" halfway.
        "transaction_mode": "IMMEDIATE",
        # Seconds a writer waits for the lock before giving up.
        "timeout": 20,
        # WAL lets readers (web requests) go on while the scheduler writes.
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
    # Tests use a file too, so that a real scheduler subprocess can share it.
    DATABASES["default"]["TEST"] = {
        "NAME": str(_sqlite_path.with_name(f"test_{_sqlite_path.stem}.sqlite3"))
    }

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTHENTICATION_BACKENDS = [
    # django-axes first: it refuses every login of a locked-out account or address.
    "axes.backends.AxesStandaloneBackend",
    # Django's ModelBackend, with a user's permissions read in one statement instead
    # of two ORM queries: the permission check of every API and admin request.
    "scheduler_app.auth_backends.ModelBackend",
]

# Password guessers (admin login form and the API's HTTP Basic authentication): after
# AXES_FAILURE_LIMIT wrong passwords for one username, or from one address, further
# logins of that username or from that address are refused with 429 for
# AXES_COOLOFF_TIME, the right password included.
AXES_FAILURE_LIMIT = int(os.environ.get("DJANGO_LOGIN_FAILURE_LIMIT", "5"))
AXES_COOLOFF_TIME = timedelta(minutes=int(os.environ.get("DJANGO_LOGIN_COOLOFF_MINUTES", "15")))
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
AXES_RESET_ON_SUCCESS = True
# Django's database sessions, treating a cookie that cannot be a session key (a NUL
# byte, which PostgreSQL refuses in a query) as no session.
SESSION_ENGINE = "scheduler_app.sessions"


AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = os.environ.get("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    # `collectstatic` writes compressed copies with content hashes in their names,
    # which whitenoise serves with far-future cache headers.
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}

if os.environ.get("DJANGO_SECURE", "0") == "1":
    # Behind HTTPS (a proxy that sets X-Forwarded-Proto): `check --deploy` is clean.
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = True
    # Load balancers probe the health endpoints over plain HTTP.
    SECURE_REDIRECT_EXEMPT = [r"^healthz(/|$)"]
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = int(os.environ.get("DJANGO_HSTS_SECONDS", str(365 * 24 * 3600)))
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True

SCHEDULER_APP = {}

REST_FRAMEWORK = {
    # Basic first: an anonymous request gets 401 with a WWW-Authenticate challenge
    # (session first would make it a 403). Session requests must carry a CSRF token.
    "DEFAULT_AUTHENTICATION_CLASSES": [
        # DRF's Basic authentication, answering 429 while django-axes locks the
        # username or address out.
        "scheduler_app.api.authentication.BasicAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    # Views that say nothing else are for staff only.
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAdminUser"],
    "DEFAULT_PARSER_CLASSES": ["scheduler_app.api.parsers.StrictJSONParser"],
    "DEFAULT_RENDERER_CLASSES": [
        "rest_framework.renderers.JSONRenderer",
        "rest_framework.renderers.BrowsableAPIRenderer",
    ],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "scheduler_app.api.exceptions.exception_handler",
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Scheduler API",
    "DESCRIPTION": """\
List, inspect, create, rename, delete, reschedule, pause, resume, run now and reset the
scheduler's jobs, and the
controls beyond those:

- **run policy**: `PUT jobs/{id}/policy/` with any of `max_instances` (≥ 1), `coalesce`,
  `misfire_grace_time` (seconds ≥ 1, or `null`: always run late runs) and
  `pause_after_failures` (≥ 1, or `null`: never); the scheduler pauses a job whose N-th run
  in a row fails ("Paused after N consecutive failures", `paused_by` "scheduler");
- **pause with a reason and an end**: `POST jobs/{id}/pause/` with an optional
  `{"reason": ..., "until": ISO 8601}`; the job shows `paused_reason`, `paused_by`,
  `paused_at`, `paused_until`, and the scheduler resumes it at `paused_until`;
- **run now with arguments**: `POST jobs/{id}/trigger/` with an optional `{"kwargs": {...}}`
  for this run only, bound against the function's signature (400 naming an unknown or
  missing parameter); a function declaring `scheduled_time` gets each run's scheduled time;
- **revert**: `POST jobs/{id}/revert/` with `{"version": N}` restores the schedule, policy and
  paused state right after version N ("Reverted to version N"; 409 if the trail lost it);
- **backfill**: `POST jobs/{id}/backfill/` with `{"start", "end"}` queues each run the
  schedule would have made in the range (at most BACKFILL_LIMIT), once per run time.

**Runtime jobs**: `POST jobs/` creates a job that calls a function registered with
`@job_function` (by its registered name; a dotted path is a 400), with `kwargs` checked
against its signature (an unknown or missing parameter: 400 naming it) and an optional run
policy; an id in use or declared in code: 409. `PATCH jobs/{id}/` changes a runtime job's
`name` and `kwargs`; `DELETE jobs/{id}/` deletes it (204; a job declared in code: 409), and
its executions and audit trail stay readable. Jobs show `origin` (`code` or `runtime`).

**Who**: staff users only. Reading needs the view (or change) permission on jobs
(`django_apscheduler.view_djangojob`), writing the change permission
(`django_apscheduler.change_djangojob`), creating a job the add permission and deleting
one the delete permission; superusers may do everything. Authenticate
with a session (browser; writes need the CSRF token) or HTTP Basic. Anonymous
requests get 401 with a `WWW-Authenticate: Basic` challenge; missing permission 403.
A burst of wrong passwords (5 for one username or from one address, by default) gets
429 with `Retry-After`: logins of that username and from that address are refused
for the cool-off time (15 minutes by default), the right password included.
Credentials or a session cookie holding bytes no user or session can have (a NUL
byte) are treated as none: 401. With HTTP Basic credentials the body is read before the
password is tried: a body that is not JSON is a 415, malformed JSON a 400, on any
operation.

**Writes** take `application/json` only (anything else: 415), at most 64 KiB, and an
optional `If-Match` with the job's version (`"7"` or `7`; `*` = any). A stale
`If-Match` gets 412 with `current_version` and changes nothing; a malformed one 400.
Every write answer carries the job's version in `ETag`, and pause, resume, schedule,
policy, revert and reset say what they did in `X-Scheduler-Message` (pausing a paused job is a 200
that changes nothing: "Job is already paused.").

**Schedules**: an interval shorter than `SCHEDULER_APP["MIN_INTERVAL"]` (1 s) is a 400
naming the field. A job with a trigger this API has no fields for (another app's)
reads as trigger `custom` with its own description and fire times. After a downtime,
a run's `skipped_runs` says how many missed runs were skipped before it.

**Errors** are JSON: `{"detail": ..., "code": ...}`, plus `errors` (messages by field:
`trigger_args.minutes`, `If-Match`, `page_size`, `body`) on every 400. A refused
request changes nothing. Each operation lists every status it can answer; an `Accept`
header naming neither JSON nor HTML gets 406.

**Runs** carry `run_time` (when due), `started` (when the run really started; null
until then) and `lateness` (seconds from one to the other).

**Metrics** for Prometheus are outside this API, at `GET /metrics` (bearer
`SCHEDULER_APP["METRICS_TOKEN"]` or a staff session that may view jobs).
""",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # The schema and its docs are for the same staff as the API.
    "SERVE_PERMISSIONS": ["scheduler_app.api.permissions.CanManageJobs"],
    # Swagger UI from drf-spectacular-sidecar's static files: no CDN, works offline.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain"},
    },
    "loggers": {
        "scheduler_app": {"handlers": ["console"], "level": "INFO", "propagate": False},
        "project": {"handlers": ["console"], "level": "INFO", "propagate": False},
        "apscheduler": {"handlers": ["console"], "level": "WARNING", "propagate": False},
    },
}

TASKS = {
    "default": {"BACKEND": "django_tasks_db.DatabaseBackend"},
}
