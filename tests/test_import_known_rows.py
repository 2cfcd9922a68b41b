"""Known rows (migration 009): a re-import skips, unvalidated and unwritten, the rows an earlier
import stored as a track that still exists; ``--reapply`` applies them again."""

from __future__ import annotations

import io
from functools import partial
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from scrapers.db.write.writer import BatchWriter
from scrapers.importers import staged
from scrapers.importers.columnar import ColumnarCsvReader
from scrapers.importers.driver import COLUMNAR_READERS, Importer, row_digest
from scrapers.importers.summary import ImportSummary
from tests.test_import import FIXTURES, generate, query, run_import, summary_value
from tests.test_writer import refuse_poison

HEADER = "artist,title,isrc,bpm\n"
ROWS = [
    "Deadmau5,Strobe,CA7H30900001,128\n",
    "Eric Prydz,Opus,GBCPL1500002,126\n",
    "Bonobo,Kerala,,122\n",
    "Bonobo,Kerala,,122\n",  # a duplicate within the file: folded, not stored twice
]
# Every table an import writes; digests included.
WRITTEN = (
    "tracks",
    "artists",
    "track_artists",
    "track_lookup",
    "identifier_conflicts",
    "import_row_digests",
)


def catalogue(path: Path, rows: list[str]) -> Path:
    path.write_text(HEADER + "".join(rows))
    return path


def versions(url: str) -> dict[str, list[tuple]]:
    """Every row an import writes, with its row version: equal when nothing was written."""
    return {
        table: query(url, f"SELECT ctid::text, xmin::text FROM {table} ORDER BY 1")
        for table in WRITTEN
    }


def known_count(stdout: str) -> int:
    return int(summary_value(stdout, "known, not applied").split()[0].replace(",", ""))


def import_in_process(url: str | None, path: Path, **options: bool) -> ImportSummary:
    importer = Importer(
        url,
        interactive=False,
        progress_stream=io.StringIO(),
        validation_process=False,
        **options,
    )
    return importer.run([path], "csv")


def known_metric() -> float:
    return REGISTRY.get_sample_value("import_rows_total", {"outcome": "known"}) or 0.0


def test_importing_a_file_again_writes_nothing_and_reports_every_row_known(
    db_url: str, tmp_path: Path
) -> None:
    files = [FIXTURES / "catalogue.csv", generate(tmp_path / "generated.csv", 3000)]
    first = run_import(db_url, *files, "--batch-size", "700")
    assert known_count(first.stdout) == 0
    digests = query(db_url, "SELECT count(*) FROM import_row_digests")[0][0]
    # One digest per distinct row stored as a track.
    sent = query(db_url, "SELECT count(DISTINCT track_id) FROM import_row_digests")[0][0]
    assert digests > 0 and sent == query(db_url, "SELECT count(*) FROM tracks")[0][0]
    before = versions(db_url)

    again = run_import(db_url, *files, "--batch-size", "700")
    assert versions(db_url) == before
    assert known_count(again.stdout) == digests
    assert summary_value(again.stdout, "inserted / updated").startswith("0 new tracks, 0 matched")
    assert summary_value(again.stdout, "duplicates in input") == summary_value(
        first.stdout, "duplicates in input"
    )


def test_known_rows_are_counted_in_the_metric_and_never_sent(db_url: str, tmp_path: Path) -> None:
    path = catalogue(tmp_path / "few.csv", ROWS)
    import_in_process(db_url, path)
    counted = known_metric()
    summary = import_in_process(db_url, path)
    assert summary.known == 3 and summary.duplicates == 1
    assert summary.stored.items == 0
    assert known_metric() - counted == 3


def test_a_row_whose_track_was_deleted_is_imported_again(db_url: str, tmp_path: Path) -> None:
    path = catalogue(tmp_path / "few.csv", ROWS)
    run_import(db_url, path)
    (gone,) = query(db_url, "SELECT id FROM tracks WHERE title = 'Opus'")[0]
    query(
        db_url,
        "DELETE FROM track_artists WHERE track_id = %(id)s;"
        " DELETE FROM track_lookup WHERE track_id = %(id)s;"
        " DELETE FROM tracks WHERE id = %(id)s RETURNING id",
        {"id": gone},
    )
    again = run_import(db_url, path)
    assert known_count(again.stdout) == 2
    assert summary_value(again.stdout, "inserted / updated").startswith("1 new tracks, 0 matched")
    (back,) = query(db_url, "SELECT id FROM tracks WHERE title = 'Opus'")[0]
    # The stale digest now names the new track: a third import knows every row.
    stored = query(db_url, "SELECT track_id FROM import_row_digests")
    assert len(stored) == 3 and (back,) in stored and (gone,) not in stored
    assert known_count(run_import(db_url, path).stdout) == 3


