"""
`scheduler import` and `scheduler export`: runtime jobs as JSON lines.

Each line is one job's definition, the same object as the body of `POST jobs/`
(`scheduler_app.definitions`). An import reads the lines in batches, and each batch
is one call of `services.import_jobs` (one transaction): a bad line (not JSON, or a
definition the service refuses) is reported with its line number and nothing of its
batch is written; the other batches go on. Import is idempotent by id.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from django.utils.translation import ngettext

from scheduler_app import selectors, services
from scheduler_app.conf import app_settings
from scheduler_app.definitions import definition_of
from scheduler_app.triggers import TriggerBuilder

EXPORT_CHUNK = 2000


@dataclass
class ImportSummary:
    """What an import did: jobs created, updated and unchanged, and the refused lines."""

    created: int = 0
    updated: int = 0
    unchanged: int = 0
    # One message per refused batch: the line at fault and why.
    refused: list[str] = field(default_factory=list)

    def summary(self) -> str:
        counts = [
            ngettext("%d job created", "%d jobs created", self.created) % self.created,
            ngettext("%d updated", "%d updated", self.updated) % self.updated,
            ngettext("%d unchanged", "%d unchanged", self.unchanged) % self.unchanged,
        ]
        text = ", ".join(counts) + "."
        if self.refused:
            refused = len(self.refused)
            text += " " + ngettext(
                "%d batch refused (nothing of it written).",
                "%d batches refused (nothing of them written).",
                refused,
            ) % refused
        return text


def import_lines(
    lines: Iterable[str], *, batch_size: int, actor: str, source: str
) -> ImportSummary:
    """Import JSON lines in batches of `batch_size` definitions; blank lines are skipped."""
    summary = ImportSummary()
    # One builder for the whole import: lines share schedules across batches.
    trigger_builder = TriggerBuilder(timezone=app_settings.timezone)
    for batch, refusal in _batches(lines, batch_size):
        if refusal is None:
            try:
                report = services.import_jobs(
                    definitions=batch, actor=actor, source=source,
                    trigger_builder=trigger_builder,
                )
            except services.InvalidImportLine as error:
                refusal = error.message
        if refusal is not None:
            summary.refused.append(refusal)
            continue
        summary.created += len(report.created)
        summary.updated += len(report.updated)
        summary.unchanged += len(report.unchanged)
    return summary


def _batches(
    lines: Iterable[str], batch_size: int
) -> Iterator[tuple[list[tuple[int, Any]], str | None]]:
    """Batches of (line number, definition), each with the refusal of its first line
    that is not JSON (or None)."""
    batch: list[tuple[int, Any]] = []
    refusal: str | None = None
    count = 0
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        count += 1
        try:
            batch.append((number, json.loads(line)))
        except (ValueError, RecursionError) as error:
            refusal = refusal or f"line {number}: not a JSON object ({error})."
        if count == batch_size:
            yield batch, refusal
            batch, refusal, count = [], None, 0
    if count:
        yield batch, refusal


def export_lines() -> Iterator[str]:
    """Every runtime job's definition as one JSON line, in id order."""
    rows = selectors.job_value_rows(origin="runtime").iterator(chunk_size=EXPORT_CHUNK)
    chunk: list[Any] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) == EXPORT_CHUNK:
            yield from _definition_lines(chunk)
            chunk = []
    yield from _definition_lines(chunk)


def _definition_lines(rows: list[Any]) -> Iterator[str]:
    for job in selectors.job_views_of_values(rows):
        yield json.dumps(definition_of(job), ensure_ascii=False, separators=(",", ":"))
