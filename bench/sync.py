"""
The start-up sync's cost with many jobs declared in code, on PostgreSQL.

`runscheduler` syncs every declared job before its first pass. This declares N
copies of the no-op probe, syncs once (they are added), then again, as a restart
with nothing changed does, and prints both times.

    .venv/bin/python -m bench.sync --declared 10000
"""

from __future__ import annotations

import argparse
import os
import time
from dataclasses import replace

from bench.common import setup_django

DATABASE_URL = "postgres://postgres@127.0.0.1:5432/bench_throughput_sync"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--declared", type=int, default=10_000)
    options = parser.parse_args()
    os.environ.setdefault("DJANGO_DEBUG", "0")
    setup_django(DATABASE_URL)
    from scheduler_app import services
    from scheduler_app.registry import registry

    template = next(declaration for declaration in registry if declaration.id == "probe.noop")
    declarations = [replace(template, id=f"declared.{i:06d}") for i in range(options.declared)]
    started = time.perf_counter()
    services.sync_jobs_from_code(declarations=declarations)
    first = time.perf_counter() - started
    started = time.perf_counter()
    report = services.sync_jobs_from_code(declarations=declarations)
    again = time.perf_counter() - started
    print(f"{options.declared} declared jobs: first sync {first:.2f} s; "
          f"restart, nothing changed: {again:.2f} s ({len(report.unchanged)} unchanged)")


if __name__ == "__main__":
    main()
