"""``--bulk`` for CSV files: the whole file in one staging table, resolved in SQL where it can be.

The batch writer resolves items one after another, each against the stored tracks and the items
before it. Over a whole file most of that order does not matter: a title key whose rows carry at
most one ISRC and one Spotify ID, that no other title key's rows share, and that matches no stored
track (by title key, identifier or known spelling) makes exactly one new track whatever the order,
with the first row's title and credits and the merge rule folded over its rows in file order.
Those *simple* groups are inserted here, set-based, ordered by primary key. Every other row is
*tangled* (identifier conflicts, a title key shared by several recordings, updates of stored
tracks, spellings already known) and goes through the batch writer afterwards, in file order: it
shares no key with a simple group, so the order between the two parts changes nothing.

The staging tables are temporary (private to the load's session, never WAL-logged, like UNLOGGED
tables) and dropped at COMMIT; the load is the bulk transaction of ``scrapers.db.write.bulk``.
``tests/test_import_staged.py`` compares catalogues loaded this way and by the shared mode.
"""

from __future__ import annotations

import io
import json
from collections import Counter
from collections.abc import Iterator, Sequence

import polars as pl
import psycopg2.extensions
from psycopg2 import sql

from scrapers import identity
from scrapers.db.write import bulk, known_rows, merge_sql, records
from scrapers.db.write import staging_statements as statements
from scrapers.db.write.batch import BatchResult
from scrapers.db.write.copy import copy_rows
from scrapers.db.write.ids import new_id
from scrapers.db.write.records import TrackRecord
from scrapers.metrics import MatchTier
from scrapers.statuses import CreditRole, EnrichmentStatus

_STAGED = (
    "line",
    "location",
    "digest",
    "artist",
    "title",
    "title_key",
    "normalized_title",
    "isrc",
    "spotify_id",
    "is_remix",
    *records.OVERWRITE_COLUMNS,
    *records.FILL_ONLY_COLUMNS,
    "metadata",
    "enrichment_status",
    "invalid_identifiers",
)
_CREDITS = ("line", "position", "name", "artist_key", "role")
_ROLES = {role.value: role for role in CreditRole}
WORK_MEM = "256MB"


