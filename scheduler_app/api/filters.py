"""
Query parameters of the scheduler API's lists, validated like a body.

An unknown value gets a 400 naming the parameter instead of being silently
ignored, so a typo in a filter never passes for an empty or unfiltered list.
"""

from __future__ import annotations

from typing import Any

from rest_framework import serializers
from rest_framework.request import Request

from scheduler_app import selectors, triggers


class JobFilterSerializer(serializers.Serializer):
    """Filters and ordering of the job list."""

    enabled = serializers.BooleanField(
        required=False, help_text="true: jobs on their schedule; false: paused jobs."
    )
    trigger = serializers.ChoiceField(choices=sorted(triggers.ALLOWED_ARGS), required=False)
    origin = serializers.ChoiceField(
        choices=["code", "runtime"], required=False,
        help_text="code: declared in jobs.py; runtime: created through a front door.",
    )
    search = serializers.CharField(
        required=False, max_length=200, help_text="Part of a job's id or name, any case."
    )
    ordering = serializers.ChoiceField(
        choices=selectors.JOB_ORDERINGS,
        required=False,
        help_text="Paused jobs (no next run time) come last either way.",
    )


class ExecutionFilterSerializer(serializers.Serializer):
    """Filters of the execution list."""

    job = serializers.CharField(required=False, max_length=255, help_text="A job id.")
    status = serializers.ChoiceField(
        choices=sorted(selectors.EXECUTION_STATUS_SLUGS.values()), required=False
    )


def query_filters(serializer_class: type[serializers.Serializer], request: Request) -> Any:
    """The validated filters of a list request; 400 for a bad one."""
    # A plain dict, not the QueryDict: with HTML-form input DRF reads a missing
    # boolean as False, which would turn "no filter" into "paused jobs only".
    serializer = serializer_class(data=request.query_params.dict())
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data
