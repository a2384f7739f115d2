"""The rule of issue 13, in general: one bad job degrades one job.

Hypothesis stores a job in any state other code or a bad deploy could leave behind
(garbage bytes, foreign and failing trigger types, missing or non-text functions,
extreme values, no `JobRecord`) next to the healthy declared jobs, then calls every
read path (`READ_PATHS`: the API's list, detail, executions, changes and status; the
admin's job list, change page, dashboard, run list, audit trail and alert log; every
read command of `manage.py scheduler`; `GET /metrics` with the bearer token and with
a staff session, in both formats) and one scheduler pass. Nothing may answer 5xx or
raise, the other jobs must read exactly as before, and the pass must claim a healthy
job that is due.
"""

from __future__ import annotations

import json
import os
import pickle
from datetime import UTC, datetime, timedelta
from io import StringIO
from typing import Any

import pytest
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.combining import AndTrigger, OrTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger
from django.apps import apps
from django.contrib import admin
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command
from django.db import transaction
from django.test import Client
from django.urls import resolve
from django_apscheduler.models import DjangoJob
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as openmetrics_families,
)
from prometheus_client.parser import text_string_to_metric_families

from scheduler_app.api import urls as api_urls
from scheduler_app.management.commands.scheduler import Command as SchedulerCommand
from scheduler_app.models import JobRecord
from scheduler_app.scheduler import JOBSTORE_ALIAS, Scheduler
from scheduler_app.state import dump_state, load_state
from tests.conftest import edit_stored_job

# The suite runs the same few examples every time, so CI cannot fail on a case no
# earlier run tried; HYPOTHESIS_HUNT=200 runs that many random ones to look for more.
HUNT = int(os.environ.get("HYPOTHESIS_HUNT", "0"))

BAD = "bad.job"
HEALTHY = "probe.record"
API = "/api/scheduler"
METRICS_TOKEN = "scrape-me-0123456789"
OPENMETRICS = "application/openmetrics-text; version=1.0.0"

# Every read path of issue 13's rule, by front door (a test below checks that none is
# missing). The admin's and the API's are under their prefixes.
READ_PATHS = {
    "api": ("", "jobs/?page_size=100", f"jobs/{BAD}/", f"jobs/{BAD}/executions/",
            f"jobs/{BAD}/changes/", "executions/", "status/", "jobs/?trigger=cron",
            "jobs/?ordering=-next_run_time", f"jobs/?search={BAD}", "jobs/?enabled=false"),
    "admin": ("job/", f"job/{BAD}/change/", "job/dashboard/", "run/", "jobchange/",
              f"jobchange/?job_id={BAD}", "alert/", "job/?q=bad", "job/?enabled=no",
              "job/?broken=yes", "job/?trigger=custom"),
    # Over all jobs: each must succeed. About the bad job: a refusal naming the problem
    # (CommandError) is fine, a crash is not.
    "cli": (["list"], ["list", "--json"], ["list", "--paused"], ["list", "--broken"],
            ["history"], ["history", "--json"], ["changes"], ["changes", "--json"],
            ["alerts"], ["alerts", "--json"], ["status"], ["status", "--json"], ["export"]),
    "cli about the bad job": (["show", BAD], ["show", BAD, "--json"], ["history", BAD],
                              ["history", BAD, "--json"], ["changes", BAD],
                              ["alerts", BAD], ["status", "--check"]),
}
# The `scheduler` subcommands that change something (all the others read).
WRITE_COMMANDS = {"create", "delete", "import", "pause", "resume", "trigger", "reschedule",
                  "policy", "revert", "backfill", "reset", "prune"}


class EveryOtherHourTrigger(BaseTrigger):
    """A trigger class of another app: a schedule this project has no fields for."""

    def get_next_fire_time(self, previous_fire_time, now):
        start = previous_fire_time or now
        return start.replace(minute=0, second=0, microsecond=0) + timedelta(hours=2)

    def __str__(self) -> str:
        return "every other hour"


class FailingTrigger(BaseTrigger):
    """A trigger class whose every method fails."""

    def get_next_fire_time(self, previous_fire_time, now):
        raise RuntimeError("the other app's trigger broke")

    def __str__(self) -> str:
        raise RuntimeError("cannot describe itself either")


class Rollback(Exception):
    """Ends an example's transaction so the next one starts from the same store."""


def _cron(hour: int) -> CronTrigger:
    return CronTrigger(hour=hour, timezone=UTC)


