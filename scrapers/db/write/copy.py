"""PostgreSQL's COPY text format: how the writer's rows reach the server."""

from __future__ import annotations

import datetime
import io
from collections.abc import Callable, Iterable, Sequence
from decimal import Decimal
from typing import Any

import psycopg2.extensions
from psycopg2 import sql


def copy_rows(
    cursor: psycopg2.extensions.cursor,
    table: str,
    columns: Sequence[str],
    rows: Iterable[Sequence[Any]],
) -> None:
    """COPY ``rows`` into ``table`` in PostgreSQL's text format (the fastest bulk path)."""
    copy_text(cursor, table, columns, text_of(rows))


def text_of(rows: Iterable[Sequence[Any]]) -> str:
    """``rows`` in COPY's text format ("" for none): built where the rows are made, a process
    can send the text instead of the rows."""
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
        return ""
    lines.append("")
    return "\n".join(lines)


def copy_text(
    cursor: psycopg2.extensions.cursor, table: str, columns: Sequence[str], text: str
) -> None:
    """COPY ``text`` (``text_of``) into ``table``; nothing for no text."""
    if not text:
        return
    # One read of the whole text: psycopg2 reads ``size`` characters at a time and needs the GIL
    # for each read, which a busy producer thread holds for up to the switch interval (5 ms).
    cursor.copy_expert(
        sql.SQL("COPY {} ({}) FROM STDIN").format(
            sql.Identifier(table), sql.SQL(", ").join(map(sql.Identifier, columns))
        ),
        io.StringIO(text),
        size=len(text) + 1,
    )


# Values whose text never holds a character COPY escapes (a backslash, tab or line end): their
# text as it is, without the four passes of escaping (a track's bpm, duration and release date).
_UNESCAPED: dict[type, Callable[[Any], str]] = {
    bool: {True: "t", False: "f"}.__getitem__,
    int: str,
    Decimal: str,
    datetime.date: datetime.date.isoformat,
}


def _copy_text(value: Any) -> str:
    if value is None:
        return "\\N"
    convert = _UNESCAPED.get(type(value))
    if convert is not None:
        return convert(value)
    text = value if isinstance(value, str) else str(value)
    return text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")
