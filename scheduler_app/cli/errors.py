"""
The one place where scheduler errors become `CommandError`s, and the exit statuses.

A refused operation (unknown job, invalid schedule, version conflict, a broken job) or
an unreachable database is for the operator to fix, not a bug: Django prints the
`CommandError` as one line on stderr and exits with its return code, never a traceback
(`--traceback` still shows one, with the original error chained).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from django.core.management.base import CommandError
from django.db import DatabaseError, OperationalError

from scheduler_app.exceptions import SchedulerError

# The command was refused, or the run that `trigger --wait` waited for failed.
EXIT_FAILED = 1
# The command line itself is wrong; argparse exits with 2 too.
EXIT_USAGE = 2
# `trigger --wait` gave up before the run finished; the request may still run later.
EXIT_TIMED_OUT = 3


@contextmanager
def command_errors() -> Iterator[None]:
    """Turn scheduler refusals and database failures into one-line `CommandError`s."""
    try:
        yield
    except SchedulerError as error:
        raise CommandError(one_line(error.message), returncode=EXIT_FAILED) from error
    except OperationalError as error:
        # Connection refused, server gone, authentication failed, SQLite file unusable.
        raise CommandError(
            f"database unreachable: {one_line(str(error))}", returncode=EXIT_FAILED
        ) from error
    except DatabaseError as error:
        raise CommandError(
            f"database error: {one_line(str(error))}", returncode=EXIT_FAILED
        ) from error


def one_line(text: str) -> str:
    """Collapse a possibly multi-line message (psycopg's have hints) into one line."""
    return " ".join(text.split())
