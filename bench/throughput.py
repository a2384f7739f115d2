"""
Throughput and punctuality of the active scheduler: N interval jobs whose runs fall
due at a steady RATE runs/s (job i starts at t0 + i/RATE, every N/RATE seconds).

For each system, on a fresh set of tables in one PostgreSQL database:

* `threads`: `runscheduler` with its thread pool (the shipped default) running the
  no-op probe job; `tasks1`, `tasks2`, `tasks4`: tasks mode with that many
  django-tasks-db `db_worker` processes;
* `baseline`: `runscheduler` (thread pool) of another checkout (`--baseline-dir`,
  e.g. main before a change) on the same database;
* `celery`: django-celery-beat's DatabaseScheduler publishing the same schedules to
  Redis (`bench/requirements.txt`); its publish time stands for the run's start.

It reports, for the runs due in the measured window: achieved runs/s, missing runs
(due but not recorded as run), lateness (start minus due) p50/p95/p99/max over the
window and p99 over its last fifth (growing lateness means falling behind), the
scheduler's CPU seconds per 1,000 runs (and the workers' in tasks mode), and its RSS
at the start and end of the window. Our start time is `ExecutionRecord.started_at`;
a checkout that does not record it falls back to `DjangoJobExecution.finished`
(for a no-op job the end of the run, as its history shows it).

Run from the project root, PostgreSQL on 127.0.0.1:5432, Redis on 127.0.0.1:6379:

    .venv/bin/python -m bench.throughput --jobs 1000 --rate 100 --seconds 30 \\
        --systems threads,celery [--baseline-dir /tmp/main-checkout]
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench.common import ROOT, percentile, setup_django, wait_for_heartbeat

DATABASE_URL = "postgres://postgres@127.0.0.1:5432/bench_throughput"
REDIS_URL = "redis://127.0.0.1:6379/12"
NOOP = "probe.noop"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PROFILE_FORMATS = {".json": "speedscope", ".txt": "raw"}  # else an SVG flame graph


@dataclass
class Result:
    system: str
    expected: int
    runs: int = 0
    lateness: list[float] = field(default_factory=list)  # seconds, one per run
    tail_lateness: list[float] = field(default_factory=list)  # the window's last fifth
    cpu: float = 0.0
    worker_cpu: float | None = None
    rss_start_mb: float = 0.0
    rss_end_mb: float = 0.0
    seconds: float = 1.0
    note: str = ""

    def row(self) -> str:
        if not self.lateness:
            return f"| {self.system} | 0 | {self.expected} |{' - |' * 7} {self.note}"
        ms = [percentile(self.lateness, p) * 1000 for p in (50, 95, 99)]
        tail = percentile(self.tail_lateness, 99) * 1000 if self.tail_lateness else float("nan")
        per_1000 = self.cpu / self.runs * 1000
        workers = "" if self.worker_cpu is None else f" (+{self.worker_cpu / self.runs * 1000:.2f})"
        return (f"| {self.system} | {self.runs / self.seconds:.1f} | {self.expected - self.runs} | "
                f"{ms[0]:.1f} | {ms[1]:.1f} | {ms[2]:.1f} | {max(self.lateness) * 1000:.1f} | "
                f"{tail:.1f} | {per_1000:.2f}{workers} | "
                f"{self.rss_start_mb:.0f} → {self.rss_end_mb:.0f} | {self.note}")


HEADER = ("| system | runs/s | missing | p50 ms | p95 ms | p99 ms | max ms | p99 last 1/5 ms "
          "| CPU s / 1,000 runs | RSS MB | note |\n"
          "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---|")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=100.0, help="runs due per second")
    parser.add_argument("--seconds", type=float, default=30.0, help="measured window")
    parser.add_argument("--systems", default="threads,celery",
                        help="comma-separated: threads, tasks1, tasks2, tasks4, baseline, celery")
    parser.add_argument("--baseline-dir", type=Path, help="checkout whose manage.py is 'baseline'")
    parser.add_argument("--lead", type=float, default=None,
                        help="seconds from the end of the bulk load to the first due run "
                             "(default 10 s + 1 s per 10,000 jobs)")
    parser.add_argument("--profile", help="py-spy record the scheduler into this SVG/speedscope "
                                          "file (first scheduler system only)")
    options = parser.parse_args()
    # As deployed: with DEBUG every process also logs each query it makes.
    os.environ.setdefault("DJANGO_DEBUG", "0")
    os.environ["DJANGO_SETTINGS_MODULE"] = "bench.celery_settings"
    setup_django(DATABASE_URL)
    lead = options.lead if options.lead is not None else 10 + options.jobs / 10_000
    print(f"{options.jobs} jobs, {options.rate:g} runs/s due, {options.seconds:g} s window, "
          f"every job every {options.jobs / options.rate:g} s")
    print(HEADER)
    for system in options.systems.split(","):
        clear_tables()
        if system == "celery":
            result = run_celery(options.jobs, options.rate, options.seconds, lead)
        else:
            result = run_ours(system, options, lead)
            options.profile = None
        print(result.row(), flush=True)


def clear_tables() -> None:
    from django.apps import apps
    from django.db import connection

    tables = [model._meta.db_table
              for label in ("django_apscheduler", "scheduler_app", "django_tasks_database",
                            "django_celery_beat", "testapp")
              for model in apps.get_app_config(label).get_models()]
    with connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {', '.join(tables)} CASCADE")


# Our scheduler (and a baseline checkout of it)


def run_ours(system: str, options: argparse.Namespace, lead: float) -> Result:
    from scheduler_app import services

    services.sync_jobs_from_code()
    t0 = create_interval_jobs(options.jobs, options.rate, lead)
    mode = "threads" if system in ("threads", "baseline") else "tasks"
    cwd = ROOT
    if system == "baseline":
        if options.baseline_dir is None:
            raise SystemExit("--baseline-dir is needed for the 'baseline' system")
        cwd = options.baseline_dir.resolve()
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "bench.settings", "BENCH_EXECUTION": mode,
           "DATABASE_URL": DATABASE_URL}
    with (Path(tempfile.gettempdir()) / f"bench_throughput_{system}.log").open("w") as output:
        scheduler = subprocess.Popen([sys.executable, "manage.py", "runscheduler"], cwd=cwd,
                                     env=env, stdout=output, stderr=subprocess.STDOUT)
    workers = [subprocess.Popen([sys.executable, "manage.py", "db_worker", "--no-reload",
                                 "--no-startup-delay", "--interval", "0.05"], cwd=cwd, env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
               for _ in range(int(system[5:]) if system.startswith("tasks") else 0)]
    profiler = None
    try:
        wait_for_heartbeat(scheduler.pid, role="active", timeout=120)
        late_start = time.time() > t0
        sleep_until(t0)
        if options.profile:
            profiler = subprocess.Popen(
                [str(Path(sys.executable).parent / "py-spy"), "record", "--pid",
                 str(scheduler.pid), "--threads", "--idle",
                 "--duration", str(int(options.seconds)), "--output", options.profile,
                 "--format", PROFILE_FORMATS.get(Path(options.profile).suffix, "flamegraph")],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        rss_start = rss_mb(scheduler.pid)
        cpu_start = cpu_seconds(scheduler.pid)
        worker_cpu_start = sum(cpu_seconds(worker.pid) for worker in workers)
        sleep_until(t0 + options.seconds)
        cpu = cpu_seconds(scheduler.pid) - cpu_start
        worker_cpu = sum(cpu_seconds(worker.pid) for worker in workers) - worker_cpu_start
        rss_end = rss_mb(scheduler.pid)
        wait_for_outcomes(t0, options.seconds)
        if profiler is not None:
            profiler.wait(timeout=120)
    finally:
        for process in (scheduler, *workers):
            process.send_signal(signal.SIGTERM)
        for process in (scheduler, *workers):
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
    result = Result(system, expected=round(options.rate * options.seconds), cpu=cpu,
                    worker_cpu=worker_cpu if workers else None, rss_start_mb=rss_start,
                    rss_end_mb=rss_end, seconds=options.seconds,
                    note="late start" if late_start else "")
    collect_our_lateness(result, t0, options.seconds)
    return result


def create_interval_jobs(jobs: int, rate: float, lead: float) -> float:
    """`jobs` runtime jobs of the no-op probe, due from t0 at `rate` runs/s; returns t0."""
    from apscheduler.triggers.interval import IntervalTrigger
    from django.db import transaction
    from django_apscheduler.models import DjangoJob

    from scheduler_app.models import JobRecord
    from scheduler_app.state import dump_state, load_state

    template = load_state(DjangoJob.objects.get(id=NOOP).job_state)
    interval = jobs / rate
    t0 = time.time() + lead
    origin = datetime.fromtimestamp(t0, UTC)
    for first in range(0, jobs, 5000):
        rows, records = [], []
        for index in range(first, min(first + 5000, jobs)):
            start = origin + timedelta(seconds=index / rate)
            job_id = f"bench.{index:06d}"
            state = {**template, "id": job_id, "name": job_id, "next_run_time": start,
                     "trigger": IntervalTrigger(seconds=interval, start_date=start, timezone=UTC)}
            rows.append(DjangoJob(id=job_id, next_run_time=start, job_state=dump_state(state)))
            records.append(JobRecord(job_id=job_id, version=1, name=job_id,
                                     trigger_type="interval", origin=JobRecord.Origin.RUNTIME,
                                     function=NOOP))
        with transaction.atomic():
            DjangoJob.objects.bulk_create(rows)
            JobRecord.objects.bulk_create(records)
    vacuum_analyze()
    return t0


def vacuum_analyze() -> None:
    """Statistics for the bulk-loaded tables, as autovacuum would give them within a minute
    (without them the planner may scan the whole job table for the claim)."""
    from django.db import connection

    with connection.cursor() as cursor:
        for table in ("django_apscheduler_djangojob", "scheduler_app_jobrecord",
                      "django_celery_beat_periodictask"):
            cursor.execute(f"VACUUM ANALYZE {table}")


def wait_for_outcomes(t0: float, seconds: float, *, patience: float = 5.0) -> None:
    """Wait until the window's runs have settled (no new outcome for `patience` s)."""
    from django_apscheduler.models import DjangoJobExecution

    window = DjangoJobExecution.objects.filter(
        run_time__gte=datetime.fromtimestamp(t0, UTC),
        run_time__lt=datetime.fromtimestamp(t0 + seconds, UTC),
    ).exclude(status__in=[DjangoJobExecution.SENT, "Queued"])
    last, last_change = -1, time.monotonic()
    while time.monotonic() - last_change < patience:
        count = window.count()
        if count != last:
            last, last_change = count, time.monotonic()
        time.sleep(0.5)


