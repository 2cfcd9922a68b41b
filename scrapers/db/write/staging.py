"""``--bulk``: the whole file in one staging table, resolved in SQL where it can be.

The batch writer resolves items one after another, each against the stored tracks and the items
before it (``resolution.Resolution``: ISRC, then Spotify ID, then a known spelling, then the title
key, oldest track first, else a new track; ``conflict_policy.decide`` for identifiers). Over a
whole file most of that order does not matter. A title key's rows (its *group*) are resolved here,
set-based, when the writer would give them the same result whatever came before or after them:

* *New* groups: at most one ISRC and one Spotify ID, which no other group's rows carry, and no
  stored track within reach (none holds the title key or the identifiers, no stored spelling in
  ``track_lookup`` names a row). The writer makes exactly one track of them, with the first row's
  title and credits and the merge rule folded over the rows in file order: inserted, ordered by
  primary key, with their artists, credits, spellings and digests.
* *Update* groups: the same conditions on identifiers, and exactly one stored track T within reach
  of all the group's rows together (by title key, ISRC, Spotify ID or known spelling), which no
  other group's rows reach, which has a title key, and whose ISRC and Spotify ID are each null or
  the group's (or, for the Spotify ID, another one, when every row carrying the group's also
  carries the ISRC T holds); and every row finds T by itself or through an earlier row of the
  group: its identifier is T's, its spelling is known (T's, then), T holds the group's title key,
  or an earlier row of the group carried its identifier or its spelling (T has gained them by
  then). Then every row matches T (never a new track: nothing else is within reach), T gains the
  group's identifiers where it has none (``decide``: no other track owns them), keeps the Spotify
  ID it holds against another (``decide``: one ``kept_stored`` conflict, recorded unless it is
  already, ``CONFLICTS``), and nothing else reaches T, so the group's rows are the only ones
  that change it. The writer's update is the merge rule of the rows folded in file order merged
  onto the stored row (``merge_sql.folded``, ``assignments``, guarded by ``changes``: a group
  that brings nothing new writes nothing); T's credits are left as they are, each spelling not
  known yet joins the lookup naming T, every row's digest names T, and each row counts as an
  update under the tier the writer's order gives it (``import_matched``).

Every other group is *tangled* and goes through the batch writer afterwards, in file order,
because there the order decides the result:

* two ISRCs or Spotify IDs under one title key, or one shared with another title key: which
  track each row joins, and which row's identifier a new track takes, depends on the rows before;
* a stored track within reach whose identifier contradicts the group's: the tiers skip it for the
  rows carrying the other identifier (a new track) but not for the rows carrying none (the stored
  one, or the new one if an earlier row made it and its spelling is known by then);
* several stored tracks within reach, or a stored track that rows of another title key reach
  too: the oldest non-contradicting one, or whichever one an earlier row updated, wins, and two
  groups updating one track interleave their values in file order;
* a row that would find T only by its title key while T holds another one: it makes a new track,
  and the rows after it join that track or T depending on what they carry;
* a stored track without a title key (rows from before title keys): it takes the title key and
  the credits of whichever row reaches it first.

The other identifier conflicts with stored tracks stay with the writer. Each comes from a stored
track holding another value than a row (``kept_stored``) or another track owning the row's value
(``kept_on_other_track``), and mostly the order then decides which track a row lands on, and so
which conflict is recorded: a contradicting ISRC makes the tiers skip the stored track (a new
track, which takes the conflicts), and so does a contradicting Spotify ID carried by a row
without the stored ISRC, after which the rows carrying neither join the new track or the stored
one by their spelling and what came before. One more case would not depend on the order but is
not done here: a Spotify ID another stored track owns, carried only by rows with the ISRC of T
(``kept_on_other_track``; T must then not take the Spotify ID even when it has none, which the
folded UPDATE would give it). A group is tangled as a whole:
it shares no key with a resolved group (identifiers, title key, spellings, stored tracks within
reach), so the order between the two parts changes nothing.

Setlists and the track rows placed in them (JSONL of this project's items) are *held*: kept
whole (pickled, in ``import_held``) and written by the batch writer among the tangled rows, in
file order, so that a placed row resolves its track exactly where the shared mode would. A placed
row's track is staged too and tangles its title key (``import_crossed``) and so every key it
touches, so no resolved group shares a key with a held row either.

The staging tables are temporary (private to the load's session, never WAL-logged, like UNLOGGED
tables) and dropped at COMMIT; the load is the bulk transaction of ``scrapers.db.write.bulk``.
``tests/test_import_staged.py`` compares catalogues loaded this way and by the shared mode, and
counts the rows the SQL resolves (``StagedLoad.resolved``, logged).
"""

