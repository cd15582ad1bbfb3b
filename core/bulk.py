"""Bulk I/O between PostgreSQL and numpy: binary COPY both ways, so a whole book moves in a few statements.

On PostgreSQL, rows of fixed-width columns (int8, float8, int2, bool) travel in COPY's binary format and are
parsed or built with one numpy structured dtype: no Python object per row. Other databases (the embedded
SQLite of the demo) take the plain cursor path; it is slower but says the same.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from django.db import connection

# PostgreSQL binary COPY: 11-byte signature, int32 flags, int32 header-extension length; trailer int16 -1.
_COPY_SIGNATURE = b"PGCOPY\n\xff\r\n\x00"
_COPY_HEADER = _COPY_SIGNATURE + b"\x00\x00\x00\x00" + b"\x00\x00\x00\x00"
_COPY_TRAILER = b"\xff\xff"

# column type name -> (PostgreSQL type, numpy big-endian dtype, numpy native dtype, PostgreSQL type oid)
_TYPES = {
    "int8": ("int8", ">i8", np.int64, 20),
    "float8": ("float8", ">f8", np.float64, 701),
    "int2": ("int2", ">i2", np.int16, 21),
    "bool": ("bool", "?", np.bool_, 16),
}


def _row_dtype(types: Sequence[str]) -> np.dtype[Any]:
    fields: list[tuple[str, str]] = [("_count", ">i2")]
    for i, name in enumerate(types):
        fields += [(f"_len{i}", ">i4"), (f"c{i}", _TYPES[name][1])]
    return np.dtype(fields)


def is_postgresql() -> bool:
    return connection.vendor == "postgresql"


def nan_sql() -> str:
    """A float NaN literal for COALESCE: binary COPY rows must not hold NULLs on PostgreSQL; on the plain
    path NULL is read back as NaN."""
    return "CAST('NaN' AS float8)" if is_postgresql() else "NULL"


def fetch_columns(sql: str, params: Sequence[Any], types: Sequence[str]) -> list[np.ndarray]:
    """Run a SELECT whose columns have the given types (none may be NULL: COALESCE them, e.g. to 'NaN'
    for floats) and return one numpy array per column."""
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
    chunks: list[bytes] = []
    with connection.cursor() as cursor:
        raw = cursor.cursor  # the psycopg cursor inside Django's wrapper
        query = raw.mogrify(sql, params) if params else sql
        _check_column_types(raw, query, types)
        with raw.copy(f"COPY ({query}) TO STDOUT (FORMAT binary)") as copy:
            chunks.extend(bytes(data) for data in copy)
    payload = b"".join(chunks)
    dtype = _row_dtype(types)
    body = payload[len(_COPY_HEADER) : len(payload) - len(_COPY_TRAILER)]
    if len(body) % dtype.itemsize:
        raise ValueError("binary COPY returned variable-width rows: a column is NULL or not of the declared type")
    rows_array = np.frombuffer(body, dtype=dtype)
    if len(rows_array) and (rows_array["_count"] != len(types)).any():
        raise ValueError("binary COPY returned rows with an unexpected column count")
    return [rows_array[f"c{i}"].astype(_TYPES[name][2]) for i, name in enumerate(types)]


def _check_column_types(raw_cursor: Any, query: str, types: Sequence[str]) -> None:
    """Binary rows carry no types: an int8 read as float8 would parse into garbage of the right size. So the
    declared types are checked against the query's own (one round trip, no rows)."""
    raw_cursor.execute(f"SELECT * FROM ({query}) AS q LIMIT 0")
    actual = [column.type_code for column in raw_cursor.description]
    expected = [_TYPES[name][3] for name in types]
    if actual != expected:
        raise TypeError(f"query column types {actual} (oids) differ from the declared {list(types)}")


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
            dtype = _row_dtype(kinds)
            rows = np.empty(n_rows, dtype=dtype)
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
