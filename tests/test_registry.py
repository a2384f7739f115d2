"""Declaring jobs in code with @scheduled_job."""

from __future__ import annotations

import pytest

from scheduler_app import scheduled_job
from scheduler_app.exceptions import DuplicateJobId, InvalidTrigger
from scheduler_app.registry import registry


@pytest.fixture
def forget():
    """Remove the declarations a test makes, so the registry stays as code left it."""
    declared: list[str] = []
    yield declared.append
    for job_id in declared:
        registry.remove(job_id)


def test_jobs_py_of_every_installed_app_is_discovered():
    assert {"reports.weekly", "sessions.clear_expired", "probe.record"} <= {
        declaration.id for declaration in registry
    }


def refresh_rates(a, b):
    """Refresh exchange rates.

    Longer explanation that is not part of the description."""


def send_invoices():
    pass


def send_reminders():
    pass


def test_id_defaults_to_module_and_function_name(forget):
    forget("tests.test_registry.refresh_rates")
    scheduled_job("interval", minutes=5, args=(1,), kwargs={"b": 2})(refresh_rates)

    declaration = registry.get("tests.test_registry.refresh_rates")
    assert declaration.name == "Refresh rates"
    assert declaration.trigger_spec == {"trigger": "interval", "trigger_args": {"minutes": 5}}
    assert (declaration.args, declaration.kwargs) == ((1,), {"b": 2})
    assert declaration.description == "Refresh exchange rates."


def test_two_functions_with_one_id_fail_naming_both(forget):
    forget("billing.invoice")
    scheduled_job("cron", hour=1, id="billing.invoice")(send_invoices)
    scheduled_job("cron", hour=1, id="billing.invoice")(send_invoices)  # a re-import is fine

    with pytest.raises(DuplicateJobId) as error:
        scheduled_job("cron", hour=2, id="billing.invoice")(send_reminders)

    message = str(error.value)
    assert "'billing.invoice'" in message
    assert "tests.test_registry:send_invoices" in message
    assert "tests.test_registry:send_reminders" in message


def test_nested_function_is_refused_with_a_clear_error():
    def local_job():
        pass

    with pytest.raises(ValueError, match="module-level function"):
        scheduled_job("interval", minutes=1, id="nested.job")(local_job)


def test_invalid_default_schedule_fails_at_declaration():
    with pytest.raises(InvalidTrigger, match="minutes"):
        scheduled_job("interval", minutes=-1, id="never.declared")(send_invoices)

    assert registry.get("never.declared") is None


def test_unknown_trigger_type_is_refused():
    with pytest.raises(ValueError, match="cron, interval, date"):
        scheduled_job("weekly")


def test_job_functions_are_registered_by_name_and_declared_jobs_are_schedulable(forget):
    from scheduler_app import job_function
    from scheduler_app.exceptions import DuplicateFunctionName, InvalidInput

    job_function("test.refresh_rates")(refresh_rates)
    forget("test.refresh_rates")
    function = registry.get_function("test.refresh_rates")
    assert function.func is refresh_rates
    assert function.description == "Refresh exchange rates."
    assert [parameter.name for parameter in function.parameters] == ["a", "b"]
    assert registry.get_function("probe.record").func_ref == "tests.testapp.jobs:record_run"
    job_function("test.refresh_rates")(refresh_rates)  # a re-import is no conflict
    with pytest.raises(DuplicateFunctionName):
        job_function("test.refresh_rates")(send_invoices)
    with pytest.raises(InvalidInput):
        job_function("bad name with spaces")
