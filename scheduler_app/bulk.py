"""
Statements that write many rows at once, where Django's bulk methods cost too much.

At a thousand runs a second, and for an import of 100,000 jobs, building a model
instance per row and compiling every value of it was a large share of the work:
`bulk_update` adds a CASE branch per row and field, and `bulk_create` on PostgreSQL
sends each column as an array that psycopg escapes element by element in Python.
So:

* `insert_rows` writes new rows with PostgreSQL's COPY (`bulk_create` elsewhere);
* `update_rows` sets some fields of many rows in one UPDATE;
* `column_defaults` gives a raw insert that names only the columns it sets the model
  defaults of the others, so a field added to a model needs no change there.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from django.db import DEFAULT_DB_ALIAS, connection, connections, models
from django.db.models import AutoField, Model


def insert_rows(model: type[Model], objects: Sequence[Model]) -> None:
    """Insert unsaved instances of `model`, as `bulk_create` does (an automatic primary
    key is left to the database and not read back); raises `IntegrityError` as it does."""
    # The connection itself, not the `django.db.connection` proxy: every attribute
    # read through the proxy looks the connection up again (a third of the time).
    connection = connections[DEFAULT_DB_ALIAS]
    if connection.vendor != "postgresql":
        model._default_manager.bulk_create(objects)
        return
    if not objects:
        return
    fields = [field for field in model._meta.concrete_fields if not isinstance(field, AutoField)]
    columns = ", ".join(connection.ops.quote_name(field.column) for field in fields)
    statement = f"COPY {connection.ops.quote_name(model._meta.db_table)} ({columns}) FROM STDIN"
    # Django's cursor has no COPY: psycopg's does. Its errors become Django's here.
    with connection.cursor() as cursor, connection.wrap_database_errors:
        with cursor.cursor.copy(statement) as copy:
            for instance in objects:
                copy.write_row([
                    field.get_db_prep_save(field.pre_save(instance, True), connection)
                    for field in fields
                ])


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
