"""System checks name a bad SCHEDULER_APP setting before anything runs."""

from django.core.checks import run_checks
from django.test import override_settings


def error_ids() -> set[str]:
    return {message.id for message in run_checks() if message.id.startswith("scheduler_app")}


def test_default_settings_pass():
    assert error_ids() == set()


@override_settings(SCHEDULER_APP={"POLL_INTERVAL": 0, "THREADS": "ten", "TIMEZONE": "Mars/Base",
                                  "NOTIFICATIONS": "smoke", "POLL_INTERVALL": 1})
def test_each_bad_value_is_reported():
    assert error_ids() == {
        "scheduler_app.E002", "scheduler_app.E003", "scheduler_app.E004",
        "scheduler_app.E005", "scheduler_app.E006",
    }


@override_settings(SCHEDULER_APP={"BACKFILL_LIMIT": 0})
def test_a_backfill_limit_below_one_is_named():
    messages = [str(message.msg) for message in run_checks() if message.id == "scheduler_app.E004"]
    assert messages == ["SCHEDULER_APP['BACKFILL_LIMIT'] must be an integer >= 1."]


@override_settings(SCHEDULER_APP={"QUEUED_RUN_TIMEOUT": -1})
def test_a_queued_run_timeout_that_is_not_positive_is_named():
    messages = [str(message.msg) for message in run_checks() if message.id == "scheduler_app.E003"]
    assert messages == ["SCHEDULER_APP['QUEUED_RUN_TIMEOUT'] must be a positive number."]


def test_claiming_runs_ahead_takes_zero_to_one_second():
    def messages(value: object) -> list[str]:
        with override_settings(SCHEDULER_APP={"CLAIM_AHEAD": value}):
            return [str(m.msg) for m in run_checks() if m.id == "scheduler_app.E012"]

    assert messages(0) == messages(0.05) == messages(1) == []
    for bad in (-0.1, 1.5, "soon", True, None):
        assert messages(bad) == [
            "SCHEDULER_APP['CLAIM_AHEAD'] must be a number of seconds from 0 to 1."
        ], bad
