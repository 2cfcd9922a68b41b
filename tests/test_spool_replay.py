"""A spool replayed late never undoes newer data: of two fetches of one set, the newest wins.

The issue's scenario end to end: a crawl during a database outage spools its pages; the database
comes back and a newer crawl stores the site where an "ID - ID" row has since been identified;
then the old spool is replayed with ``scripts/import_tracks.py --format jsonl``. Below it, the
batch writer's rule for any two writers of one set, in either order.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from scrapers.db.write.writer import BatchWriter
from scrapers.items import SetlistItem, TrackItem
from tests.sitegen import GeneratedSite, Row, make_tracklists
from tests.test_import import query, run_import, summary_value
from tests.test_incremental_crawl import crawl_settings, finish, start_crawl

UNREACHABLE = "postgresql://nobody@127.0.0.1:9/none?connect_timeout=1"
IDENTIFIED = Row("Found Artist", "Found Title", track_id="found1")


def id_rows(url: str) -> list[tuple[Any, ...]]:
    return query(
        url,
        "SELECT s.source_id, t.row_index, t.raw_artist, t.is_unknown FROM setlist_tracks t"
        " JOIN setlists s ON s.id = t.setlist_id WHERE t.row_index = 2"
        " AND s.source_id IN ('g000000x', 'g000004x') ORDER BY 1",
    )


def test_replaying_an_old_spool_after_a_newer_crawl_keeps_the_newer_rows(
    db_url: str, tmp_path: Path
) -> None:
    tracklists = make_tracklists(8)  # sets 0 and 4 hold an "ID - ID" row at index 2
    site = GeneratedSite(tracklists).start()
    try:
        outage = start_crawl(
            UNREACHABLE,
            crawl_settings(tmp_path / "outage", DATABASE_RETRY_TIMEOUT=0.5),
            {"start_urls": site.start_url},
        )
        _, log = outage.communicate(timeout=240)
        assert "'database/items_spooled'" in log, log[-3000:]
        [spool] = sorted((tmp_path / "outage" / "spool").glob("*.jsonl"))

        for number in (0, 4):
            tracklists[number].rows[2] = IDENTIFIED
        finish(
            start_crawl(db_url, crawl_settings(tmp_path / "newer"), {"start_urls": site.start_url})
        )
    finally:
        site.stop()
    identified = [("g000000x", 2, "Found Artist", False), ("g000004x", 2, "Found Artist", False)]
    assert id_rows(db_url) == identified
    checked = query(db_url, "SELECT source_id, checked_at, fetched_at FROM setlists ORDER BY 1")

    replay = run_import(db_url, "--format", "jsonl", spool)
    assert id_rows(db_url) == identified
    assert query(db_url, "SELECT source_id, checked_at, fetched_at FROM setlists ORDER BY 1") == (
        checked
    )
    assert summary_value(replay.stdout, "setlists outdated").startswith("8 ")
    assert "Setlist 1001tracklists/g000000x not written" in replay.stderr
    # Its tracks were still stored: the spool's "ID - ID" rows were no tracks, the rest are known.
    assert query(db_url, "SELECT count(*) FROM rejected_items") == [(0,)]


def page(fetched: dt.datetime, title: str) -> list[Any]:
    """Set s1's page as fetched at ``fetched``: rows, then the setlist item."""
    stamp = fetched.isoformat()
    rows = [
        TrackItem(setlist_source="1001tracklists", setlist_source_id="s1", row_index=index,
                  artist="Some Artist", title=f"{title} {index}", fetched_at=stamp)
        for index in range(2)
    ]  # fmt: skip
    setlist = SetlistItem(
        source="1001tracklists", source_id="s1", title=title, content_hash=title, row_count=2,
        fetched_at=stamp,
    )  # fmt: skip
    return [*rows, setlist]


@pytest.mark.parametrize("order", ["older first", "newer first", "one batch"])
def test_of_two_writers_of_one_set_the_newest_fetch_wins(db_url: str, order: str) -> None:
    older = page(dt.datetime(2026, 5, 1, 12, tzinfo=dt.UTC), "Older")
    newer = page(dt.datetime(2026, 5, 1, 13, tzinfo=dt.UTC), "Newer")
    with BatchWriter(db_url, origin="test") as writer:
        if order == "one batch":
            results = [writer.write([*newer, *older])]
        else:
            first, second = (older, newer) if order == "older first" else (newer, older)
            results = [writer.write(first), writer.write(second)]
    assert query(db_url, "SELECT raw_title FROM setlist_tracks ORDER BY row_index") == [
        ("Newer 0",),
        ("Newer 1",),
    ]
    assert query(db_url, "SELECT title, content_hash, fetched_at FROM setlists") == [
        ("Newer", "Newer", dt.datetime(2026, 5, 1, 13, tzinfo=dt.UTC))
    ]
    # The older fetch's tracks are stored all the same.
    assert query(db_url, "SELECT count(*) FROM tracks") == [(4,)]
    outdated = sum(result.outdated_setlists for result in results)
    assert outdated == (1 if order == "newer first" else 0)


def test_rows_that_do_not_say_when_they_were_fetched_never_overwrite_a_dated_set(
    db_url: str,
) -> None:
    with BatchWriter(db_url, origin="test") as writer:
        writer.write(page(dt.datetime(2026, 5, 1, 13, tzinfo=dt.UTC), "Dated"))
        undated = page(dt.datetime(2026, 5, 1, 14, tzinfo=dt.UTC), "Undated")
        for item in undated:
            del item["fetched_at"]
        assert writer.write(undated).outdated_setlists == 1
    assert query(db_url, "SELECT title FROM setlists") == [("Dated",)]


@pytest.mark.parametrize("value", ["2026-05-01T13:00:00", "yesterday", 17])
def test_a_fetch_time_without_an_offset_or_not_a_time_is_rejected(db_url: str, value: Any) -> None:
    item = page(dt.datetime(2026, 5, 1, 13, tzinfo=dt.UTC), "Bad")[-1]
    item["fetched_at"] = value
    with BatchWriter(db_url, origin="test") as writer:
        assert sum(writer.write([item]).rejected.values()) == 1