def collect_our_lateness(result: Result, t0: float, seconds: float) -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT extract(epoch FROM e.run_time),
                   coalesce(extract(epoch FROM r.started_at), e.finished)
            FROM django_apscheduler_djangojobexecution e
            LEFT JOIN scheduler_app_executionrecord r ON r.execution_id = e.id
            WHERE e.status = 'Executed' AND e.job_id LIKE 'bench.%%'
              AND e.run_time >= to_timestamp(%s) AND e.run_time < to_timestamp(%s)
            """,
            [t0, t0 + seconds],
        )
        rows = cursor.fetchall()
    tail_from = t0 + seconds * 0.8
    for due, started in rows:
        late = float(started) - float(due)
        result.lateness.append(late)
        if float(due) >= tail_from:
            result.tail_lateness.append(late)
    result.runs = len(rows)


# django-celery-beat


def run_celery(jobs: int, rate: float, seconds: float, lead: float) -> Result:
    try:
        import redis
        from django_celery_beat.models import IntervalSchedule, PeriodicTask
    except ImportError:
        return Result("celery", expected=round(rate * seconds),
                      note="not installed: pip install -r bench/requirements.txt")
    interval = jobs / rate
    every = IntervalSchedule.objects.create(every=interval, period=IntervalSchedule.SECONDS)
    t0 = time.time() + lead
    origin = datetime.fromtimestamp(t0, UTC)
    tasks = []
    for index in range(jobs):
        start = origin + timedelta(seconds=index / rate)
        # Due first at `start`: beat runs an interval task once last_run_at +
        # interval has passed (a start_time would be rounded up to whole seconds).
        tasks.append(PeriodicTask(name=f"bench.{index:06d}", task="bench.noop",
                                  args=f"[{index}]", interval=every,
                                  last_run_at=start - timedelta(seconds=interval)))
    PeriodicTask.objects.bulk_create(tasks, batch_size=5000)
    vacuum_analyze()
    redis.Redis.from_url(REDIS_URL).flushdb()
    log_path = Path(tempfile.gettempdir()) / "bench_throughput_celery.log"
    publish_log = log_path.with_suffix(".publish")
    publish_log.write_text("")
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "bench.celery_settings",
           "DATABASE_URL": DATABASE_URL, "BENCH_REDIS_URL": REDIS_URL,
           "BENCH_CELERY_PUBLISH_LOG": str(publish_log)}
    with log_path.open("w") as output:
        beat = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "bench.celery_app", "beat",
             "--loglevel", "WARNING", "--schedule", os.devnull],
            cwd=ROOT, env=env, stdout=output, stderr=subprocess.STDOUT)
    try:
        late_start = time.time() > t0
        sleep_until(t0)
        rss_start, cpu_start = rss_mb(beat.pid), cpu_seconds(beat.pid)
        sleep_until(t0 + seconds)
        cpu = cpu_seconds(beat.pid) - cpu_start
        rss_end = rss_mb(beat.pid)
        time.sleep(5)  # publishes of the window's last runs
    finally:
        beat.send_signal(signal.SIGTERM)
        try:
            beat.wait(timeout=60)
        except subprocess.TimeoutExpired:
            beat.kill()
    publishes = defaultdict(list)
    for line in publish_log.read_text().splitlines():
        index, published = line.split()
        publishes[int(index)].append(float(published))
    redis.Redis.from_url(REDIS_URL).flushdb()
    result = Result("celery", expected=round(rate * seconds), cpu=cpu, rss_start_mb=rss_start,
                    rss_end_mb=rss_end, seconds=seconds, note="late start" if late_start else "")
    tail_from = t0 + seconds * 0.8
    for index, times in publishes.items():
        # The k-th publish of a task is its k-th run: due at start + k * interval.
        for k, published in enumerate(sorted(times)):
            due = t0 + index / rate + k * interval
            if due >= t0 + seconds:
                break
            result.lateness.append(published - due)
            if due >= tail_from:
                result.tail_lateness.append(published - due)
    result.runs = len(result.lateness)
    return result


# Process measurements


def sleep_until(moment: float) -> None:
    time.sleep(max(0.0, moment - time.time()))


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


if __name__ == "__main__":
    main()
