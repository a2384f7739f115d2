"""The API's job and run serializers give the JSON DRF's field-by-field walk gives.

They build it directly, for speed; these tests hold the two paths together for
every kind of job the store can hold, in more than one time zone.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from django_apscheduler.models import DjangoJobExecution
from rest_framework import serializers

from scheduler_app import selectors, services
from scheduler_app.api.serializers import ExecutionSerializer, JobSerializer
from tests.conftest import break_function_reference, record_execution


def drf_representation(serializer: serializers.Serializer, instance: object) -> dict:
    """What DRF's own Serializer.to_representation makes of `instance` with these fields."""
    return dict(serializers.Serializer.to_representation(serializer, instance))


def assert_same_json(serializer: serializers.Serializer, instance: object) -> None:
    ours, drfs = serializer.to_representation(instance), drf_representation(serializer, instance)
    assert ours == drfs
    assert list(ours) == list(drfs)  # the same key order, too
    if ours.get("last_execution"):
        assert list(ours["last_execution"]) == list(drfs["last_execution"])


def all_kinds_of_jobs() -> list[selectors.JobView]:
    services.pause_job(job_id="monitoring.heartbeat", actor="a", source="api")
    break_function_reference("cache.warm")
    record_execution(
        "reports.weekly", minutes_ago=2, status=DjangoJobExecution.ERROR, exception="boom"
    )
    record_execution("probe.record", minutes_ago=0.5)
    return selectors.job_views(selectors.job_queryset())


@pytest.mark.parametrize("zone", ["UTC", "Europe/Paris", "America/St_Johns"])
def test_job_json_is_what_drfs_fields_make_of_it(synced, settings, zone):
    settings.TIME_ZONE = zone
    views = all_kinds_of_jobs()
    kinds = {(view.enabled, view.broken, view.last_execution is None) for view in views}
    assert len(kinds) >= 4  # running, paused, broken, with and without a run

    for view in views:
        with timezone.override(zone):
            assert_same_json(JobSerializer(), view)


def test_run_json_is_what_drfs_fields_make_of_it(synced):
    record_execution(
        "reports.weekly", minutes_ago=2, status=DjangoJobExecution.ERROR, exception="boom"
    )
    run = DjangoJobExecution.objects.create(
        job_id="probe.record", status=DjangoJobExecution.SENT,
        run_time=timezone.now() - timedelta(seconds=3),
    )
    views = [selectors.ExecutionView.from_row(row) for row in DjangoJobExecution.objects.all()]
    assert {view.id for view in views} >= {run.id}

    for view in views:
        assert_same_json(ExecutionSerializer(), view)
