"""The writer's COPY text (``db.write.copy``): every value reaches PostgreSQL as it was given."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import psycopg2.extensions

from scrapers.db.write.copy import copy_rows
from scrapers.statuses import EnrichmentStatus

ROWS = [
    (True, 0, Decimal("128"), dt.date(2019, 5, 1), "plain", EnrichmentStatus.PENDING),
    (False, -5, Decimal("128.5"), dt.date(1, 1, 1), "tab\there \\ line\nend\r", "x"),
    (None, 2**40, Decimal("1E+2"), dt.date(9999, 12, 31), None, None),
]


def test_values_of_every_type_the_writer_copies_arrive_unchanged(
    db: psycopg2.extensions.connection,
) -> None:
    with db.cursor() as cursor:
        cursor.execute(
            "CREATE TEMP TABLE copied (flag boolean, number bigint, bpm numeric, day date,"
            " text text, status text)"
        )
        copy_rows(cursor, "copied", ("flag", "number", "bpm", "day", "text", "status"), ROWS)
        cursor.execute("SELECT * FROM copied ORDER BY number")
        got = cursor.fetchall()
    expected = sorted(ROWS, key=lambda row: row[1])
    assert got == [(*row[:5], row[5] and str(row[5])) for row in expected]
