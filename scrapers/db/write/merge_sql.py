"""The merge rule of ``merge.py`` in SQL: the SET list of an UPDATE (``assignments``), the guard
that skips rows it would not change (``changes``), the fold of a new track's incoming rows for
``--bulk``'s staging (``folded``), and an incoming row's typed columns. ``tests/test_merge_rule.py``
checks that this SQL and ``merge.merge`` agree.
"""

from __future__ import annotations

from psycopg2 import sql

from scrapers.db.write.merge import COLUMN_TYPES, ENRICHMENT_OUTCOMES, FILL_ONLY, OVERWRITE


def _merged(stored: str, incoming: str) -> list[tuple[str, sql.Composable]]:
    """Each column the rule sets, with the SQL expression of its merged value."""
    old, new = sql.Identifier(stored), sql.Identifier(incoming)
    overwrite = sql.SQL("coalesce({new}.{c}, {old}.{c})")
    fill = sql.SQL("coalesce({old}.{c}, {new}.{c})")
    merged: list[tuple[str, sql.Composable]] = [
        (c, overwrite.format(c=sql.Identifier(c), old=old, new=new)) for c in OVERWRITE
    ]
    merged += [(c, fill.format(c=sql.Identifier(c), old=old, new=new)) for c in FILL_ONLY]
    merged.append(
        (
            "metadata",
            sql.SQL("{old}.metadata || coalesce({new}.metadata, '{{}}')").format(old=old, new=new),
        )
    )
    merged.append(
        (
            "enrichment_status",
            sql.SQL(
                "CASE WHEN {new}.enrichment_status IN ({outcomes})"
                " THEN {new}.enrichment_status ELSE {old}.enrichment_status END"
            ).format(
                old=old,
                new=new,
                outcomes=sql.SQL(", ").join(map(sql.Literal, ENRICHMENT_OUTCOMES)),
            ),
        )
    )
    return merged


# ``folded``'s merge of metadata objects in order (``||`` as an aggregate), made by the session
# that uses it.
METADATA_AGGREGATE = """
DROP AGGREGATE IF EXISTS pg_temp.merged_metadata(jsonb);
CREATE AGGREGATE pg_temp.merged_metadata(jsonb) (
    SFUNC = jsonb_concat, STYPE = jsonb, INITCOND = '{}'
);
"""


def folded(incoming: str, order: str, *, one_row: bool = False) -> list[tuple[str, sql.Composable]]:
    """``merge`` of a new track's incoming rows, one after another in ``order``, into an empty
    row: each column's value as an aggregate over the rows (GROUP BY the track; the title key is
    the group's). Descriptive columns take the last non-null value, identity columns the first,
    metadata every object in order (``METADATA_AGGREGATE``). ``one_row``: the same for a track
    of one row, without aggregates (its own values). See ``folded_status``."""
    row, by = sql.Identifier(incoming), sql.Identifier(order)
    pick = sql.SQL(
        "(array_agg({row}.{c} ORDER BY {row}.{by} {way}) FILTER (WHERE {row}.{c} IS NOT NULL))[1]"
    )
    if one_row:
        pick = sql.SQL("{row}.{c}")
    merged = [
        (c, pick.format(row=row, c=sql.Identifier(c), by=by, way=sql.SQL("DESC")))
        for c in OVERWRITE
    ]
    merged += [
        (c, pick.format(row=row, c=sql.Identifier(c), by=by, way=sql.SQL("ASC")))
        for c in FILL_ONLY
        if c != "title_key"
    ]
    metadata = (
        "{row}.metadata"
        if one_row
        else "pg_temp.merged_metadata({row}.metadata ORDER BY {row}.{by})"
    )
    merged.append(("metadata", sql.SQL(metadata).format(row=row, by=by)))
    return merged


def folded_status(incoming: str, order: str, *, one_row: bool = False) -> sql.Composed:
    """The last enrichment outcome of the rows in ``order``, or NULL (a new track is pending)."""
    row, by = sql.Identifier(incoming), sql.Identifier(order)
    outcomes = sql.SQL(", ").join(map(sql.Literal, ENRICHMENT_OUTCOMES))
    if one_row:
        return sql.SQL(
            "CASE WHEN {row}.enrichment_status IN ({outcomes}) THEN {row}.enrichment_status END"
        ).format(row=row, outcomes=outcomes)
    return sql.SQL(
        "(array_agg({row}.enrichment_status ORDER BY {row}.{by} DESC)"
        " FILTER (WHERE {row}.enrichment_status IN ({outcomes})))[1]"
    ).format(row=row, by=by, outcomes=outcomes)


def assignments(stored: str = "t", incoming: str = "u") -> sql.Composed:
    """``merge`` as the SET list of an UPDATE from alias ``incoming`` onto alias ``stored``."""
    parts = [
        sql.SQL("{} = {}").format(sql.Identifier(c), value)
        for c, value in _merged(stored, incoming)
    ]
    parts.append(sql.SQL("updated_at = now()"))
    return sql.SQL(", ").join(parts)


def changes(stored: str = "t", incoming: str = "u") -> sql.Composed:
    """The condition that ``merge`` changes the stored row: an UPDATE guarded by it writes
    nothing for a record that brings nothing new (a re-import of known rows)."""
    merged = _merged(stored, incoming)
    return sql.SQL("({}) IS DISTINCT FROM ({})").format(
        sql.SQL(", ").join(value for _, value in merged),
        sql.SQL(", ").join(
            sql.SQL("{}.{}").format(sql.Identifier(stored), sql.Identifier(c)) for c, _ in merged
        ),
    )


def incoming_columns() -> sql.Composed:
    """An incoming row's columns with their types, as in a table's definition."""
    return sql.SQL(", ").join(
        sql.SQL("{} {}").format(sql.Identifier(name), sql.SQL(kind))
        for name, kind in COLUMN_TYPES.items()
    )


def incoming_row() -> sql.Composed:
    """An incoming row from named parameters, as a SELECT list: ``%(bpm)s::numeric AS bpm, …``."""
    return sql.SQL(", ").join(
        sql.SQL("{}::{} AS {}").format(sql.Placeholder(name), sql.SQL(kind), sql.Identifier(name))
        for name, kind in COLUMN_TYPES.items()
    )
