"""The schema's floor: what PostgreSQL alone needs to store the rows a writer run produced.

A throughput figure says little until it is set against the work that cannot be avoided. This
copies the catalogue tables a run filled (artists, tracks, credits, the lookup cache) into
temporary tables of a fresh database, untimed, then times one set-based ``INSERT … SELECT``
per table into the real schema: the same rows, the same indexes, CHECK constraints and
foreign-key checks, and none of the work of deciding what the rows are (validation, keys,
tiers, conflicts, locks, round trips). The writer can approach this time, never beat it.
"""

from __future__ import annotations

import tempfile
import time
from contextlib import closing

from psycopg2 import sql

from scrapers.db.server.connection import connect
from scrapers.db.write import bulk

# Parents before children, as the foreign keys require. The digests of imported rows
# (migration 009) are part of what an import stores; a crawl stores none.
TABLES = ("artists", "tracks", "track_artists", "track_lookup", "import_row_digests")


def floor_seconds(
    filled_url: str, empty_url: str, *, foreign_keys: bool = True
) -> tuple[float, dict[str, int]]:
    """Seconds to insert ``filled_url``'s catalogue rows into ``empty_url``, and row counts.

    ``foreign_keys`` False: the bulk mode's floor, the child tables' foreign keys dropped
    first and added back, validated, before COMMIT (``scrapers.db.write.bulk``), in the timed part.
    """
    counts: dict[str, int] = {}
    with (
        closing(connect(filled_url)) as filled,
        closing(connect(empty_url)) as empty,
        filled.cursor() as source,
        empty.cursor() as target,
    ):
        for table in TABLES:
            staged = sql.Identifier(f"staged_{table}")
            target.execute(
                sql.SQL("CREATE TEMP TABLE {} (LIKE {})").format(staged, sql.Identifier(table))
            )
            # Through a file, not memory: the benchmarks report their own peak memory.
            with tempfile.TemporaryFile("w+", encoding="utf-8") as buffer:
                source.copy_expert(
                    sql.SQL("COPY {} TO STDOUT").format(sql.Identifier(table)), buffer
                )
                buffer.seek(0)
                target.copy_expert(sql.SQL("COPY {} FROM STDIN").format(staged), buffer)
        target.execute("ANALYZE")
        empty.commit()
        started = time.perf_counter()
        dropped = [] if foreign_keys else bulk.drop_foreign_keys(target)
        for table in TABLES:
            target.execute(
                sql.SQL("INSERT INTO {} SELECT * FROM {}").format(
                    sql.Identifier(table), sql.Identifier(f"staged_{table}")
                )
            )
            counts[table] = target.rowcount
        bulk.add_foreign_keys(target, dropped)
        empty.commit()
        return time.perf_counter() - started, counts
