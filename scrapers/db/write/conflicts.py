"""The identifier conflict policy's writes: conflicts recorded in ``identifier_conflicts`` and
counted, and ``assign_identifiers``, which gives an existing track identifiers under the policy.
The policy itself, pure, is ``conflict_policy.py``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import psycopg2
import psycopg2.errors
import psycopg2.extensions
from psycopg2 import sql
from psycopg2.extras import execute_values

from scrapers import identity, metrics
from scrapers.db.write import merge, merge_sql, records
from scrapers.db.write.conflict_policy import Conflict, decide
from scrapers.db.write.fields import MAX_SHORT_CHARS, Rejected
from scrapers.db.write.locks import lock_key, lock_keys
from scrapers.statuses import ConflictResolution, IdentifierType

logger = logging.getLogger(__name__)


def insert_conflicts(
    cursor: psycopg2.extensions.cursor, conflicts: Iterable[Conflict], origin: str
) -> list[Conflict]:
    """Record conflicts not already recorded (a replayed batch adds nothing); returns the new."""
    rows = [
        (
            c.identifier_type,
            c.track_id,
            c.other_track_id,
            c.stored_value,
            c.incoming_value,
            origin,
            c.resolution,
        )
        for c in conflicts
    ]
    if not rows:
        return []
    inserted = execute_values(
        cursor,
        """
        INSERT INTO identifier_conflicts (identifier_type, track_id, other_track_id,
                                          stored_value, incoming_value, origin, resolution)
        SELECT v.identifier_type, v.track_id, v.other_track_id, v.stored_value,
               v.incoming_value, v.origin, v.resolution
        FROM (VALUES %s) AS v (n, identifier_type, track_id, other_track_id, stored_value,
                               incoming_value, origin, resolution)
        WHERE NOT EXISTS (
            SELECT 1 FROM identifier_conflicts c
            WHERE c.identifier_type = v.identifier_type AND c.track_id = v.track_id
              AND c.other_track_id IS NOT DISTINCT FROM v.other_track_id
              AND c.stored_value IS NOT DISTINCT FROM v.stored_value
              AND c.incoming_value = v.incoming_value AND c.resolution = v.resolution)
        ORDER BY v.n
        RETURNING identifier_type, track_id::text, other_track_id::text, stored_value,
                  incoming_value, resolution
        """,
        [(n, *row) for n, row in enumerate(dict.fromkeys(rows))],
        template="(%s, %s, %s::uuid, %s::uuid, %s::text, %s, %s, %s)",
        page_size=len(rows),
        fetch=True,
    )
    return [
        Conflict(IdentifierType(kind), track, other, stored, incoming, ConflictResolution(how))
        for kind, track, other, stored, incoming, how in inserted
    ]


def count_conflicts(conflicts: Iterable[Conflict]) -> None:
    for conflict in conflicts:
        metrics.IDENTIFIER_CONFLICTS.labels(conflict.identifier_type, conflict.resolution).inc()


@dataclass
class AssignmentOutcome:
    """What ``assign_identifiers`` did: identifiers gained, conflicts met (``recorded``: those
    new to ``identifier_conflicts``), invalid input."""

    assigned: dict[str, str] = field(default_factory=dict)
    conflicts: list[Conflict] = field(default_factory=list)
    recorded: list[Conflict] = field(default_factory=list)
    invalid: dict[str, str] = field(default_factory=dict)


def assign_identifiers(
    connection: psycopg2.extensions.connection,
    track_id: str,
    *,
    isrc: str | None = None,
    spotify_id: str | None = None,
    values: Mapping[str, Any] | None = None,
    metadata: Mapping[str, Any] | None = None,
    origin: str,
) -> AssignmentOutcome:
    """Give an EXISTING track identifiers and descriptive values under the conflict policy.

    For enrichment and repair scripts: never write ``tracks.isrc``/``spotify_id`` yourself.

    * ``isrc``/``spotify_id`` are raw (hyphens, URIs and URLs are fine); an invalid value is not
      stored, is reported in ``outcome.invalid`` and its raw text is kept in the track's
      ``metadata["invalid"]``.
    * ``values`` may hold ``bpm``, ``duration_ms``, ``key``, ``label``, ``release_date``,
      ``genre`` (non-null replaces), ``musicbrainz_id``, ``version`` (only fill empty). They are
      validated like pipeline items: a wrong type raises ``fields.Rejected``.
    * ``metadata`` keys are merged into the track's metadata (provenance, source ids).
    * Conflicts are written to ``identifier_conflicts`` and counted; they never raise.

    Runs inside the caller's transaction (inside a savepoint) and does not commit; on an
    autocommit connection it is a transaction of its own. It takes the
    writers' advisory locks on the identifiers, which are held until the caller commits: commit
    after each track (or a small batch) so that crawls and imports are not held up. Raises
    ``LookupError`` when the track does not exist.
    """
    outcome = AssignmentOutcome()
    parsed: dict[IdentifierType, str | None] = {}
    for name, raw, parse in (
        (IdentifierType.ISRC, isrc, identity.parse_isrc),
        (IdentifierType.SPOTIFY_ID, spotify_id, identity.parse_spotify_id),
    ):
        try:
            parsed[name] = parse(raw)
        except identity.InvalidIdentifier:
            parsed[name] = None
            outcome.invalid[name] = str(raw)[:MAX_SHORT_CHARS]
    row = _validated_values(values or {})
    merged_metadata = dict(metadata or {})
    if outcome.invalid:
        merged_metadata.setdefault("invalid", {}).update(outcome.invalid)

    # On an autocommit connection the call is its own transaction; otherwise the caller's.
    begin, commit, rollback = (
        ("BEGIN", "COMMIT", "ROLLBACK")
        if connection.autocommit
        else (
            "SAVEPOINT assign_identifiers",
            "RELEASE SAVEPOINT assign_identifiers",
            "ROLLBACK TO SAVEPOINT assign_identifiers",
        )
    )
    with connection.cursor() as cursor:
        cursor.execute(begin)
        try:
            _assign(cursor, track_id, parsed, row, merged_metadata, outcome, origin)
        except BaseException:
            cursor.execute(rollback)
            raise
        cursor.execute(commit)
    # Counted once committed (or released into the caller's transaction): rolled-back work is
    # not counted, as ``batch.Uncounted`` says.
    for name in outcome.invalid:
        metrics.INVALID_IDENTIFIERS.labels(name).inc()
    count_conflicts(outcome.recorded)
    return outcome


def _validated_values(values: Mapping[str, Any]) -> dict[str, Any]:
    allowed = (*records.OVERWRITE_COLUMNS, *records.FILL_ONLY_COLUMNS)
    unknown = sorted(set(values) - set(allowed))
    if unknown:
        raise Rejected("wrong_value", f"not a track value: {', '.join(unknown)}")
    record = records.to_record({"artist": "-", "title": "-", **values})
    assert isinstance(record, records.TrackRecord)
    return {name: record.values.get(name) for name in allowed if name in values}


def _assign(
    cursor: psycopg2.extensions.cursor,
    track_id: str,
    parsed: dict[IdentifierType, str | None],
    row: dict[str, Any],
    metadata: dict[str, Any],
    outcome: AssignmentOutcome,
    origin: str,
) -> None:
    lock_keys(cursor, [lock_key(name, value) for name, value in parsed.items() if value])
    cursor.execute("SELECT isrc, spotify_id FROM tracks WHERE id = %s FOR UPDATE", (track_id,))
    current = cursor.fetchone()
    if current is None:
        raise LookupError(f"no track {track_id}")
    stored = dict(zip(IdentifierType, current, strict=True))
    for name in IdentifierType:
        owner = None
        if parsed[name] is not None:
            cursor.execute(
                sql.SQL("SELECT id::text FROM tracks WHERE {} = %s AND id <> %s LIMIT 1").format(
                    sql.Identifier(name)
                ),
                (parsed[name], track_id),
            )
            found = cursor.fetchone()
            owner = found[0] if found else None
        gains, conflict = decide(name, str(track_id), parsed[name], stored[name], owner)
        if gains:
            outcome.assigned[name] = parsed[name]
        if conflict:
            outcome.conflicts.append(conflict)
    columns = {**row, **outcome.assigned}
    statement = sql.SQL("UPDATE tracks AS t SET {} FROM (SELECT {}) AS u WHERE t.id = %(id)s")
    cursor.execute(
        statement.format(merge_sql.assignments(), merge_sql.incoming_row()),
        {
            **{name: columns.get(name) for name in merge.COLUMN_TYPES},
            "metadata": json.dumps(metadata),
            "id": track_id,
        },
    )
    outcome.recorded = insert_conflicts(cursor, outcome.conflicts, origin)
    for name, value in outcome.assigned.items():
        logger.debug("Track %s gained %s %s", track_id, name, value)
