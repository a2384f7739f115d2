"""
What the `scheduler` command prints for people and for scripts.

People get aligned tables and label/value blocks that fit 100 columns, times in the
scheduler's time zone with a relative hint ("in 4 min"), and colour through Django's
command styles (the command turns them off when stdout is not a terminal). Scripts get
JSON built by the API's own serializers, so both front doors use the same field names.
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder

from scheduler_app.cli.errors import one_line
from scheduler_app.conf import app_settings

WIDTH = 100
GAP = "  "
ELLIPSIS = "…"
# Columns are not squeezed below this; a table with many wide columns may overflow.
MIN_COLUMN_WIDTH = 8
HEADING_STYLE = "MIGRATE_HEADING"
NOTHING = "-"


@dataclass(frozen=True)
class Styled:
    """Text to show in one of Django's command styles ("SUCCESS", "ERROR", "WARNING"...)."""

    text: str
    role: str


Cell = str | Styled


def table(
    headers: Sequence[str],
    rows: Sequence[Sequence[Cell]],
    *,
    style: Any,
    flexible: Collection[str] = (),
    omit: Collection[str] = (),
    width: int = WIDTH,
) -> list[str]:
    """Aligned columns, cut short (with …) until a row fits `width`.

    The `flexible` columns (by header) give up their width first: free text such as a
    schedule in words, rather than the ids and times that operators type and compare.
    The `omit` columns are left out (a job column when all rows are one job's).
    """
    kept = [index for index, header in enumerate(headers) if header not in omit]
    headers = [headers[index] for index in kept]
    rows = [[row[index] for index in kept] for row in rows]
    texts = [[_plain(cell) for cell in row] for row in rows]
    natural = [
        max([len(header), *(len(row[index]) for row in texts)])
        for index, header in enumerate(headers)
    ]
    first = [index for index, header in enumerate(headers) if header in flexible]
    widths = _fit(natural, width, first)
    heading = [Styled(header, HEADING_STYLE) for header in headers]
    return [_row(cells, widths, style) for cells in (heading, *rows)]


def details(pairs: Sequence[tuple[str, Cell]], *, style: Any, width: int = WIDTH) -> list[str]:
    """Label/value lines; long values wrap onto indented lines instead of being cut."""
    label_width = max(len(label) for label, _ in pairs)
    value_width = width - label_width - len(GAP)
    lines = []
    for label, value in pairs:
        wrapped = textwrap.wrap(_plain(value), value_width) or [""]
        role = value.role if isinstance(value, Styled) else None
        for number, text in enumerate(wrapped):
            shown_label = label if number == 0 else ""
            lines.append(
                f"{_styled(shown_label.ljust(label_width), HEADING_STYLE, style)}{GAP}"
                f"{_styled(text, role, style)}".rstrip()
            )
    return lines


def truncate(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + ELLIPSIS


def local_time(moment: datetime) -> str:
    """A moment as wall time in the scheduler's time zone."""
    return f"{moment.astimezone(app_settings.timezone):%Y-%m-%d %H:%M:%S}"


def relative_time(moment: datetime, *, now: datetime) -> str:
    """'in 4 min', '3 h ago' or 'now'."""
    seconds = (moment - now).total_seconds()
    span = _span(abs(seconds))
    if span is None:
        return "now"
    return f"in {span}" if seconds > 0 else f"{span} ago"


def when(moment: datetime | None, *, now: datetime) -> str:
    """'2026-05-01 10:00:00 (in 4 min)', or '-' for no time."""
    if moment is None:
        return NOTHING
    return f"{local_time(moment)} ({relative_time(moment, now=now)})"


def seconds(value: float | None) -> str:
    return NOTHING if value is None else f"{value:.2f}s"


def to_json(data: Any) -> str:
    """Stable JSON for scripts: indented, keys in the serializers' order."""
    return json.dumps(data, cls=DjangoJSONEncoder, indent=2, ensure_ascii=False)


def _span(amount: float) -> str | None:
    if amount < 1:
        return None
    if amount < 60:
        return f"{int(amount)} s"
    if amount < 3600:
        return f"{int(amount // 60)} min"
    if amount < 48 * 3600:
        return f"{int(amount // 3600)} h"
    days = int(amount // 86400)
    if days < 365:
        return f"{days} days"
    years = days // 365
    return f"{years} year" if years == 1 else f"{years} years"


def _fit(widths: list[int], total: int, first: list[int]) -> list[int]:
    """Shrink the widest column, one character at a time, until the row fits `total`;
    columns in `first` shrink before the others."""
    widths = list(widths)
    room = total - len(GAP) * (len(widths) - 1)
    for candidates in (first, range(len(widths))):
        while candidates and sum(widths) > room:
            widest = max(candidates, key=lambda index: widths[index])
            if widths[widest] <= MIN_COLUMN_WIDTH:
                break
            widths[widest] -= 1
    return widths


def _row(cells: Sequence[Cell], widths: Sequence[int], style: Any) -> str:
    parts = []
    for cell, width in zip(cells, widths, strict=True):
        text = truncate(_plain(cell), width)
        role = cell.role if isinstance(cell, Styled) else None
        # Padded after styling, so that escape codes do not count as width.
        parts.append(_styled(text, role, style) + " " * (width - len(text)))
    return GAP.join(parts).rstrip()


def _plain(cell: Cell) -> str:
    return one_line(cell.text if isinstance(cell, Styled) else cell)


def _styled(text: str, role: str | None, style: Any) -> str:
    return getattr(style, role)(text) if role and text else text
