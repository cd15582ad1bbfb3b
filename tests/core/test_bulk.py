"""core.bulk: numpy columns from a query."""

from __future__ import annotations

import numpy as np
import pytest
from django.db import connection

from core.bulk import fetch_columns


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
