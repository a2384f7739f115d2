"""`manage.py scheduler create|delete|import|export`: runtime jobs from the command line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from django.core.management.base import CommandError
from django_apscheduler.models import DjangoJob

from scheduler_app import selectors, services, triggers
from scheduler_app.cli import imports
from scheduler_app.models import JobChange, JobRecord
from scheduler_app.state import load_state
from tests.test_cli import refused, scheduler

pytestmark = pytest.mark.django_db

FUNCTION = "probe.customer_report"
SCRIPT = "<script>alert(1)</script>"


def line(job_id: str, **changes: object) -> str:
    return json.dumps({
        "id": job_id, "function": FUNCTION, "name": f"Report {job_id}", "trigger": "interval",
        "trigger_args": {"hours": 1}, "kwargs": {"customer_id": 1}, **changes,
    })


def write_lines(tmp_path: Path, lines: list[str]) -> str:
    path = tmp_path / "jobs.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def runtime_ids() -> list[str]:
    return list(JobRecord.objects.filter(origin="runtime", deleted_at=None)
                .order_by("job_id").values_list("job_id", flat=True))


def test_create_with_kwargs_and_a_cron_schedule(synced):
    result = scheduler("create", "customer.42", "--function", FUNCTION, "--cron", "30 7 * * *",
                       "--kwarg", "customer_id=42", "--kwarg", 'label="monthly"',
                       "--kwarg", "pages=3", "--name", SCRIPT)
    assert "customer.42: Job created. Version 1." in result.stdout
    job = selectors.get_job(job_id="customer.42")
    assert job.kwargs == {"customer_id": 42, "label": "monthly", "pages": 3}
    assert (job.origin, job.function, job.name) == ("runtime", FUNCTION, SCRIPT)
    assert job.trigger_args["hour"] == "7"
    change = JobChange.objects.get(job_id="customer.42")
    assert (change.action, change.source) == ("created", "cli")
    # Operator text is printed as it is: a terminal does not run HTML.
    assert "customer.42" in scheduler("list").stdout
    assert SCRIPT in scheduler("show", "customer.42").stdout


def test_create_with_an_interval_and_plain_text_kwargs(synced):
    scheduler("create", "customer.7", "--function", FUNCTION, "--interval", "5m",
              "--kwarg", "customer_id=7", "--kwarg", "label=plain text", "--max-instances", "2")
    job = selectors.get_job(job_id="customer.7")
    assert job.kwargs == {"customer_id": 7, "label": "plain text"}
    assert (job.trigger, job.max_instances) == ("interval", 2)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (("--function", "tests.testapp.jobs:customer_report", "--interval", "5m",
          "--kwarg", "customer_id=1"), "is not a registered job function"),
        (("--function", FUNCTION, "--interval", "5m"),
         "kwargs.customer_id: customer_report() needs a value for 'customer_id'"),
        (("--function", FUNCTION, "--interval", "5m", "--kwarg", "customer_id=1",
          "--kwarg", "colour=red"), "kwargs.colour: customer_report() has no parameter 'colour'"),
        (("--function", FUNCTION, "--interval", "5m", "--kwarg", "customer_id=1",
          "--name", "a\x1b[31mred"), "name: must not contain control characters"),
    ],
)
def test_create_refuses_bad_input_and_writes_nothing(synced, arguments, message):
    error = refused("create", "new.job", *arguments)
    assert message in str(error)
    assert not DjangoJob.objects.filter(id="new.job").exists()


def test_create_refuses_a_taken_id(synced):
    error = refused("create", "reports.weekly", "--function", FUNCTION, "--interval", "5m",
                    "--kwarg", "customer_id=1")
    assert "declared in code" in str(error)


def test_delete_a_runtime_job_and_refuse_a_code_job(synced):
    scheduler("create", "customer.1", "--function", FUNCTION, "--interval", "5m",
              "--kwarg", "customer_id=1")
    assert "customer.1: Job deleted." in scheduler("delete", "customer.1").stdout
    assert "customer.1" not in scheduler("list").stdout
    assert "deleted" in scheduler("changes", "customer.1").stdout
    error = refused("delete", "reports.weekly")
    assert "declared in code: remove it from jobs.py" in str(error)
    assert DjangoJob.objects.get(id="reports.weekly").next_run_time is not None


def test_import_creates_then_updates_and_is_idempotent(synced, tmp_path):
    path = write_lines(tmp_path, [line(f"bulk.{n}") for n in range(5)])
    assert "5 jobs created, 0 updated, 0 unchanged." in scheduler("import", path).stdout
    assert "0 jobs created, 0 updated, 5 unchanged." in scheduler("import", path).stdout
    path = write_lines(tmp_path, [line("bulk.0", kwargs={"customer_id": 9}),
                                  line("bulk.1", trigger="cron", trigger_args={"minute": 5}),
                                  line("bulk.2"), "", line("bulk.5")])
    assert "1 job created, 2 updated, 1 unchanged." in scheduler(
        "import", path, "--batch-size", "2").stdout
    assert selectors.get_job(job_id="bulk.0").kwargs == {"customer_id": 9}
    assert selectors.get_job(job_id="bulk.1").trigger_args["minute"] == "5"
    assert JobChange.objects.filter(job_id="bulk.0").first().action == "updated"
    assert selectors.get_job(job_id="bulk.0").version == 2


def test_a_bad_line_in_the_middle_refuses_its_batch_only(synced, tmp_path):
    lines = [line(f"bulk.{n}") for n in range(6)]
    lines[3] = line("bulk.3", kwargs={"customer_id": 1, "colour": "red"})
    path = write_lines(tmp_path, lines)
    with pytest.raises(CommandError) as raised:
        scheduler("import", path, "--batch-size", "2")
    assert "1 bad line(s)" in str(raised.value)
    # Lines 3 and 4 are one batch: neither is written; the batches around them are.
    assert runtime_ids() == ["bulk.0", "bulk.1", "bulk.4", "bulk.5"]
    assert not JobChange.objects.filter(job_id__in=["bulk.2", "bulk.3"]).exists()


def test_a_line_that_is_not_json_is_reported_with_its_number(synced, tmp_path, capsys):
    path = write_lines(tmp_path, [line("bulk.0"), "{not json", line("bulk.2"), line("bulk.3")])
    from io import StringIO

    from django.core.management import call_command
    stderr = StringIO()
    with pytest.raises(CommandError):
        call_command("scheduler", "import", path, "--batch-size", "2", stderr=stderr,
                     stdout=StringIO())
    assert "line 2: not a JSON object" in stderr.getvalue()
    assert runtime_ids() == ["bulk.2", "bulk.3"]


@pytest.mark.parametrize(
    "bad",
    [
        line("bulk.dup"),  # the same id twice in one batch
        line("reports.weekly"),  # declared in code
        line("bulk.x", function="os:system"),
        json.dumps([1, 2]),
    ],
)
def test_import_refuses_duplicates_code_ids_and_bad_functions(synced, tmp_path, bad):
    path = write_lines(tmp_path, [line("bulk.dup"), bad])
    with pytest.raises(CommandError):
        scheduler("import", path)
    assert runtime_ids() == []


def test_export_prints_what_import_reads_back(synced, tmp_path):
    scheduler("create", "customer.42", "--function", FUNCTION, "--cron", "30 7 * * 1-5",
              "--timezone", "Europe/Paris", "--kwarg", "customer_id=42", "--name", SCRIPT)
    scheduler("create", "customer.7", "--function", FUNCTION, "--interval", "90s",
              "--kwarg", "customer_id=7", "--misfire-grace", "30")
    exported = scheduler("export").stdout.splitlines()
    assert [json.loads(text)["id"] for text in exported] == ["customer.42", "customer.7"]
    first = json.loads(exported[0])
    assert first["function"] == FUNCTION and first["kwargs"] == {"customer_id": 42}
    assert first["name"] == SCRIPT
    before = {job_id: bytes(DjangoJob.objects.get(id=job_id).job_state)
              for job_id in ("customer.42", "customer.7")}
    path = write_lines(tmp_path, exported)
    assert "2 unchanged" in scheduler("import", path).stdout
    assert before == {job_id: bytes(DjangoJob.objects.get(id=job_id).job_state)
                      for job_id in before}
    scheduler("delete", "customer.42")
    scheduler("delete", "customer.7")
    assert "2 jobs created" in scheduler("import", path).stdout
    state = load_state(DjangoJob.objects.get(id="customer.7").job_state)
    assert state["misfire_grace_time"] == 30


# An import builds each distinct schedule once and writes its rows in bulk (COPY on
# PostgreSQL); what it stores must be what creating each job alone stores.
DEFINITIONS = [
    {"trigger": "cron", "trigger_args": {"hour": 7, "minute": 30}, "kwargs": {"customer_id": 1}},
    {"trigger": "cron", "trigger_args": {"minute": 30, "hour": 7}, "kwargs": {"customer_id": 2},
     "name": SCRIPT},
    {"trigger": "cron", "trigger_args": {"crontab": "*/5 9-17 * * 1-5",
                                         "timezone": "Europe/Paris"},
     "kwargs": {"customer_id": 3, "label": "weekly", "pages": 2}, "max_instances": 3},
    {"trigger": "interval", "trigger_args": {"minutes": 90,
                                             "start_date": "2026-01-01T00:10:00+00:00"},
     "kwargs": {"customer_id": 4}, "coalesce": False, "misfire_grace_time": None},
    {"trigger": "interval", "trigger_args": {"hours": 2, "start_date": "2026-01-01T00:00:00Z"},
     "kwargs": {"customer_id": 5}, "pause_after_failures": 3},
    {"trigger": "date", "trigger_args": {"run_date": "2999-01-31T09:00:00+01:00"},
     "kwargs": {"customer_id": 6}},
]


def stored_job(job_id: str) -> dict[str, object]:
    """Everything a created job is made of, as the store holds it, but its id."""
    row = DjangoJob.objects.select_related("record").get(id=job_id)
    state = load_state(row.job_state)
    change = JobChange.objects.get(job_id=job_id)
    record = row.record
    summary = {**change.after, "next_run_time": None}
    state_fields = {key: value for key, value in state.items() if key not in ("id", "trigger")}
    return {
        "state": {**state_fields, "trigger": triggers.trigger_fields(state["trigger"])},
        "next_run_time": row.next_run_time,
        "record": (record.version, record.name, record.origin, record.function,
                   record.func_ref, record.trigger_type, record.pause_after_failures),
        "change": (change.version, change.action, change.actor, change.source,
                   change.before, summary, change.message),
    }


def test_an_import_stores_exactly_what_creating_each_job_alone_stores(synced):
    lines = []
    for number, definition in enumerate(DEFINITIONS * 2):
        body = {"function": FUNCTION, "name": f"Report {number}", **definition}
        services.create_job(definition={**body, "id": f"alone.{number}"},
                            actor="someone", source="cli")
        lines.append(json.dumps({**body, "id": f"bulk.{number}"}))

    report = imports.import_lines(lines, batch_size=4, actor="someone", source="cli")

    for number in range(len(lines)):
        assert stored_job(f"bulk.{number}") == stored_job(f"alone.{number}")
    assert report.created == len(lines)
    assert stored_job("bulk.0")["record"][4] == "tests.testapp.jobs:customer_report"
