"""The merge rule: what an update of a track takes from an incoming record and what it keeps of
the stored row. Written once, in Python (``merge``) and, beside it, in SQL (``assignments``);
``tests/test_merge_rule.py`` checks that the two agree.

* Descriptive columns (``records.OVERWRITE_COLUMNS``): a non-null incoming value replaces the
  stored one; null never erases.
* Identity columns (``records.FILL_ONLY_COLUMNS``, the identifiers, the title key): filled only
  while empty. Which track may take an identifier is ``conflicts.decide``'s policy, before this.
* ``metadata``: the incoming keys are added, replacing stored keys of the same name.
* ``enrichment_status``: an outcome (enriched, not_found, failed) replaces what is stored;
  "pending" never replaces an outcome, so re-crawling an enriched track does not queue it again.

Used by the batch writer (within a batch, ``resolution.Track.absorb``; against the stored row,
``statements.write_tracks``), by enrichment's store (``conflicts.assign_identifiers``) and by
migration 002's keeper fill, which renders the same rule in its own SQL (the keeper is the
stored row, its duplicates' values the incoming record).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from psycopg2 import sql

from scrapers.db import records
from scrapers.statuses import EnrichmentStatus

OVERWRITE = records.OVERWRITE_COLUMNS
FILL_ONLY = (*records.FILL_ONLY_COLUMNS, "isrc", "spotify_id", "title_key")
ENRICHMENT_OUTCOMES = EnrichmentStatus.outcomes()


def merge(stored: Mapping[str, Any], incoming: Mapping[str, Any]) -> dict[str, Any]:
    """The row after ``incoming`` is merged into ``stored`` (columns absent count as null)."""
    merged = dict(stored)
    for name in OVERWRITE:
        if incoming.get(name) is not None:
            merged[name] = incoming[name]
    for name in FILL_ONLY:
        if stored.get(name) is None and incoming.get(name) is not None:
            merged[name] = incoming[name]
    if "metadata" in stored or incoming.get("metadata"):
        merged["metadata"] = {**(stored.get("metadata") or {}), **(incoming.get("metadata") or {})}
    if incoming.get("enrichment_status") in ENRICHMENT_OUTCOMES:
        merged["enrichment_status"] = incoming["enrichment_status"]
    return merged


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