def test_reapply_applies_known_rows_again_through_the_merge_rule(
    db_url: str, tmp_path: Path
) -> None:
    path = catalogue(tmp_path / "few.csv", ROWS)
    run_import(db_url, path)
    bpm = "SELECT bpm FROM tracks WHERE title = 'Strobe'"
    query(db_url, "UPDATE tracks SET bpm = 99 WHERE title = 'Strobe' RETURNING id")

    skipped = run_import(db_url, path)
    assert known_count(skipped.stdout) == 3
    assert query(db_url, bpm) == [(99,)]

    reapplied = run_import(db_url, path, "--reapply")
    assert known_count(reapplied.stdout) == 0
    assert summary_value(reapplied.stdout, "inserted / updated").startswith("0 new tracks, 3")
    assert query(db_url, bpm) == [(128,)]
    # Applied again to the same tracks: the digests still name them, unchanged.
    assert query(db_url, "SELECT count(*) FROM import_row_digests") == [(3,)]


def test_a_changed_row_is_not_known(db_url: str, tmp_path: Path) -> None:
    run_import(db_url, catalogue(tmp_path / "first.csv", ROWS))
    changed = [ROWS[0].replace(",128", ",129"), *ROWS[1:]]
    again = run_import(db_url, catalogue(tmp_path / "second.csv", changed))
    assert known_count(again.stdout) == 2
    assert summary_value(again.stdout, "inserted / updated").startswith("0 new tracks, 1 matched")
    assert query(db_url, "SELECT bpm FROM tracks WHERE title = 'Strobe'") == [(129,)]
    # Both spellings of the row now lead to the one track.
    assert query(
        db_url,
        "SELECT count(*), count(DISTINCT d.track_id) FROM import_row_digests d"
        " JOIN tracks t ON t.id = d.track_id WHERE t.title = 'Strobe'",
    ) == [(2, 1)]


def test_a_rolled_back_batch_leaves_no_digest(db_url: str, db) -> None:
    # The batch is rolled back, then split until the refused item is alone; only the stored
    # items keep a digest.
    refuse_poison(db)
    items = [{"artist": "Artist", "title": title} for title in ("One", "Poison", "Three")]
    digests = [row_digest(item) for item in items]
    with BatchWriter(db_url, origin="test:known", retry_timeout=5) as writer:
        assert writer.write(items, None, digests).stored == 2
        assert writer.write(items[1:2], None, digests[1:2]).stored == 0
    stored = query(
        db_url,
        "SELECT d.digest, t.title FROM import_row_digests d"
        " LEFT JOIN tracks t ON t.id = d.track_id ORDER BY t.title",
    )
    assert [(bytes(digest), title) for digest, title in stored] == [
        (digests[0], "One"),
        (digests[2], "Three"),
    ]


def test_rows_of_a_setlist_get_no_digest(db_url: str) -> None:
    run_import(db_url, FIXTURES / "crawl_items.jsonl", "--format", "jsonl")
    assert query(db_url, "SELECT count(*) FROM setlist_tracks WHERE track_id IS NOT NULL")[0][0]
    assert query(db_url, "SELECT count(*) FROM import_row_digests") == [(0,)]


def test_bulk_mode_stores_and_skips_known_rows(db_url: str, tmp_path: Path) -> None:
    path = generate(tmp_path / "generated.csv", 3000)
    run_import(db_url, path, "--bulk", "--batch-size", "700")
    digests = query(db_url, "SELECT count(*) FROM import_row_digests")[0][0]
    assert digests > 0
    before = versions(db_url)
    keys = foreign_keys(db_url)
    again = run_import(db_url, path, "--bulk", "--batch-size", "700")
    assert known_count(again.stdout) == digests
    assert versions(db_url) == before
    # Nothing to write: the child tables' keys were neither dropped nor checked again (a key
    # added back is a new constraint row).
    assert foreign_keys(db_url) == keys
    run_import(db_url, generate(tmp_path / "more.csv", 500, seed=7), "--bulk")
    assert foreign_keys(db_url) != keys


