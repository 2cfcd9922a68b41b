"""New row ids and PostgreSQL's COPY text format: how the writer's rows reach the server."""

from __future__ import annotations

import io
import os
import random
import time
from collections.abc import Iterable, Sequence
from typing import Any

import psycopg2.extensions
from psycopg2 import sql

# The random part of new ids. ``os.urandom`` per id is a system call that releases the GIL;
# winning it back from a busy thread (the importer reading the next batch) made an id cost
# 17 us in an import instead of 3, and up to 0.45 ms. Seeded from the system's entropy, and
# again in a forked child, so that two processes never draw the same sequence.
_id_bits = random.Random()
os.register_at_fork(after_in_child=_id_bits.seed)


def new_id() -> str:
    """A UUID in RFC 9562's version 7 layout: milliseconds since 1970, then random bits.

    Ids created together sort together, so the primary-key and foreign-key indexes on them grow
    at their right edge instead of touching a random page of a large index for every row.
    """
    value = (time.time_ns() // 1_000_000) << 80 | _id_bits.getrandbits(80)
    # Version 7 in bits 76-79, variant 0b10 in bits 62-63.
    value = value & ~(0xF << 76) | 0x7 << 76
    value = value & ~(0x3 << 62) | 0x2 << 62
    digits = f"{value:032x}"
    return f"{digits[:8]}-{digits[8:12]}-{digits[12:16]}-{digits[16:20]}-{digits[20:]}"


def copy_rows(
    cursor: psycopg2.extensions.cursor,
    table: str,
    columns: Sequence[str],
    rows: Iterable[Sequence[Any]],
) -> None:
    """COPY ``rows`` into ``table`` in PostgreSQL's text format (the fastest bulk path)."""
    # Plain text needs no escaping and, with NULL, is by far the common value: test both
    # inline, without a function call per value, which is most of the cost of building the text.
    lines = [
        "\t".join(
            [
                "\\N"
                if value is None
                else value
                if type(value) is str
                and "\\" not in value
                and "\t" not in value
                and "\n" not in value
                and "\r" not in value
                else _copy_text(value)
                for value in row
            ]
        )
        for row in rows
    ]
    if not lines:
        return
    lines.append("")
    text = "\n".join(lines)
    # One read of the whole text: psycopg2 reads ``size`` characters at a time and needs the GIL
    # for each read, which a busy producer thread holds for up to the switch interval (5 ms).
    cursor.copy_expert(
        sql.SQL("COPY {} ({}) FROM STDIN").format(
            sql.Identifier(table), sql.SQL(", ").join(map(sql.Identifier, columns))
        ),
        io.StringIO(text),
        size=len(text) + 1,
    )


def _copy_text(value: Any) -> str:
    if value is None:
        return "\\N"
    if isinstance(value, bool):
        return "t" if value else "f"
    text = value if isinstance(value, str) else str(value)
    return text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")