from __future__ import annotations

import io
import json
import logging
import pickle
from collections import Counter
from collections.abc import Iterator

import polars as pl
import psycopg2
import psycopg2.extensions
from psycopg2 import sql

from scrapers.db.write import bulk, known_rows, merge_sql, records
from scrapers.db.write import staging_statements as statements
from scrapers.db.write.batch import BatchResult
from scrapers.db.write.conflict_policy import Conflict
from scrapers.db.write.copy import copy_text
from scrapers.db.write.ids import new_id
from scrapers.db.write.records import TrackRecord
from scrapers.db.write.staging_rows import CREDITS, HELD, STAGED, StagingText
from scrapers.metrics import MatchTier
from scrapers.statuses import ConflictResolution, CreditRole, EnrichmentStatus, IdentifierType

_ROLES = {role.value: role for role in CreditRole}
logger = logging.getLogger(__name__)
WORK_MEM = "256MB"


class StagedLoad:
    """One file's rows in the staging tables of the load's transaction (``cursor``);
    ``on_step`` is told which statement runs."""

    def __init__(self, cursor: psycopg2.extensions.cursor, on_step: bulk.OnStep) -> None:
        self.cursor = cursor
        self.on_step = on_step
        self.rows = 0  # rows staged
        # Staged rows by how they were resolved (``insert_simple``): in SQL, "new" (rows of the
        # groups that made a track) and "updated" (of the groups that updated a stored one), or
        # "tangled" (by the batch writer).
        self.resolved: Counter[str] = Counter()
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

    def add_records(self, text: StagingText) -> None:
        """Rows validated by ``records.to_record``, as ``staging_text`` wrote them."""
        copy_text(self.cursor, "import_staging", STAGED, text.staging)
        copy_text(self.cursor, "import_staged_credits", CREDITS, text.credits)
        copy_text(self.cursor, "import_held", HELD, text.held)
        self.rows += text.rows

    def insert_simple(self, origin: str) -> tuple[BatchResult, Counter[str], list[Conflict]]:
        """Resolve in SQL what the order of the rows cannot change: insert the tracks of the new
        groups with their credits, update the stored track of each updating group (recording
        its conflicts as from ``origin``), and store both kinds' spellings and digests; what was
        stored, the invalid identifiers of those rows by kind, and the conflicts recorded.
        ``resolved`` counts the rows each way, and those left to the writer.

        A row PostgreSQL refuses (a data error) fails a whole set-based statement, and only the
        writer's bisection can find it and reject it alone: then nothing is stored here and
        every group is tangled, so the whole file goes through the writer, as the shared mode
        would store it."""
        cursor = self.cursor
        self.on_step("resolving the staged rows")
        cursor.execute(statements.CLASSIFY, {"track_ids": _id_prefix()})
        cursor.execute("SAVEPOINT staged_resolved")
        try:
            result, invalid, conflicts, resolved = self._store_resolved(origin)
        except (psycopg2.DataError, psycopg2.IntegrityError) as error:
            cursor.execute("ROLLBACK TO SAVEPOINT staged_resolved")
            cursor.execute(statements.TANGLE_ALL)
            logger.warning("Bulk load: every row goes through the batch writer: %s", error)
            result, invalid, conflicts, resolved = BatchResult(), Counter(), [], Counter()
        else:
            cursor.execute("RELEASE SAVEPOINT staged_resolved")
        resolved["tangled"] = self.rows - result.items
        self.resolved = resolved
        logger.info(
            "Staged %d rows: %d made or joined new tracks and %d updated stored tracks in SQL,"
            " %d go through the batch writer in file order",
            self.rows,
            resolved["new"],
            resolved["updated"],
            resolved["tangled"],
        )
        return result, invalid, conflicts

    def _store_resolved(
        self, origin: str
    ) -> tuple[BatchResult, Counter[str], list[Conflict], Counter[str]]:
        """``insert_simple``'s statements once the groups are classified; with the rows counted
        "new" and "updated"."""
        cursor = self.cursor
        columns = [name for name, _ in merge_sql.folded("s", "line")]
        self.on_step("inserting the new tracks")
        cursor.execute(
            sql.SQL(
                "INSERT INTO tracks (id, title, normalized_title, title_key, is_remix, {columns},"
                " enrichment_status)"
                " SELECT n.id, f.title, f.normalized_title, n.title_key, f.is_remix, {values},"
                " coalesce(u.enrichment_status, {pending})"
                " FROM import_new n JOIN import_staging f ON f.line = n.first_line"
                " JOIN ({folded}) AS u ON u.title_key = n.title_key ORDER BY n.id"
            ).format(
                columns=sql.SQL(", ").join(map(sql.Identifier, columns)),
                values=sql.SQL(", ").join(
                    sql.SQL("u.{}").format(sql.Identifier(c)) for c in columns
                ),
                pending=sql.Literal(EnrichmentStatus.PENDING.value),
                folded=_folded("import_new"),
            )
        )
        self.on_step("inserting their artists and credits")
        cursor.execute(statements.ARTISTS, {"artist_ids": _id_prefix()})
        self.on_step("updating the stored tracks")
        # The merge rule of the writer's update (``statements.write_tracks``): the group's rows
        # folded in file order, merged onto the stored row, written only where it changes it.
        cursor.execute(
            sql.SQL(
                "UPDATE tracks AS t SET {assignments} FROM import_target AS g, ({folded}) AS u"
                " WHERE u.title_key = g.title_key AND t.id = g.id AND {changes}"
            ).format(
                assignments=merge_sql.assignments("t", "u"),
                folded=_folded("import_target"),
                changes=merge_sql.changes("t", "u"),
            )
        )
        cursor.execute(
            statements.CONFLICTS,
            {
                "origin": origin,
                "spotify_id": IdentifierType.SPOTIFY_ID.value,
                "kept_stored": ConflictResolution.KEPT_STORED.value,
            },
        )
        conflicts = [
            Conflict(
                IdentifierType.SPOTIFY_ID,
                track_id,
                None,
                stored,
                incoming,
                ConflictResolution.KEPT_STORED,
            )
            for track_id, stored, incoming in cursor.fetchall()
        ]
        self.on_step("storing the new spellings")
        cursor.execute(statements.LOOKUP)
        self.on_step("remembering the rows stored (known rows)")
        known_rows.store_staged(
            cursor,
            "SELECT s.digest, r.id FROM import_staging s JOIN import_resolved r USING (title_key)"
            " WHERE s.digest IS NOT NULL",
        )
        cursor.execute(statements.OUTCOMES)
        result = BatchResult(conflicts=len(conflicts))
        resolved: Counter[str] = Counter()
        for stored, tier, matched, count in cursor.fetchall():
            resolved["updated" if stored else "new"] += count
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
            "SELECT kind, count(*) FROM import_staging s JOIN import_resolved USING (title_key),"
            " unnest(s.invalid_identifiers) AS kind GROUP BY kind"
        )
        invalid = Counter(dict(cursor.fetchall()))
        result.invalid_identifiers = sum(invalid.values())
        return result, invalid, conflicts, resolved

    def tangled(
        self, batch_size: int
    ) -> Iterator[tuple[list[records.Record], list[str], list[bytes | None]]]:
        """The tangled rows and the held ones as records, in file order, ``batch_size`` at a
        time."""
        cursor = self.cursor
        # Set-based joins need no index; paging through the tangled rows by line does. A held
        # row comes whole from ``import_held``, not from its staged track.
        cursor.execute(
            "CREATE TEMP TABLE import_tangled_rows ON COMMIT DROP AS"
            " SELECT s.* FROM import_staging s JOIN import_tangled USING (title_key)"
            " WHERE NOT EXISTS (SELECT 1 FROM import_held h WHERE h.line = s.line);"
            " CREATE INDEX ON import_tangled_rows (line);"
            " CREATE INDEX ON import_held (line);"
            " CREATE INDEX ON import_staged_credits (line)"
        )
        after = -1
        while True:
            rows = self._tangled_rows(after, batch_size) + self._held_rows(after, batch_size)
            if not rows:
                return
            rows = sorted(rows, key=lambda row: row[0])[:batch_size]
            after = rows[-1][0]
            yield (
                [record for _, _, _, record in rows],
                [location for _, location, _, _ in rows],
                [digest for _, _, digest, _ in rows],
            )

    def _tangled_rows(
        self, after: int, limit: int
    ) -> list[tuple[int, str, bytes | None, records.Record]]:
        cursor = self.cursor
        cursor.execute(
            sql.SQL(
                "SELECT {} FROM import_tangled_rows s WHERE s.line > %s ORDER BY s.line LIMIT %s"
            ).format(
                sql.SQL(", ").join(
                    sql.SQL("s.{}").format(sql.Identifier(c))
                    if c != "musicbrainz_id"
                    else sql.SQL("s.musicbrainz_id::text")
                    for c in STAGED
                )
            ),
            (after, limit),
        )
        rows = cursor.fetchall()
        if not rows:
            return []
        cursor.execute(
            "SELECT line, name, role FROM import_staged_credits"
            " WHERE line = ANY(%s) ORDER BY line, position",
            ([row[0] for row in rows],),
        )
        credits: dict[int, list[tuple[str, CreditRole]]] = {}
        for line, name, role in cursor.fetchall():
            credits.setdefault(line, []).append((name, _ROLES[role]))
        return [
            (row[0], row[1], _digest(row[2]), _record(row, credits.get(row[0], []))) for row in rows
        ]

    def _held_rows(
        self, after: int, limit: int
    ) -> list[tuple[int, str, bytes | None, records.Record]]:
        self.cursor.execute(
            "SELECT line, location, digest, record FROM import_held"
            " WHERE line > %s ORDER BY line LIMIT %s",
            (after, limit),
        )
        # Pickled by ``add_records`` into this session's own temporary table: nothing else
        # writes these bytes.
        return [
            (line, location, _digest(digest), pickle.loads(record))
            for line, location, digest, record in self.cursor.fetchall()
        ]

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