# Rows of every path a CSV line can take: their fates are decided by digest before validation.
MIXED = [
    '"Bonobo",Kerala,,122\n',  # quoted: read by the csv module, off the columnar path
    "Bonobo,Kerala,,122\n",  # the same row plain: a repeat of the one read off the columns
    "Sigur R\u00f3s,Hopp\u00edpolla,,\n",  # outside printable ASCII: off the columnar path
    "Deadmau5,Strobe,not an isrc,128\n",  # plain, but left to to_record (an invalid ISRC)
    "Deadmau5,Strobe,not an isrc,128\n",  # its repeat, dropped before it is validated
    ",,,\n",  # blank: no row
    "Sigur R\u00f3s,Hopp\u00edpolla,,\n",  # a repeat whose first copy is in an earlier chunk
    'Broken,"quote,,\n',  # unreadable
    "Eric Prydz,Opus,GBCPL1500002,126\n",
    "Eric Prydz,Opus,GBCPL1500002,126\n",
]


@pytest.mark.parametrize("bulk", [False, True], ids=["shared", "bulk"])
def test_repeats_and_known_rows_are_counted_on_every_path(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, bulk: bool
) -> None:
    # Chunks of three lines: the first chunk of the second import is all known or repeated.
    monkeypatch.setitem(COLUMNAR_READERS, "csv", partial(ColumnarCsvReader, chunk_lines=3))
    first = import_in_process(db_url, catalogue(tmp_path / "first.csv", MIXED), bulk=bulk)
    assert (first.read, first.duplicates, first.known) == (9, 4, 0)
    assert sum(first.unreadable.values()) == 1
    assert (first.stored.inserted, first.stored.invalid_identifiers) == (4, 1)
    assert query(db_url, "SELECT count(*) FROM import_row_digests") == [(4,)]

    more = [*MIXED, "New,Row,,\n", "Bonobo,Kerala,,122\n"]
    again = import_in_process(db_url, catalogue(tmp_path / "again.csv", more), bulk=bulk)
    assert (again.read, again.duplicates, again.known) == (11, 5, 4)
    assert sum(again.unreadable.values()) == 1
    assert (again.stored.inserted, again.stored.updated) == (1, 0)
    assert query(db_url, "SELECT count(*) FROM import_row_digests") == [(5,)]


# JSON lines: a reader of items, whose rows' fates are decided by their items' digests.
ITEMS = [
    '{"artist": "Bonobo", "title": "Kerala", "bpm": 122}\n',
    '{"artist": "Bonobo", "title": "Kerala", "bpm": 122}\n',  # a repeat in the same chunk
    "not json\n",  # unreadable
    '{"artist": "Deadmau5", "title": "Strobe", "isrc": "not an isrc"}\n',
    '{"artist": "Eric Prydz", "title": "Opus"}\n',
    '{"artist": "Bonobo", "title": "Kerala", "bpm": 122}\n',  # a repeat in a later chunk
]


@pytest.mark.parametrize("bulk", [False, True], ids=["shared", "bulk"])
def test_repeats_and_known_rows_of_items_are_counted(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, bulk: bool
) -> None:
    # Chunks of two rows with --bulk (``fresh.fresh_items``): the repeats cross chunks.
    monkeypatch.setattr(staged, "ITEM_CHUNK_ROWS", 2)

    def run(path: Path, rows: list[str]) -> ImportSummary:
        path.write_text("".join(rows))
        importer = Importer(
            db_url, bulk=bulk, interactive=False, validation_process=False, batch_size=2
        )
        return importer.run([path], "jsonl")

    first = run(tmp_path / "first.jsonl", ITEMS)
    assert (first.read, first.duplicates, first.known) == (6, 2, 0)
    assert sum(first.unreadable.values()) == 1
    assert (first.stored.inserted, first.stored.invalid_identifiers) == (3, 1)

    more = [*ITEMS, '{"artist": "New", "title": "Row"}\n']
    again = run(tmp_path / "again.jsonl", more)
    assert (again.read, again.duplicates, again.known) == (7, 2, 3)
    assert (again.stored.inserted, again.stored.updated) == (1, 0)
    assert query(db_url, "SELECT count(*) FROM import_row_digests") == [(4,)]


def foreign_keys(url: str) -> list[tuple]:
    return query(url, "SELECT oid, conname FROM pg_constraint WHERE contype = 'f' ORDER BY conname")


def test_a_dry_run_needs_no_database(tmp_path: Path) -> None:
    summary = import_in_process(None, catalogue(tmp_path / "few.csv", ROWS), dry_run=True)
    assert summary.known == 0 and summary.stored.items == 3
    assert "known, not applied" not in "\n".join(summary.lines())
