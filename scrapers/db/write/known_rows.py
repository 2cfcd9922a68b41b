"""Import rows already in the catalogue (migration 009): a re-import skips them unvalidated.

A row is known by the importer's digest of it as read (``scrapers.importers.driver.row_digest``)
while the track it was stored as still exists. The batch writer stores the digests of a batch in
that batch's transaction, so a digest never outlives a rolled-back batch.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import psycopg2.extensions

from scrapers.db.write.arrays import text_array
from scrapers.db.write.locks import OnLockWait, wait_for_locks

# A digest stored before now names the given track.
_REPLACE = (
    " ON CONFLICT (digest) DO UPDATE SET track_id = EXCLUDED.track_id, stored_at = now()"
    " WHERE import_row_digests.track_id <> EXCLUDED.track_id"
)


def known(
    cursor: psycopg2.extensions.cursor,
    digests: Sequence[bytes],
    on_lock_wait: OnLockWait | None = None,
) -> set[bytes]:
    """The ``digests`` stored for a track that still exists; one query (``on_lock_wait`` as
    ``locks.wait_for_locks``: a bulk import holds these tables until it commits)."""
    if not digests:
        return set()
    # ``= ANY`` of an array probes the primary key once per digest; a join with ``unnest``
    # was planned as a hash join over the whole table (60 ms a batch at 165,000 digests).
    wait_for_locks(
        cursor,
        lambda reading: reading.execute(
            "SELECT d.digest FROM import_row_digests d JOIN tracks t ON t.id = d.track_id"
            " WHERE d.digest = ANY(ARRAY(SELECT decode(h, 'hex') FROM unnest(%s::text[]) AS h))",
            (text_array(digest.hex() for digest in digests),),
        ),
        on_lock_wait,
    )
    return {bytes(digest) for (digest,) in cursor.fetchall()}


def store(cursor: psycopg2.extensions.cursor, pairs: Iterable[tuple[bytes, str]]) -> None:
    """Remember each (digest, track id); a digest stored before now names this track.

    One statement. In digest order, so that two writers storing the same digests wait for each
    other instead of deadlocking; a digest given twice keeps its last track.
    """
    tracks = dict(pairs)
    if not tracks:
        return
    digests = sorted(tracks)
    cursor.execute(
        "INSERT INTO import_row_digests (digest, track_id)"
        " SELECT decode(h, 'hex'), t FROM unnest(%s::text[], %s::uuid[]) AS u(h, t)" + _REPLACE,
        (text_array(d.hex() for d in digests), text_array(tracks[d] for d in digests)),
    )


def store_staged(cursor: psycopg2.extensions.cursor, pairs: str) -> None:
    """``store`` of the (digest, track id) rows of the query ``pairs``, distinct digests, set-based
    (a bulk load's staging tables)."""
    cursor.execute(
        "INSERT INTO import_row_digests (digest, track_id)"
        f" SELECT digest, id FROM ({pairs}) AS pairs (digest, id) ORDER BY 1" + _REPLACE
    )