TRIGGERS = st.one_of(
    st.just(OrTrigger([_cron(1), _cron(2)])),
    st.just(AndTrigger([_cron(3), CronTrigger(day_of_week="mon", timezone=UTC)])),
    st.just(EveryOtherHourTrigger()),
    st.just(FailingTrigger()),
    st.just(IntervalTrigger(seconds=0.000001, timezone=UTC)),  # stored behind the checks
    st.just(IntervalTrigger(weeks=5000, timezone=UTC)),
    st.just(DateTrigger(datetime(9999, 12, 31, tzinfo=UTC))),
    st.just(CronTrigger(year=2001, timezone=UTC)),  # never fires again
    st.sampled_from(["*/5 * * * *", None, 42, b"\x00"]),
)
MOMENTS = st.sampled_from([
    None,
    datetime(1, 1, 2, tzinfo=UTC),
    datetime(2000, 1, 1, tzinfo=UTC),
    datetime.now(UTC) - timedelta(hours=1),
    datetime(9999, 12, 30, tzinfo=UTC),
])
ODD_VALUES = st.one_of(
    st.none(), st.integers(-(2**70), 2**70), st.text(max_size=30), st.binary(max_size=10),
    st.floats(allow_nan=True), st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=3), st.binary(max_size=3) | st.floats(), max_size=2),
)
STATE_CHANGES = st.fixed_dictionaries(
    {"trigger": TRIGGERS, "next_run_time": MOMENTS},
    optional={
        "func": st.sampled_from(["no.such.module:gone", "os:system", "", 42, None]),
        "name": ODD_VALUES,
        "args": ODD_VALUES,
        "kwargs": ODD_VALUES,
        "max_instances": ODD_VALUES,
        "misfire_grace_time": ODD_VALUES,
        "coalesce": ODD_VALUES,
        "executor": st.sampled_from(["gone", None]),
    },
)
STORED_STATES = st.one_of(
    STATE_CHANGES.map(lambda changes: ("state", changes)),
    st.binary(max_size=64).map(lambda garbage: ("bytes", garbage)),
    st.sampled_from([pickle.dumps(None), pickle.dumps({"trigger": 1}), pickle.dumps([1, 2])])
    .map(lambda pickled: ("bytes", pickled)),
)


def store_bad_job(kind: str, value: Any, *, with_record: bool) -> None:
    """Store a job behind the services' back, as other code or a bad deploy would."""
    healthy_state = load_state(DjangoJob.objects.get(id=HEALTHY).job_state)
    next_run_time = None
    if kind == "state":
        state = {**healthy_state, "id": BAD, **value}
        job_state = dump_state(state)
        next_run_time = value["next_run_time"]
    else:
        job_state = value
        next_run_time = datetime.now(UTC) - timedelta(minutes=1)
    DjangoJob.objects.create(id=BAD, job_state=job_state, next_run_time=next_run_time)
    if with_record:
        JobRecord.objects.create(job_id=BAD, version=1, name="bad", trigger_type="cron")


def read_everything(api: Client, admin: Client) -> dict[str, Any]:
    """Every read path once; returns what the healthy jobs look like through them."""
    for path in READ_PATHS["api"]:
        response = api.get(f"{API}/{path}")
        assert response.status_code < 500, (path, response.content[:500])
    for path in READ_PATHS["admin"]:
        response = admin.get(f"/admin/scheduler_app/{path}")
        assert response.status_code < 500, (path, response.content[:500])
    for command in READ_PATHS["cli"]:
        call_command("scheduler", *command, stdout=StringIO(), stderr=StringIO())
    for command in READ_PATHS["cli about the bad job"]:
        try:
            call_command("scheduler", *command, stdout=StringIO(), stderr=StringIO())
        except CommandError:
            pass
    return healthy_jobs_everywhere(api, with_bad=True)


def healthy_jobs_everywhere(api: Client, *, with_bad: bool) -> dict[str, Any]:
    """The healthy jobs as the API's list, the command line's and the metrics show them
    (with the bad job listed in each, `with_bad`)."""
    listing = api.get(f"{API}/jobs/?page_size=100")
    assert listing.status_code == 200, listing.content[:500]
    jobs = listing.json()["results"]
    listed = json.loads(_command_output("list", "--json"))
    assert {job["id"] for job in listed} == {job["id"] for job in jobs}
    assert (BAD in {job["id"] for job in jobs}) == with_bad, "the bad job is not listed"
    return {"jobs": healthy_jobs(jobs), "command line": healthy_jobs(listed),
            "metrics": scrape_healthy_jobs(api, with_bad=with_bad)}


def _command_output(*command: str) -> str:
    out = StringIO()
    call_command("scheduler", *command, stdout=out, stderr=StringIO())
    return out.getvalue()


