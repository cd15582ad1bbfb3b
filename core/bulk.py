"""Bulk I/O between PostgreSQL and numpy, so a whole book moves in a few statements.

Reading: PostgreSQL packs each column of a query into one bytea (`string_agg(int8send(c), '')`), which numpy
reads with one `frombuffer`: no Python object per row (psycopg's COPY reader handles one message per row,
about 2 us each). Writing: numpy builds COPY's binary format for a temporary table in one buffer.
Other databases (the embedded SQLite of the demo) take the plain cursor path; slower, same answers.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any

import numpy as np
import psycopg
from django.db import connection, models
from django.db.models import Model

# PostgreSQL binary COPY: 11-byte signature, int32 flags, int32 header-extension length; trailer int16 -1.
_COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + b"\x00\x00\x00\x00" + b"\x00\x00\x00\x00"
_COPY_TRAILER = b"\xff\xff"

# column type name -> (PostgreSQL type, numpy big-endian dtype, numpy native dtype)
_TYPES = {
    "int8": ("int8", ">i8", np.int64),
    "float8": ("float8", ">f8", np.float64),
    "int2": ("int2", ">i2", np.int16),
    "bool": ("bool", "?", np.bool_),
}


def is_postgresql() -> bool:
    return connection.vendor == "postgresql"


def nan_sql() -> str:
    """A float NaN literal for COALESCE (on the plain path, NULL, which is read back as NaN)."""
    return "CAST('NaN' AS float8)" if is_postgresql() else "NULL"


def fetch_columns(sql: str, params: Sequence[Any], types: Sequence[str]) -> list[np.ndarray]:
    """Run a SELECT whose columns have the given types and return one numpy array per column.

    On PostgreSQL a float NULL reads as NaN; an integer or boolean NULL is an error (it would shift the
    column). A column whose type is not the declared one fails in PostgreSQL (`int8send(float8)` does not
    exist), so values are never reinterpreted.
    """
    if not is_postgresql():
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            rows = cursor.fetchall()
        return [
            np.array([math.nan if row[i] is None else row[i] for row in rows], dtype=_TYPES[name][2])
            if rows
            else np.empty(0, _TYPES[name][2])
            for i, name in enumerate(types)
        ]
    aliases = ", ".join(f"c{i}" for i in range(len(types)))
    packed = ", ".join(
        f"string_agg(float8send(COALESCE(q.c{i}, 'NaN')), '')"
        if name == "float8"
        else f"string_agg({name}send(q.c{i}), '')"
        for i, name in enumerate(types)
    )
    # Binary results: each packed column arrives as its bytes, not as hex text twice as long to decode
    # (0.1 s for the 20 MB of a 500,000-position book). Django's cursors bind parameters on the client,
    # which psycopg allows with text results only, so the query runs on a psycopg cursor of Django's own
    # connection, opened through Django's cursor (health check, broken-transaction check), with errors mapped
    # to Django's: callers still see OperationalError.
    with (
        connection.cursor() as django_cursor,
        connection.wrap_database_errors,
        psycopg.Cursor(django_cursor.cursor.connection) as cursor,
    ):
        cursor.execute(f"SELECT count(*), {packed} FROM ({sql}) AS q({aliases})", params, binary=True)
        row = cursor.fetchone()
    assert row is not None
    count = row[0]
    columns: list[np.ndarray] = []
    for i, name in enumerate(types):
        data = np.frombuffer(row[i + 1] or b"", dtype=_TYPES[name][1])
        if len(data) != count:
            raise ValueError(f"column {i} ({name}) has NULLs: {count - len(data)} of {count} rows")
        columns.append(data.astype(_TYPES[name][2]))
    return columns


def copy_into_temp_table(table: str, columns: dict[str, tuple[str, np.ndarray]]) -> None:
    """Create (on commit drop) a temporary table and fill it from numpy columns {name: (type, values)}."""
    definition = ", ".join(f"{name} {_TYPES[kind][0]}" for name, (kind, _values) in columns.items())
    with connection.cursor() as cursor:
        # Dropped at commit; dropped here too for a caller that runs twice inside one outer transaction.
        cursor.execute(f"DROP TABLE IF EXISTS {table}")
        cursor.execute(f"CREATE TEMPORARY TABLE {table} ({definition}) ON COMMIT DROP")
        if not columns:
            return
        n_rows = len(next(iter(columns.values()))[1])
        if is_postgresql():
            kinds = [kind for kind, _values in columns.values()]
            fields: list[tuple[str, str]] = [("_count", ">i2")]
            for i, kind in enumerate(kinds):
                fields += [(f"_len{i}", ">i4"), (f"c{i}", _TYPES[kind][1])]
            rows = np.empty(n_rows, dtype=np.dtype(fields))
            rows["_count"] = len(kinds)
            for i, (kind, values) in enumerate(columns.values()):
                rows[f"_len{i}"] = np.dtype(_TYPES[kind][1]).itemsize
                rows[f"c{i}"] = values
            with cursor.cursor.copy(f"COPY {table} FROM STDIN (FORMAT binary)") as copy:
                copy.write(_COPY_HEADER + rows.tobytes() + _COPY_TRAILER)
        else:
            placeholders = ", ".join(["%s"] * len(columns))
            column_values = [v for _kind, v in columns.values()]
            cursor.executemany(
                f"INSERT INTO {table} VALUES ({placeholders})",
                [tuple(_python(col[i]) for col in column_values) for i in range(n_rows)],
            )


def _python(value: Any) -> Any:
    item = value.item() if hasattr(value, "item") else value
    if isinstance(item, float) and item != item:  # NaN travels as NULL on the plain path
        return None
    return item


# Fields whose database value is the Python value itself on PostgreSQL (psycopg adapts it), as long as the
# field class keeps these classes' own preparation: a subclass that overrides it (an encrypted field, say)
# goes through Django's get_db_prep_save like any other field.
_PLAIN_FIELD_CLASSES: tuple[type[models.Field], ...] = (
    models.ForeignKey,
    models.BigAutoField,
    models.AutoField,
    models.BigIntegerField,
    models.IntegerField,
    models.BooleanField,
    models.CharField,
    models.TextField,
    models.DecimalField,
    models.DateTimeField,
)


def _is_plain(field: models.Field) -> bool:
    kind = type(field)
    for plain in _PLAIN_FIELD_CLASSES:
        if isinstance(field, plain):
            own = all(
                getattr(kind, method) is getattr(plain, method)
                for method in ("get_db_prep_save", "get_db_prep_value", "get_prep_value", "to_python")
            )
            # a foreign key's value is its target's: that field must be plain too
            return own and (not isinstance(field, models.ForeignKey) or _is_plain(field.target_field))
    return False


def _ready_check(field: models.Field) -> Callable[[Any], bool]:
    """For a plain field: whether a value is already what Django would send as it is (chosen once per field)."""
    if isinstance(field, models.DateTimeField):
        return lambda v: isinstance(v, dt.datetime) and v.tzinfo is not None
    if isinstance(field, models.DecimalField):
        return lambda v: isinstance(v, Decimal) and v.is_finite()  # Django refuses NaN and infinities
    if isinstance(field, models.BooleanField):
        return lambda v: isinstance(v, bool)
    if isinstance(field, models.CharField | models.TextField):
        return lambda v: isinstance(v, str)
    return lambda v: type(v) is int  # not a bool, which Django converts


def _column_values(field: models.Field, objects: Sequence[Model], *, adding: bool = False) -> list[Any]:
    """The database values of one field over many objects. Django's get_db_prep_save costs about 2 us a value
    (5,000 new cases of 15 fields: 0.15 s); a plain field's value of its own Python type needs none of it. A
    value of another type (a float for a Decimal, a naive datetime) takes Django's path, which converts or
    refuses it as the ORM would."""
    # pre_save on insert, as bulk_create does: it applies auto_now(_add) (and sets the attribute itself).
    values = [field.pre_save(o, True) for o in objects] if adding else [getattr(o, field.attname) for o in objects]
    if not _is_plain(field):
        return [field.get_db_prep_save(value, connection) for value in values]
    ready = _ready_check(field)
    return [value if value is None or ready(value) else field.get_db_prep_save(value, connection) for value in values]


def _inserted_fields(model: type[Model]) -> list[Any]:
    """The columns an insert writes: all but the primary key and the database's generated columns."""
    return [f for f in model._meta.concrete_fields if not f.primary_key and not f.generated]


