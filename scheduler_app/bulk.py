"""
Helpers for the statements that write many rows at once on the scheduler's hot path.

At a thousand runs a second, building a model instance per row and compiling every
value of it (`bulk_create`; `bulk_update` adds a CASE branch per row and field) was a
large share of a scheduler pass. The hot path writes raw statements instead, naming
only the columns it sets; the other columns must get their model defaults, which
this module supplies, so a field added to a model needs no change there.
"""

from __future__ import annotations

from collections.abc import Iterable

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
