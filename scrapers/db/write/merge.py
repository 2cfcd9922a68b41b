"""The merge rule: what an update of a track takes from an incoming record and what it keeps of
the stored row. Written once, in Python (``merge``, here: pure, no database) and, beside it, in
SQL (``merge_sql.assignments``); ``tests/test_merge_rule.py`` checks that the two agree.

* Descriptive columns (``records.OVERWRITE_COLUMNS``): a non-null incoming value replaces the
  stored one; null never erases.
* Identity columns (``records.FILL_ONLY_COLUMNS``, the identifiers, the title key): filled only
  while empty. Which track may take an identifier is ``conflict_policy.decide``, before this.
* ``metadata``: the incoming keys are added, replacing stored keys of the same name.
* ``enrichment_status``: an outcome (enriched, not_found, failed) replaces what is stored;
  "pending" never replaces an outcome, so re-crawling an enriched track does not queue it again.

Used by the batch writer (within a batch, ``resolution.Track.absorb``; against the stored row,
``statements.write_tracks``), by enrichment's store (``conflicts.assign_identifiers``), by
``--bulk``'s staging (``merge_sql.folded``) and by migration 002's keeper fill, which renders
the same rule in its own SQL (the keeper is the stored row, its duplicates' values the incoming
record).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from scrapers.db.write import records
from scrapers.statuses import EnrichmentStatus

OVERWRITE = records.OVERWRITE_COLUMNS
FILL_ONLY = (*records.FILL_ONLY_COLUMNS, "isrc", "spotify_id", "title_key")
ENRICHMENT_OUTCOMES = EnrichmentStatus.outcomes()
# Each column the rule sets, with its type in ``tracks``: the columns of an incoming row
# (``merge_sql.incoming_columns`` and ``incoming_row``), in the rule's order.
COLUMN_TYPES = {
    "bpm": "numeric",
    "duration_ms": "integer",
    "key": "text",
    "label": "text",
    "release_date": "date",
    "genre": "text",
    "musicbrainz_id": "uuid",
    "version": "text",
    "isrc": "text",
    "spotify_id": "text",
    "title_key": "text",
    "metadata": "jsonb",
    "enrichment_status": "text",
}


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