def _mark_saved(objects: Sequence[Model], keys: Sequence[Any], ids: dict[Any, Any]) -> None:
    """Give each inserted object its id (matched by its key) and the state of an object read from the database."""
    for obj, object_key in zip(objects, keys, strict=True):
        obj.pk = ids[object_key]
        obj._state.adding = False
        obj._state.db = "default"


def _unique_keys(objects: Sequence[Model], attnames: Sequence[str]) -> list[tuple[Any, ...]]:
    keys = [tuple(getattr(o, a) for a in attnames) for o in objects]
    if len(set(keys)) != len(keys):
        raise ValueError(f"{', '.join(attnames)} must be unique among the objects: their ids are matched by it")
    return keys


def _inserted_portably(model: type[Model], objects: Sequence[Model]) -> bool:
    """True when the PostgreSQL path is not needed: nothing to insert, or another database, where bulk_create
    inserts them (and sets their primary keys)."""
    if not objects:
        return True
    if is_postgresql():
        return False
    model._default_manager.bulk_create(objects)
    return True


def bulk_insert(model: type[Model], objects: Sequence[Model], *, key: str) -> None:
    """INSERT many new objects in one statement and set their primary keys. On PostgreSQL: one array per
    column through unnest, `RETURNING` the key and the id; `key` names a field unique among the objects
    (e.g. the account of a new case), which matches each returned id to its object. Elsewhere: bulk_create.

    Django's bulk_create spends most of its time preparing each value and binding tens of thousands of
    parameters into the statement (0.15-0.19 s for 2,900 cases). Defaults and pre_save hooks (auto_now) are
    applied as bulk_create applies them."""
    if _inserted_portably(model, objects):
        return
    meta = model._meta
    fields = _inserted_fields(model)
    key_field = meta.get_field(key)
    assert isinstance(key_field, models.Field)
    keys = [k for (k,) in _unique_keys(objects, [key_field.attname])]
    names = ", ".join(f'"{f.column}"' for f in fields)
    arrays = ", ".join(f"CAST(%s AS {f.db_type(connection)}[])" for f in fields)
    aliases = ", ".join(f'"{f.column}"' for f in fields)
    pk = meta.pk
    assert pk is not None
    with connection.cursor() as cursor:
        cursor.execute(
            f'INSERT INTO "{meta.db_table}" ({names}) SELECT {aliases} FROM unnest({arrays}) AS v({aliases}) '
            f'RETURNING "{key_field.column}", "{pk.column}"',
            [_column_values(f, objects, adding=True) for f in fields],
        )
        ids = dict(cursor.fetchall())
    _mark_saved(objects, keys, ids)