class StagedLoad:
    """One file's rows in the staging tables of the load's transaction (``cursor``);
    ``on_step`` is told which statement runs."""

    def __init__(self, cursor: psycopg2.extensions.cursor, on_step: bulk.OnStep) -> None:
        self.cursor = cursor
        self.on_step = on_step
        self.rows = 0  # rows staged
        # Sorts, hashes and index builds over a whole file: in memory, not in temporary files
        # (the defaults, 4 MB and 64 MB, spill at a few thousand rows); for this transaction only.
        cursor.execute(f"SET LOCAL work_mem = '{WORK_MEM}'")
        cursor.execute(f"SET LOCAL maintenance_work_mem = '{WORK_MEM}'")
        cursor.execute(statements.CREATE)
        cursor.execute(merge_sql.METADATA_AGGREGATE)

    def add_columns(
        self, fast: pl.DataFrame, credits: pl.DataFrame, metadata: dict[str, str]
    ) -> None:
        """Rows decided in columns (``importers.columnar.Chunk``), by one COPY each table;
        ``metadata`` is what the reader put in every row's item."""
        if fast.is_empty():
            return
        given = set(fast.columns)

        def text(name: str) -> pl.Expr:
            return pl.col(name) if name in given else pl.lit(None, pl.String).alias(name)

        rows = fast.select(
            "line",
            "location",
            pl.concat_str(pl.lit("\\x"), pl.col("digest").bin.encode("hex")).alias("digest"),
            "artist",
            "title",
            "title_key",
            "normalized_title",
            pl.col("_isrc").alias("isrc"),
            pl.col("_spotify_id").alias("spotify_id"),
            pl.col("_is_remix").alias("is_remix"),
            pl.col("_bpm").alias("bpm"),
            pl.col("_duration_ms").alias("duration_ms"),
            text("key"),
            text("label"),
            pl.col("_release_date").alias("release_date"),
            text("genre"),
            text("musicbrainz_id"),
            pl.col("_version").alias("version"),
            pl.lit(json.dumps(metadata)).alias("metadata"),
            pl.col("_status").alias("enrichment_status"),
        )
        self._copy_csv("import_staging", rows)
        self.rows += rows.height
        credited = credits.select(
            "line",
            pl.int_range(pl.len()).over("line").alias("position"),
            "name",
            pl.col("key").alias("artist_key"),
            "role",
        )
        self._copy_csv("import_staged_credits", credited)

    def add_records(self, staged: Sequence[tuple[int, str, bytes | None, TrackRecord]]) -> None:
        """Rows validated by ``records.to_record``: (line, location, digest, record)."""
        rows, credits = [], []
        for line, location, digest, record in staged:
            rows.append(
                (
                    line,
                    location,
                    None if digest is None else "\\x" + digest.hex(),
                    record.artist,
                    record.title,
                    record.title_key,
                    record.normalized_title,
                    record.isrc,
                    record.spotify_id,
                    record.is_remix,
                    *(record.values.get(c) for c in records.OVERWRITE_COLUMNS),
                    *(record.values.get(c) for c in records.FILL_ONLY_COLUMNS),
                    json.dumps(record.metadata, default=str),
                    record.enrichment_status,
                    "{" + ",".join(record.invalid_identifiers) + "}",
                )
            )
            for position, (name, role) in enumerate(record.credits):
                credits.append((line, position, name, identity.artist_key(name), str(role)))
        copy_rows(self.cursor, "import_staging", _STAGED, rows)
        self.rows += len(rows)
        copy_rows(self.cursor, "import_staged_credits", _CREDITS, credits)

    def insert_simple(self) -> tuple[BatchResult, Counter[str]]:
        """Insert the tracks of the simple groups, their credits, spellings and digests; what
        was stored, and the invalid identifiers of those rows by kind."""
        cursor = self.cursor
        self.on_step("resolving the staged rows")
        cursor.execute(statements.TANGLED, {"track_ids": _id_prefix()})
        # The merge rule over each group's rows: aggregates where a group has several, the
        # row's own values where it has one (most groups: an aggregate per column costs more).
        folded = merge_sql.folded("s", "line")
        alone = dict(merge_sql.folded("f", "line", one_row=True))
        columns = [name for name, _ in folded]
        self.on_step("inserting the new tracks")
        cursor.execute(
            sql.SQL(
                "INSERT INTO tracks (id, title, normalized_title, title_key, is_remix, {columns},"
                " enrichment_status)"
                " SELECT n.id, f.title, f.normalized_title, n.title_key, f.is_remix, {values},"
                " coalesce(CASE WHEN n.rows = 1 THEN {status} ELSE a.enrichment_status END,"
                " {pending})"
                " FROM import_new n JOIN import_staging f ON f.line = n.first_line"
                " LEFT JOIN (SELECT s.title_key, {folded} FROM import_staging s"
                "       JOIN import_new USING (title_key) WHERE import_new.rows > 1"
                "       GROUP BY s.title_key) AS a"
                " ON a.title_key = n.title_key ORDER BY n.id"
            ).format(
                columns=sql.SQL(", ").join(map(sql.Identifier, columns)),
                values=sql.SQL(", ").join(
                    sql.SQL("CASE WHEN n.rows = 1 THEN {} ELSE a.{} END").format(
                        alone[name], sql.Identifier(name)
                    )
                    for name in columns
                ),
                status=merge_sql.folded_status("f", "line", one_row=True),
                pending=sql.Literal(EnrichmentStatus.PENDING.value),
                folded=sql.SQL(", ").join(
                    sql.SQL("{} AS {}").format(value, sql.Identifier(name))
                    for name, value in [
                        *folded,
                        ("enrichment_status", merge_sql.folded_status("s", "line")),
                    ]
                ),
            )
        )
        self.on_step("inserting their artists, credits and spellings")
        cursor.execute(statements.ARTISTS, {"artist_ids": _id_prefix()})
        self.on_step("remembering the rows stored (known rows)")
        known_rows.store_staged(
            cursor,
            "SELECT s.digest, n.id FROM import_staging s JOIN import_new n USING (title_key)"
            " WHERE s.digest IS NOT NULL",
        )
        cursor.execute(statements.OUTCOMES)
        result = BatchResult()
        for tier, matched, count in cursor.fetchall():
            created = matched == MatchTier.NEW
            result.items += count
            result.tiers[tier] += count
            result.matched[MatchTier(matched)] += count
            result.tier_outcomes[(tier, "inserted" if created else "updated")] += count
            if created:
                result.inserted += count
            else:
                result.updated += count
        cursor.execute(
            "SELECT kind, count(*) FROM import_staging s JOIN import_new USING (title_key),"
            " unnest(s.invalid_identifiers) AS kind GROUP BY kind"
        )
        invalid = Counter(dict(cursor.fetchall()))
        result.invalid_identifiers = sum(invalid.values())
        return result, invalid

    def tangled(
        self, batch_size: int
    ) -> Iterator[tuple[list[TrackRecord], list[str], list[bytes | None]]]:
        """The tangled rows as records, in file order, ``batch_size`` at a time."""
        cursor = self.cursor
        # Set-based joins need no index; paging through the tangled rows by line does.
        cursor.execute(
            "CREATE TEMP TABLE import_tangled_rows ON COMMIT DROP AS"
            " SELECT s.* FROM import_staging s JOIN import_tangled USING (title_key);"
            " CREATE INDEX ON import_tangled_rows (line);"
            " CREATE INDEX ON import_staged_credits (line)"
        )
        after = -1
        while True:
            cursor.execute(
                sql.SQL(
                    "SELECT {} FROM import_tangled_rows s"
                    " WHERE s.line > %s ORDER BY s.line LIMIT %s"
                ).format(
                    sql.SQL(", ").join(
                        sql.SQL("s.{}").format(sql.Identifier(c))
                        if c != "musicbrainz_id"
                        else sql.SQL("s.musicbrainz_id::text")
                        for c in _STAGED
                    )
                ),
                (after, batch_size),
            )
            rows = cursor.fetchall()
            if not rows:
                return
            after = rows[-1][0]
            cursor.execute(
                "SELECT line, name, role FROM import_staged_credits"
                " WHERE line = ANY(%s) ORDER BY line, position",
                ([row[0] for row in rows],),
            )
            credits: dict[int, list[tuple[str, CreditRole]]] = {}
            for line, name, role in cursor.fetchall():
                credits.setdefault(line, []).append((name, _ROLES[role]))
            yield (
                [_record(row, credits.get(row[0], [])) for row in rows],
                [row[1] for row in rows],
                [None if row[2] is None else bytes(row[2]) for row in rows],
            )

    def name_artists(self) -> None:
        """After the tangled rows: name each artist this load made as the writer would have."""
        self.on_step("naming the artists the load made")
        self.cursor.execute(statements.ARTIST_NAMES)

    def _copy_csv(self, table: str, frame: pl.DataFrame) -> None:
        buffer = io.BytesIO()
        frame.write_csv(buffer, include_header=False, null_value="")
        buffer.seek(0)
        self.cursor.copy_expert(
            sql.SQL("COPY {} ({}) FROM STDIN WITH (FORMAT csv)").format(
                sql.Identifier(table), sql.SQL(", ").join(map(sql.Identifier, frame.columns))
            ),
            buffer,
        )


def _record(row: tuple, credits: list[tuple[str, CreditRole]]) -> TrackRecord:
    named = dict(zip(_STAGED, row, strict=True))
    values = {
        name: named[name] for name in (*records.OVERWRITE_COLUMNS, *records.FILL_ONLY_COLUMNS)
    }
    return TrackRecord(
        is_track=True,
        placement=None,
        artist=named["artist"],
        title=named["title"],
        title_key=named["title_key"],
        normalized_title=named["normalized_title"],
        isrc=named["isrc"],
        spotify_id=named["spotify_id"],
        values=values,
        is_remix=named["is_remix"],
        metadata=named["metadata"],
        credits=credits,
        enrichment_status=named["enrichment_status"],
        invalid_identifiers=list(named["invalid_identifiers"]),
    )


def _id_prefix() -> str:
    """The first 20 hex digits of a new id (time, version, random bits, variant): one statement's
    ids are it and a 12-digit counter, so they sort in the order they are made."""
    return new_id().replace("-", "")[:20]
