"""core.bulk: numpy columns to and from PostgreSQL, checked against Decimal and against PostgreSQL itself."""

from __future__ import annotations

from decimal import Decimal

import numpy as np
import pytest
from django.db import connection
from hypothesis import given, settings
from hypothesis import strategies as st

from core.bulk import copy_into_temp_table, fetch_columns, numeric_decode, numeric_encode

LIMIT = 2**62 - 1
units_and_places = st.lists(
    st.tuples(st.integers(-LIMIT, LIMIT), st.integers(0, 8)),
    min_size=1,
    max_size=50,
)
EDGES = [
    (0, 0),
    (0, 8),
    (1, 8),  # 0.00000001
    (-1, 8),
    (9999, 4),  # a whole base-10000 digit of fraction
    (10_000, 4),  # 1: a carry into the integer digits
    (-123_456_789, 2),  # -1,234,567.89
    (LIMIT, 0),  # 4.6e18: the top integer digit in use
    (-LIMIT, 0),
    (LIMIT, 8),
    (10**16, 0),  # exactly 10000^4, the first digit's weight
]


def _expected(units: int, places: int) -> Decimal:
    return Decimal(units).scaleb(-places)


@given(units_and_places)
def test_numeric_encoding_round_trips_to_the_exact_decimal(pairs: list[tuple[int, int]]) -> None:
    units = np.array([u for u, _ in pairs], dtype=np.int64)
    places = np.array([p for _, p in pairs], dtype=np.int16)
    assert numeric_decode(numeric_encode(units, places)) == [_expected(u, p) for u, p in pairs]


def test_numeric_encoding_is_digits_of_ten_thousand_with_the_first_at_weight_four() -> None:
    # -1,234,567.89 = -(123 * 10000^1 + 4567 * 10000^0 + 8900 * 10000^-1)
    (value,) = numeric_encode(np.array([-123_456_789]), 2)
    assert (value["ndigits"], value["weight"], value["sign"], value["dscale"]) == (7, 4, 0x4000, 8)
    assert value["digits"].tolist() == [0, 0, 0, 123, 4567, 8900, 0]


def test_numeric_encoding_refuses_what_it_cannot_hold() -> None:
    with pytest.raises(ValueError, match="too large"):
        numeric_encode(np.array([2**62]), 0)
    with pytest.raises(ValueError, match="places must be between 0 and 8"):
        numeric_encode(np.array([1]), 9)


@pytest.mark.postgres
@pytest.mark.django_db
@settings(max_examples=25, deadline=None)
@given(units_and_places)
def test_postgresql_reads_the_encoding_as_the_same_decimal(pairs: list[tuple[int, int]]) -> None:
    pairs = [*EDGES, *pairs]
    units = np.array([u for u, _ in pairs], dtype=np.int64)
    places = np.array([p for _, p in pairs], dtype=np.int16)
    with connection.cursor() as cursor:
        copy_into_temp_table(
            "numbers",
            {"i": ("int8", np.arange(len(pairs), dtype=np.int64)), "n": ("numeric", numeric_encode(units, places))},
        )
        cursor.execute("SELECT n FROM numbers ORDER BY i")
        stored = [row[0] for row in cursor.fetchall()]
        cursor.execute("DROP TABLE numbers")
    assert stored == [_expected(u, p) for u, p in pairs]
    assert all(value.as_tuple().exponent == -8 for value in stored)  # numeric(28, 8): eight places, as typed


@pytest.mark.postgres
@pytest.mark.django_db
def test_copy_refuses_numeric_values_that_were_not_encoded() -> None:
    with pytest.raises(TypeError, match="numeric values must come from numeric_encode"):
        copy_into_temp_table("numbers", {"n": ("numeric", np.array([1, 2], dtype=np.int64))})


@pytest.mark.django_db
def test_fetch_columns_reads_each_column_as_its_type() -> None:
    # given three rows, one float NULL among them
    float_null = "CAST(NULL AS float8)" if connection.vendor == "postgresql" else "NULL"
    sql = f"SELECT 1, 2.5, 1 = 1 UNION ALL SELECT 2, {float_null}, 1 = 0 UNION ALL SELECT 3, -0.125, 1 = 1 ORDER BY 1"

    # when / then: NULL reads as NaN, the rest exactly
    ids, values, flags = fetch_columns(sql, [], ["int8", "float8", "bool"])
    assert ids.tolist() == [1, 2, 3]
    assert values[0] == 2.5
    assert np.isnan(values[1])
    assert values[2] == -0.125
    assert flags.tolist() == [True, False, True]