def bulk_copy(model: type[Model], objects: Sequence[Model], *, key: Sequence[str]) -> None:
    """Insert many new objects by COPY and set their primary keys, read back by `key` (fields unique together
    among the objects and in the table). Elsewhere: bulk_create.

    For rows with large JSON: Django's bulk_create sends each column as one array, which psycopg quotes in
    Python, character by character escaping the JSON's quotes (25 feasibility reports of 18 kB: 0.14 s);
    COPY's text format is escaped by psycopg's C code. Values are prepared as bulk_create prepares them."""
    if _inserted_portably(model, objects):
        return
    meta = model._meta
    fields = _inserted_fields(model)
    key_fields = [meta.get_field(name) for name in key]
    assert all(isinstance(f, models.Field) for f in key_fields)
    attnames = [f.attname for f in key_fields]  # type: ignore[union-attr]
    columns = [_column_values(f, objects, adding=True) for f in fields]
    keys = _unique_keys(objects, attnames)
    names = ", ".join(f'"{f.column}"' for f in fields)
    with connection.cursor() as cursor, cursor.cursor.copy(f'COPY "{meta.db_table}" ({names}) FROM STDIN') as copy:
        for row in zip(*columns, strict=True):
            copy.write_row(row)
    # The key must be unique in the table too (the caller's constraint): the COPY would have failed on a clash,
    # so each key read back is the row just written.
    wanted = set(keys)
    first = attnames[0]
    found = model._default_manager.filter(**{f"{first}__any": [k[0] for k in wanted]}).values_list(*attnames, "pk")
    ids: dict[tuple[Any, ...], Any] = {}
    for *row_key, pk in found:
        if tuple(row_key) in wanted:
            if tuple(row_key) in ids:
                raise ValueError(f"{', '.join(attnames)} is not unique in {meta.db_table}: ids cannot be read back")
            ids[tuple(row_key)] = pk
    _mark_saved(objects, keys, ids)


