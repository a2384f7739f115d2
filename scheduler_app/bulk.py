"""
Helpers for the statements that write many rows at once on the scheduler's hot path.

At a thousand runs a second, building a model instance per row and compiling every
value of it (`bulk_create`; `bulk_update` adds a CASE branch per row and field) was a
large share of a scheduler pass. The hot path writes raw statements instead: an
insert that names only the columns it sets (the others get their model defaults
from `column_defaults`, so a field added to a model needs no change there), and
`update_rows`, one UPDATE for many rows.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from django.db import connection, models


def column_defaults(
    model: type[models.Model], *, besides: Iterable[str]
) -> tuple[str, list[object]]:
    """The quoted columns of `model` except `besides`, comma-separated, and their
    model defaults prepared for the database (one parameter each)."""
    fields = [field for field in model._meta.concrete_fields if field.column not in besides]
    columns = ", ".join(connection.ops.quote_name(field.column) for field in fields)
    defaults = [field.get_db_prep_save(field.get_default(), connection) for field in fields]
    return columns, defaults


def update_rows(
    model: type[models.Model], fields: Sequence[str], rows: Iterable[Sequence[object]]
) -> None:
    """Set `fields` of many rows of `model`: each row is (primary key, *values).

    On PostgreSQL one statement whose text and parameter count do not grow with the
    rows (a column of values per field, `unnest`ed and joined on the key); elsewhere
    Django's `bulk_update`.
    """
    rows = list(rows)
    if not rows:
        return
    meta = model._meta
    if connection.vendor != "postgresql":
        model.objects.bulk_update(
            [model(**{meta.pk.attname: key, **dict(zip(fields, values, strict=True))})
             for key, *values in rows],
            fields,
        )
        return
    columns = [meta.pk, *(meta.get_field(name) for name in fields)]
    quote = connection.ops.quote_name
    arrays = ", ".join(f"%s::{field.db_type(connection)}[]" for field in columns)
    names = ", ".join(quote(field.column) for field in columns)
    assignments = ", ".join(f"{quote(field.column)} = row.{quote(field.column)}"
                            for field in columns[1:])
    pk = quote(meta.pk.column)
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {quote(meta.db_table)} AS target SET {assignments}"
            f" FROM unnest({arrays}) AS row ({names}) WHERE target.{pk} = row.{pk}",
            [list(column) for column in zip(*rows, strict=True)],
        )
