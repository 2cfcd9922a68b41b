"""Advisory locks that serialise writers on the keys they resolve.

The title tier has no unique index (two recordings may share artist and title), so "look it up,
insert when missing" is only safe while no other writer is resolving the same key. Every writer
(batch writer, ``assign_identifiers``) locks hashes of its ISRCs, Spotify IDs, title keys and
artist names before reading, in one statement and in sorted order, so two writers never deadlock
on each other. Keys are folded into a fixed number of buckets: PostgreSQL's lock table is small
(``max_locks_per_transaction``), and a big import batch must not exhaust it.
"""

from __future__ import annotations

import logging
import time
import zlib
from collections.abc import Callable, Iterable
from typing import TypeVar

import psycopg2.errors
import psycopg2.extensions

# Arbitrary but fixed first half of the two-integer advisory lock key: "tl" for tracklists.
LOCK_CLASS = 0x746C
LOCK_BUCKETS = 1024
# The tables writers write, parents first: the order a bulk load locks them in.
WRITTEN_TABLES = (
    "tracks",
    "artists",
    "setlists",
    "track_artists",
    "track_lookup",
    "setlist_tracks",
    "identifier_conflicts",
    "import_row_digests",
)
# How long one try waits for a lock before ``wait_for_locks`` says who is in the way.
LOCK_POLL_SECONDS = 1.0

# How often a long wait for locks is logged again (``LockWaitLog``).
LOCK_WAIT_LOG_SECONDS = 10.0

# Called while waiting for locks: seconds waited so far, other sessions holding the catalogue's
# locks. It may raise to stop waiting (a writer that is shutting down).
OnLockWait = Callable[[float, int], None]
T = TypeVar("T")


def lock_key(kind: str, value: str) -> str:
    """The string a writer locks for one resolved value, e.g. ``lock_key("isrc", "USRC1…")``."""
    return f"{kind}:{value}"


def bucket(key: str) -> int:
    # Spreading keys evenly is all a bucket needs; CRC-32 does that several times faster than a
    # cryptographic digest. Every writer must use the same function, so never change it lightly.
    return zlib.crc32(key.encode("utf-8", "surrogatepass")) % LOCK_BUCKETS


def lock_keys(
    cursor: psycopg2.extensions.cursor, keys: Iterable[str], on_wait: OnLockWait | None = None
) -> int:
    """Take the transaction-scoped locks for ``keys``; returns how many buckets were locked.

    Released at COMMIT or ROLLBACK. Call before the first read of the values being resolved.
    ``on_wait``: see ``wait_for_locks``.
    """
    taken: set[int] = set()
    for key in keys:
        taken.add(bucket(key))
        if len(taken) == LOCK_BUCKETS:
            break  # a big batch covers every bucket: no need to hash the rest
    buckets = sorted(taken)
    if buckets:
        wait_for_locks(
            cursor,
            lambda locking: locking.execute(
                "SELECT pg_advisory_xact_lock(%s, b)"
                " FROM unnest(%s::int[]) WITH ORDINALITY AS t(b, n) ORDER BY n",
                (LOCK_CLASS, buckets),
            ),
            on_wait,
        )
    return len(buckets)


def wait_for_locks(
    cursor: psycopg2.extensions.cursor,
    run: Callable[[psycopg2.extensions.cursor], T],
    on_wait: OnLockWait | None,
) -> T:
    """``run(cursor)``, as long as its locks take; without ``on_wait``, simply ``run``.

    With ``on_wait``, each try waits at most ``LOCK_POLL_SECONDS`` for a lock (inside a
    savepoint, or as its own statement on an autocommit connection), so that between tries
    ``on_wait`` can say how long it has been and how many sessions are in the way: a writer
    behind a bulk import shows that it waits, and why, instead of seeming to hang.
    """
    if on_wait is None:
        return run(cursor)
    connection = cursor.connection
    in_transaction = not connection.autocommit
    # The bookkeeping has a cursor of its own: ``run``'s results stay on ``cursor``.
    with connection.cursor() as control:
        control.execute("SELECT current_setting('lock_timeout')")
        (lock_timeout,) = control.fetchone()
        started = time.monotonic()
        while True:
            if in_transaction:
                control.execute("SAVEPOINT lock_wait")
            control.execute(
                "SELECT set_config('lock_timeout', %s, %s)",
                (f"{int(LOCK_POLL_SECONDS * 1000)}ms", in_transaction),
            )
            try:
                result = run(cursor)
            except (psycopg2.errors.LockNotAvailable, psycopg2.errors.DeadlockDetected):
                if in_transaction:
                    control.execute("ROLLBACK TO SAVEPOINT lock_wait")
                on_wait(time.monotonic() - started, _holders(control))
                continue
            finally:
                if not in_transaction:
                    control.execute("SELECT set_config('lock_timeout', %s, false)", (lock_timeout,))
            if in_transaction:
                control.execute("RELEASE SAVEPOINT lock_wait")
                control.execute("SELECT set_config('lock_timeout', %s, true)", (lock_timeout,))
            return result


class LockWaitLog:
    """An ``OnLockWait`` that logs a WARNING at once, then every ``LOCK_WAIT_LOG_SECONDS``: a
    crawl behind a bulk import says what waits and why, instead of seeming to hang.

    ``what`` names the waiting work ("Database writes", "The lookup of known tracklists").
    """

    def __init__(self, log: logging.Logger, what: str) -> None:
        self.log = log
        self.what = what
        self._waited = float("inf")
        self._logged = 0.0

    def __call__(self, seconds: float, holders: int) -> None:
        # A figure smaller than the one before is a new wait.
        new_wait, self._waited = seconds < self._waited, seconds
        if not new_wait and seconds < self._logged + LOCK_WAIT_LOG_SECONDS:
            return
        self._logged = seconds
        self.log.warning(
            "%s waiting %.0fs for the catalogue's locks: %d other session(s) hold them"
            " (an import with --bulk holds them until it commits)",
            self.what,
            seconds,
            holders,
        )


def _holders(cursor: psycopg2.extensions.cursor) -> int:
    """Other sessions holding locks on the written tables or the writers' advisory buckets.

    Of this database only: ``pg_locks`` lists the whole server's, and another catalogue on it
    (copied from this one, so with the same table OIDs) takes the same advisory keys.
    """
    cursor.execute(
        "SELECT count(DISTINCT pid) FROM pg_locks"
        " WHERE granted AND pid <> pg_backend_pid()"
        "   AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
        "   AND (relation = ANY(%s::regclass[]) OR (locktype = 'advisory' AND classid = %s))",
        (list(WRITTEN_TABLES), LOCK_CLASS),
    )
    return cursor.fetchone()[0]