def bulk_copy_new(model: type[Model], objects: Sequence[Model], *, batch_size: int = 2000) -> list[Any]:
    """Insert many new objects, skipping those a unique constraint already holds (ON CONFLICT DO NOTHING), and
    return the ids of the rows written. On PostgreSQL: COPY into a temporary copy of the table, then one INSERT ...
    SELECT ... ON CONFLICT DO NOTHING RETURNING id; the objects are not given their ids (which of them were
    written is the ids'). Elsewhere: bulk_create(ignore_conflicts=True), the ids read back by the caller.

    For many rows of text (the rendered messages of a sweep's margin calls): Django's bulk_create sends each column
    as one array, which psycopg quotes in Python, a regular expression per string (6,667 messages: most of a
    second); COPY's text format is escaped by psycopg's C code."""
    if not objects:
        return []
    if not is_postgresql():
        model._default_manager.bulk_create(objects, ignore_conflicts=True, batch_size=batch_size)
        return []
    meta = model._meta
    fields = _inserted_fields(model)
    pk = meta.pk
    assert pk is not None
    names = ", ".join(f'"{f.column}"' for f in fields)
    staging = f"{meta.db_table}_new"
    with connection.cursor() as cursor:
        # Dropped at commit; dropped here too for a caller that runs twice inside one outer transaction.
        cursor.execute(f'DROP TABLE IF EXISTS "{staging}"')
        cursor.execute(
            f'CREATE TEMPORARY TABLE "{staging}" ON COMMIT DROP AS SELECT {names} FROM "{meta.db_table}" WITH NO DATA'
        )
        columns = [_column_values(f, objects, adding=True) for f in fields]
        with cursor.cursor.copy(f'COPY "{staging}" ({names}) FROM STDIN') as copy:
            for row in zip(*columns, strict=True):
                copy.write_row(row)
        cursor.execute(
            f'INSERT INTO "{meta.db_table}" ({names}) SELECT {names} FROM "{staging}" ORDER BY ctid '
            f'ON CONFLICT DO NOTHING RETURNING "{pk.column}"'
        )
        ids = [row[0] for row in cursor.fetchall()]
    return ids


def bulk_update_fields(model: type[Model], objects: Sequence[Model], fields: Sequence[str]) -> None:
    """Write `fields` of many objects in one statement. On PostgreSQL: UPDATE ... FROM unnest(one array per
    column), whose cost grows with the rows; Django's bulk_update builds a CASE per row and field instead,
    which takes seconds for a few thousand rows. Elsewhere: Django's bulk_update."""
    if not objects:
        return
    if not is_postgresql():
        model._default_manager.bulk_update(objects, fields, batch_size=500)
        return
    meta = model._meta
    pk = meta.pk
    assert pk is not None
    columns = [meta.get_field(name) for name in fields]
    types = [pk.db_type(connection)] + [column.db_type(connection) for column in columns]
    values = [_column_values(pk, objects)] + [_column_values(column, objects) for column in columns]  # type: ignore[arg-type]
    names = [pk.column] + [column.column for column in columns]  # type: ignore[union-attr]
    assignments = ", ".join(f'"{name}" = v."{name}"' for name in names[1:])
    arrays = ", ".join(f"CAST(%s AS {db_type}[])" for db_type in types)
    aliases = ", ".join(f'"{name}"' for name in names)
    with connection.cursor() as cursor:
        cursor.execute(
            f'UPDATE "{meta.db_table}" AS t SET {assignments} FROM unnest({arrays}) AS v({aliases}) '
            f'WHERE t."{pk.column}" = v."{pk.column}"',
            values,
        )