def healthy_jobs(jobs: list[dict[str, Any]]) -> dict[str, Any]:
    # Whatever could change with the clock (next run times, upcoming) is left out.
    return {job["id"]: (job["name"], job["trigger"], job["trigger_args"], job["version"],
                        job["enabled"], job["broken"])
            for job in jobs if job["id"] != BAD}


def scrape_healthy_jobs(staff: Client, *, with_bad: bool) -> dict[tuple[Any, ...], float]:
    """GET /metrics with the bearer token and with a staff session, in Prometheus text and
    OpenMetrics: each answers, and all agree on the healthy jobs' samples (returned)."""
    scrapes = []
    for client, headers in ((Client(), {"HTTP_AUTHORIZATION": f"Bearer {METRICS_TOKEN}"}),
                            (staff, {})):
        for accept, parse in (("", text_string_to_metric_families),
                              (OPENMETRICS, openmetrics_families)):
            response = client.get("/metrics", HTTP_ACCEPT=accept, **headers)
            assert response.status_code == 200, response.content[:500]
            families = list(parse(response.content.decode()))
            described = {sample.labels["job"] for family in families
                         for sample in family.samples if family.name == "scheduler_job_info"}
            assert (BAD in described) == with_bad, "the bad job is not in the metrics"
            scrapes.append({
                (sample.name, tuple(sorted(sample.labels.items()))): sample.value
                for family in families for sample in family.samples
                if sample.labels.get("job") not in (None, BAD)
            })
    assert all(scrape == scrapes[0] for scrape in scrapes), "the scrapes disagree"
    assert {labels for _, labels in scrapes[0]} >= {(("job", HEALTHY),)}
    return scrapes[0]


class OnePass(Scheduler):
    """The scheduler process's pass, with the runs it would start collected instead: they
    would run in threads, on connections that cannot see the example's transaction."""

    def __init__(self) -> None:
        super().__init__()
        self.started: list[str] = []
        self.jobstore.start(self, JOBSTORE_ALIAS)
        assert self.leadership.refresh(), "the pass could not take the lease"

    def _submit_isolated(self, run: Any) -> None:
        self.started.append(run.job.id)


@pytest.fixture
def clients(synced, settings) -> tuple[Client, Client]:
    settings.SCHEDULER_APP = {**settings.SCHEDULER_APP, "METRICS_TOKEN": METRICS_TOKEN}
    user = User.objects.create_superuser("root", password="x")
    api, admin = Client(), Client()
    api.force_login(user)
    admin.force_login(user)
    return api, admin


@given(stored=STORED_STATES, with_record=st.booleans())
@settings(max_examples=HUNT or 5, derandomize=not HUNT, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
def test_no_stored_state_takes_down_a_read_path_the_scheduler_or_another_job(
    clients, stored, with_record
):
    api, admin = clients
    healthy_before = healthy_jobs_everywhere(api, with_bad=False)
    try:
        with transaction.atomic():
            store_bad_job(*stored, with_record=with_record)
            assert read_everything(api, admin) == healthy_before

            # One scheduler pass with a healthy job due: it is claimed whatever the bad
            # one holds, and the bad one never ends the pass (which would back off).
            now = datetime.now(UTC)
            edit_stored_job(HEALTHY, trigger=IntervalTrigger(minutes=1, timezone=UTC),
                            next_run_time=now - timedelta(seconds=1))
            scheduler = OnePass()
            scheduler._process_jobs()
            assert scheduler.retry_delay == 0, "the pass failed and backs off"
            assert HEALTHY in scheduler.started
            read_everything(api, admin)
            raise Rollback
    except Rollback:
        pass


def test_every_read_path_of_every_front_door_is_in_the_property_test(db):
    api_routes = {
        pattern.name for pattern in api_urls.urlpatterns
        if "get" in getattr(pattern.callback, "actions", {"get": "root or status"})
        and pattern.name != "unknown"
    }
    called = {resolve(f"{API}/{path}".partition("?")[0]).url_name for path in READ_PATHS["api"]}
    assert called == api_routes

    admin_lists = {
        f"{model._meta.model_name}/" for model in apps.get_app_config("scheduler_app").get_models()
        if admin.site.is_registered(model)
    }
    assert admin_lists | {f"job/{BAD}/change/", "job/dashboard/"} <= set(READ_PATHS["admin"])

    subcommands = {name.removeprefix("handle_") for name in dir(SchedulerCommand)
                   if name.startswith("handle_")}
    called = {command[0] for key in ("cli", "cli about the bad job") for command in READ_PATHS[key]}
    assert called == subcommands - WRITE_COMMANDS
