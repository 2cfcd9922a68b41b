"""Advisory locks that serialise writers on the keys they resolve.

The title tier has no unique index (two recordings may share artist and title), so "look it up,
insert when missing" is only safe while no other writer is resolving the same key. Every writer
(batch writer, ``assign_identifiers``) locks hashes of its ISRCs, Spotify IDs, title keys and
artist names before reading, in one statement and in sorted order, so two writers never deadlock
on each other. Keys are folded into a fixed number of buckets: PostgreSQL's lock table is small
(``max_locks_per_transaction``), and a big import batch must not exhaust it.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable

import psycopg2.extensions

# Arbitrary but fixed first half of the two-integer advisory lock key: "tl" for tracklists.
LOCK_CLASS = 0x746C
LOCK_BUCKETS = 1024


def lock_key(kind: str, value: str) -> str:
    """The string a writer locks for one resolved value, e.g. ``lock_key("isrc", "USRC1…")``."""
    return f"{kind}:{value}"


def bucket(key: str) -> int:
    # Spreading keys evenly is all a bucket needs; CRC-32 does that several times faster than a
    # cryptographic digest. Every writer must use the same function, so never change it lightly.
    return zlib.crc32(key.encode("utf-8", "surrogatepass")) % LOCK_BUCKETS


def lock_keys(cursor: psycopg2.extensions.cursor, keys: Iterable[str]) -> int:
    """Take the transaction-scoped locks for ``keys``; returns how many buckets were locked.

    Released at COMMIT or ROLLBACK. Call before the first read of the values being resolved.
    """
    taken: set[int] = set()
    for key in keys:
        taken.add(bucket(key))
        if len(taken) == LOCK_BUCKETS:
            break  # a big batch covers every bucket: no need to hash the rest
    buckets = sorted(taken)
    if buckets:
        cursor.execute(
            "SELECT pg_advisory_xact_lock(%s, b)"
            " FROM unnest(%s::int[]) WITH ORDINALITY AS t(b, n) ORDER BY n",
            (LOCK_CLASS, buckets),
        )
    return len(buckets)