def _folded(groups: str) -> sql.Composed:
    """The merge rule folded over the rows of each title key of ``groups`` (a table of
    title_key, first_line, rows) in file order, as a SELECT of the title key, the rule's columns
    and ``enrichment_status`` (the last outcome, or NULL). A group of one row takes its own
    values: most groups have one, and an aggregate per column costs more."""
    folded = merge_sql.folded("s", "line")
    alone = dict(merge_sql.folded("f", "line", one_row=True))
    table = sql.Identifier(groups)
    return sql.SQL(
        "SELECT g.title_key, {values},"
        " CASE WHEN g.rows = 1 THEN {status} ELSE a.enrichment_status END AS enrichment_status"
        " FROM {table} g JOIN import_staging f ON f.line = g.first_line"
        " LEFT JOIN (SELECT s.title_key, {folded} FROM import_staging s"
        "       JOIN {table} USING (title_key) WHERE {table}.rows > 1"
        "       GROUP BY s.title_key) AS a"
        " ON a.title_key = g.title_key"
    ).format(
        values=sql.SQL(", ").join(
            sql.SQL("CASE WHEN g.rows = 1 THEN {} ELSE a.{} END AS {}").format(
                alone[name], sql.Identifier(name), sql.Identifier(name)
            )
            for name, _ in folded
        ),
        status=merge_sql.folded_status("f", "line", one_row=True),
        table=table,
        folded=sql.SQL(", ").join(
            sql.SQL("{} AS {}").format(value, sql.Identifier(name))
            for name, value in [
                *folded,
                ("enrichment_status", merge_sql.folded_status("s", "line")),
            ]
        ),
    )


def _record(row: tuple, credits: list[tuple[str, CreditRole]]) -> TrackRecord:
    named = dict(zip(STAGED, row, strict=True))
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


def _digest(value: memoryview | None) -> bytes | None:
    return None if value is None else bytes(value)


def _id_prefix() -> str:
    """The first 20 hex digits of a new id (time, version, random bits, variant): one statement's
    ids are it and a 12-digit counter, so they sort in the order they are made."""
    return new_id().replace("-", "")[:20]
