"""Storing a tracklist page whole: the writer's row reconciliation and the pipeline's batches."""

from __future__ import annotations

from typing import Any

import pytest

from scrapers.db.server import migrations
from scrapers.db.write.writer import BatchWriter
from scrapers.items import SetlistItem, TrackItem
from tests.test_database_pipeline import make_pipeline, run_items


def page(source_id: str, titles: list[str | None], digest: str) -> list[Any]:
    """A page's items as the incremental middleware hands them on: rows, then the setlist."""
    rows = [
        TrackItem(
            setlist_source="1001tracklists",
            setlist_source_id=source_id,
            row_index=index,
            position=index + 1,
            cue_seconds=index * 60,
            artist="ID" if title is None else "Some Artist",
            title=title or "ID",
            is_unknown=title is None,
        )
        for index, title in enumerate(titles)
    ]
    setlist = SetlistItem(
        source="1001tracklists", source_id=source_id, title=f"Set {source_id}",
        content_hash=digest, row_count=len(titles),
    )  # fmt: skip
    return [*rows, setlist]


def rows_of(db: Any, source_id: str) -> list[tuple[Any, ...]]:
    with db.cursor() as cursor:
        cursor.execute(
            """
            SELECT t.row_index, t.xmin::text, t.raw_title, t.track_id IS NULL
            FROM setlist_tracks t JOIN setlists s ON s.id = t.setlist_id
            WHERE s.source_id = %s ORDER BY t.row_index
            """,
            (source_id,),
        )
        return cursor.fetchall()


def test_a_refreshed_page_rewrites_only_what_changed(db_url: str, db: Any) -> None:
    with BatchWriter(db_url, origin="test") as writer:
        first = writer.write(page("s1", ["One", None, "Three", "Four"], "h1"))
        assert +first.row_changes == {"added": 4}
        before = rows_of(db, "s1")
        again = writer.write(page("s1", ["One", None, "Three", "Four"], "h1"))
        assert sum(again.row_changes.values()) == 0
        assert rows_of(db, "s1") == before  # same row versions: nothing was written

        changed = writer.write(page("s1", ["One", "Two", "Three"], "h2"))
    assert +changed.row_changes == {"updated": 1, "removed": 1}
    after = rows_of(db, "s1")
    assert [row[0] for row in after] == [0, 1, 2]
    assert after[1][2:] == ("Two", False)  # the "ID" row now points at a track
    assert after[0] == before[0] and after[2] == before[2]
    with db.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM tracks WHERE title = 'Four'")
        assert cursor.fetchone() == (1,)  # the removed row's track stays


def test_rows_without_their_setlist_item_do_not_make_it_known(db_url: str, db: Any) -> None:
    with BatchWriter(db_url, origin="test") as writer:
        writer.write(page("s2", ["One", "Two"], "h")[:-1])
    with db.cursor() as cursor:
        cursor.execute("SELECT checked_at, content_hash FROM setlists WHERE source_id = 's2'")
        assert cursor.fetchone() == (None, None)


def test_the_pipeline_writes_whole_pages(db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    batches: list[list[str]] = []
    write = BatchWriter.write

    def recording(self: BatchWriter, items: Any, locations: Any = None) -> Any:
        batches.append([item.get("source_id") or item["setlist_source_id"] for item in items])
        return write(self, items, locations)

    monkeypatch.setattr(BatchWriter, "write", recording)
    pipeline, _ = make_pipeline(db_url, monkeypatch, DATABASE_BATCH_SIZE=3)
    items = page("a", ["One", "Two"], "ha") + page("b", ["Three"], "hb") + page("c", ["Four"], "hc")
    run_items(pipeline, items)
    # The third item of a batch arrived while page b's setlist had not: b waits for it.
    assert batches == [["a", "a", "a"], ["b", "b"], ["c", "c"]]


def test_migration_007_marks_stored_sets_known_rolls_back_and_reapplies(
    db_url: str, db: Any
) -> None:
    later = [name for name in migrations.applied(db) if name > "007_setlist_refresh"]
    for name in sorted(later, reverse=True):
        migrations.downgrade(db_url, name)
    migrations.downgrade(db_url, "007_setlist_refresh")
    with db.cursor() as cursor:
        cursor.execute(
            "INSERT INTO setlists (source, source_id, updated_at)"
            " VALUES ('1001tracklists', 'old1', '2025-01-02')"
        )
    assert "007_setlist_refresh" in migrations.upgrade(db_url)
    with db.cursor() as cursor:
        cursor.execute("SELECT checked_at::date::text, content_hash FROM setlists")
        # Stored by an earlier crawl: known (checked when last updated), no digest yet.
        assert cursor.fetchall() == [("2025-01-02", None)]
    assert migrations.upgrade(db_url) == [], "applying again changes nothing"
