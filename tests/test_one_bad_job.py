"""The rule of issue 13, in general: one bad job degrades one job.

Hypothesis stores a job in any state other code or a bad deploy could leave behind
(garbage bytes, foreign and failing trigger types, missing or non-text functions,
extreme values, no `JobRecord`) next to the healthy declared jobs, then calls every
read path (API list, detail, executions, changes and status; the admin's job list,
change page, dashboard and run list; every read command of `manage.py scheduler`)
and one scheduler claim. Nothing may answer 5xx or raise, and the other jobs must
read exactly as before.
"""

from __future__ import annotations

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
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command
from django.db import transaction
from django.test import Client
from django_apscheduler.models import DjangoJob
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scheduler_app.jobstore import JobStore
from scheduler_app.models import JobRecord
from scheduler_app.state import dump_state, load_state
from tests.conftest import edit_stored_job

BAD = "bad.job"
HEALTHY = "probe.record"
API = "/api/scheduler"


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
    listing = api.get(f"{API}/jobs/?page_size=100")
    assert listing.status_code == 200, listing.content[:500]
    for path in (f"{API}/jobs/{BAD}/", f"{API}/jobs/{BAD}/executions/",
                 f"{API}/jobs/{BAD}/changes/", f"{API}/executions/", f"{API}/status/",
                 f"{API}/jobs/?trigger=cron", f"{API}/jobs/?ordering=-next_run_time"):
        response = api.get(path)
        assert response.status_code < 500, (path, response.content[:500])
    for path in ("/admin/scheduler_app/job/", f"/admin/scheduler_app/job/{BAD}/change/",
                 "/admin/scheduler_app/job/dashboard/", "/admin/scheduler_app/run/",
                 "/admin/scheduler_app/change/"):
        response = admin.get(path)
        assert response.status_code < 500, (path, response.content[:500])
    for command in (["list"], ["list", "--json"], ["show", BAD], ["show", BAD, "--json"],
                    ["history"], ["history", BAD, "--json"], ["changes"], ["status"],
                    ["status", "--json"]):
        try:
            call_command("scheduler", *command, stdout=StringIO(), stderr=StringIO())
        except CommandError:  # a refusal that names the problem is fine; a crash is not
            pass
    jobs = listing.json()["results"]
    assert BAD in {job["id"] for job in jobs}, "the bad job is not listed"
    # Whatever could change with the clock (next run times, upcoming) is left out.
    return {job["id"]: (job["name"], job["trigger"], job["trigger_args"], job["version"],
                        job["enabled"], job["broken"])
            for job in jobs if job["id"] != BAD}


@pytest.fixture
def clients(synced) -> tuple[Client, Client]:
    user = User.objects.create_superuser("root", password="x")
    api, admin = Client(), Client()
    api.force_login(user)
    admin.force_login(user)
    return api, admin


@given(stored=STORED_STATES, with_record=st.booleans())
@settings(max_examples=5, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
def test_no_stored_state_takes_down_a_read_path_the_scheduler_or_another_job(
    clients, stored, with_record
):
    api, admin = clients
    healthy_before = read_everything_without_bad(api)
    try:
        with transaction.atomic():
            store_bad_job(*stored, with_record=with_record)
            assert read_everything(api, admin) == healthy_before

            # One scheduler claim with a healthy job due: it is claimed whatever the
            # bad one holds, and the bad one never ends the pass.
            now = datetime.now(UTC)
            edit_stored_job(HEALTHY, trigger=IntervalTrigger(minutes=1, timezone=UTC),
                            next_run_time=now - timedelta(seconds=1))
            claimed = JobStore().claim_due_jobs(now)
            assert HEALTHY in {run.job.id for run in claimed}
            read_everything(api, admin)
            raise Rollback
    except Rollback:
        pass


def read_everything_without_bad(api: Client) -> dict[str, Any]:
    jobs = api.get(f"{API}/jobs/?page_size=100").json()["results"]
    return {job["id"]: (job["name"], job["trigger"], job["trigger_args"], job["version"],
                        job["enabled"], job["broken"])
            for job in jobs}
