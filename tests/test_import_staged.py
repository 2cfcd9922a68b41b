"""``--bulk`` (staged, resolved in SQL) against the shared mode: the same catalogue, table by table.

The same files go through the shared-mode writer into one database and through ``--bulk`` into
another; every table is compared by natural keys (``tests.test_import.snapshot``), and so are the
digests of known rows and the import's counts. The files hold what the SQL must leave to the
writer or get exactly right itself: repeats (identical and respelled), spelling variants, a title
key with two ISRCs, an ISRC under two title keys, identifier conflicts within the file and with
stored tracks, updates of stored tracks, known rows, rows the writer rejects, invalid values,
lines the csv module reads, non-ASCII spellings, and a few thousand of the bench's rows. A last
file updates stored tracks (``UPDATES`` and the bench's rows with other values): those rows are
resolved in SQL, not by the writer, which the load's count of tangled rows shows.
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Callable
from pathlib import Path

import pytest

from bench.generate_import_file import generate
from scrapers.importers.driver import Importer
from scrapers.importers.summary import ImportSummary
from tests.test_import import query, snapshot

HEADER = ["artist", "title", "isrc", "spotify_id", "bpm", "label", "release_date", "musicbrainz_id"]
MBID_1, MBID_2 = "f3b1c2d4-1234-4abc-8def-0123456789ab", "a3b1c2d4-1234-4abc-8def-0123456789ab"
SPOTIFY_E, SPOTIFY_F = "4uLU6hMCjMI75M1A2tKUQC", "7ouMYWpwJ422jRcDASZB7P"
FIRST = [
    # Tangled (two ISRCs under one key), before the simple group that shares their artist: the
    # artist is named as the first row that made a track with it spells it.
    ["DEADMAU5", "Ghosts n Stuff", "GBAAA0000020", "", "", "", "", ""],
    ["DEADMAU5", "Ghosts n Stuff", "GBAAA0000021", "", "", "", "", ""],
    ["Deadmau5", "Strobe", "CA-7H3-09-00001", "", "128", "", "", ""],
    ["deadmau5", "STROBE", "", "", "", "mau5trap", "", ""],
    ["Deadmau5", "Strobe", "CA7H30900001", "", "", "", "2009-09-22", ""],
    ["Deadmau5", "Strobe", "CA-7H3-09-00001", "", "128", "", "", ""],
    ["Above & Beyond ft. Zoë Johnston", "Love Is Not Enough", "", "", "", "", "", ""],
    ["Above & Beyond feat. Zoe Johnston", "Love Is Not Enough", "", "", "130", "", "", ""],
    ["Above & Beyond ft. Zoe Johnston", "Love is not enough", "", "", "132", "Anjuna", "", MBID_1],
    ["Above & Beyond", "Love Is Not Enough (feat. Zoe Johnston)", "", "", "", "", "", MBID_2],
    ["Artist C", "Song C", "GBAAA0000001", "", "", "", "", ""],
    ["Artist C", "Song C", "GBAAA0000002", "", "", "", "", ""],
    ["Artist D", "Song D", "GBAAA0000003", "", "", "", "", ""],
    ["Artist D2", "Song D (Other Mix)", "GBAAA0000003", "", "", "Other", "", ""],
    ["E", "Song E", "GBAAA0000004", SPOTIFY_E, "", "", "", ""],
    ["F", "Song F", "", f"spotify:track:{SPOTIFY_F}", "", "", "", ""],
    ["E", "Song E (Live)", "GBAAA0000004", SPOTIFY_F, "", "", "", ""],
    ["", "No Artist", "", "", "", "", "", ""],
    ["G", "", "", "", "", "", "", ""],
    ["H", "ID", "", "", "", "", "", ""],
    ["I", "Long Label", "", "", "", "L" * 600, "", ""],
    ["J", "Bad BPM", "", "", "abc", "", "", ""],
    ["K", "Tune Core", "TC1234567890", "", "", "", "2019", "F3B1C2D4-1234-4ABC-8DEF-0123456789AB"],
    ["Chase & Status x Bou", "Baddadan (feat. Flowdan, IRAH & Trigga)", "", "", "", "", "", ""],
    [
        "Chase & Status",
        "Baddadan (feat. Flowdan, Irah & Trigga) [Extended Mix]",
        "",
        "",
        "",
        "",
        "",
        "",
    ],
    ["Sigur Rós", "Hoppípolla", "", "", "", "", "", ""],
]
SECOND = [
    ["Deadmau5", "Strobe", "CA7H30900001", "", "129", "mau5trap", "", ""],
    ["Artist X", "Song X", "CA-7H3-09-00001", "", "", "", "", ""],
    ["F", "Song F", "GBAAA0000009", SPOTIFY_F, "", "", "", ""],
    ["artist c", "song c", "", "", "", "Label C", "", ""],
    ["Artist D2", "Song D (Other Mix)", "", "", "", "", "", ""],
    ["Deadmau5", "Strobe", "CA-7H3-09-00001", "", "128", "", "", ""],
    ["Above & Beyond ft. Zoë Johnston", "Love Is Not Enough", "", "", "", "", "", ""],
    ["New", "Track", "GBAAA0000010", "", "", "", "", ""],
    ["New", "Track (Remix)", "GBAAA0000010", "", "", "", "", ""],
    ["L", "", "", "", "", "", "", ""],
]

SPOTIFY_G, SPOTIFY_H = "5aBcDeFgHiJkLmNoPqRsTu", "6aBcDeFgHiJkLmNoPqRsTu"
MBID_3 = "b3b1c2d4-1234-4abc-8def-0123456789ab"
# Each group updates one stored track, whatever the order: resolved in SQL.
UPDATES = [
    # Two spellings of one stored track in file order: the last BPM and label win, the release
    # date is replaced, the new spelling joins the lookup, the Spotify ID is filled (first row,
    # matched by its known spelling), the second row matched by ISRC.
    ["Deadmau5", "Strobe", "", SPOTIFY_G, "131", "", "", ""],
    ["DEADMAU5", "strobe", "CA-7H3-09-00001", "", "", "mau5trap records", "2009-09-23", ""],
    # By a known spelling (the stored track has no identifier): it gains an ISRC and an MBID.
    ["Sigur Rós", "Hoppípolla", "ISAAA0500001", "", "140", "", "2005-11-14", MBID_3],
    # By ISRC, under a title key that is not the stored track's.
    ["Someone", "Song D Remastered", "GBAAA0000003", "", "125", "", "", ""],
    # By a known spelling only, whose title key is not the stored track's.
    ["New", "Track (Remix)", "", "", "", "Remix Label", "", ""],
    # Stored tracks enriched (or not found) between the runs: a row marked pending or without a
    # status keeps the outcome; the stored metadata keeps its keys.
    ["K", "Tune Core", "", "", "122", "", "", ""],
    ["Chase & Status x Bou", "Baddadan (feat. Flowdan, IRAH & Trigga)", "GBAAA0000030", "", "", "",
     "", ""],
    # By ISRC, with a Spotify ID that contradicts the stored one: it keeps its own, the conflict is
    # recorded (kept_stored); a row of the same key without identifiers matches by title key.
    ["e", "song e", "", "", "", "E Label", "", ""],
    ["E", "Song E", "GBAAA0000004", SPOTIFY_H, "124", "", "", ""],
]  # fmt: skip
# Left to the writer: an ISRC that contradicts the stored track's (a new track), a title key two
# stored tracks hold, and a stored track reached by ISRC under another title key, after a row of
# that key that finds nothing (it makes a new track, the second row updates the stored one).
TANGLED_UPDATES = [
    ["F", "Song F", "GBAAA0000011", "", "99", "", "", ""],
    ["Artist C", "Song C", "", "", "", "Label C2", "", ""],
    ["Someone Else", "Song Z", "", "", "100", "", "", ""],
    ["Someone Else", "Song Z", "GBAAA0000020", "", "", "Label Z", "", ""],
]
ENRICHED = """
UPDATE tracks SET enrichment_status = 'enriched',
       metadata = metadata || '{"musicbrainz": {"score": 100}}'
WHERE isrc = 'TC1234567890' OR title = 'Tune Core';
UPDATE tracks SET enrichment_status = 'not_found' WHERE title LIKE 'Baddadan%';
"""


def write(path: Path, rows: list[list[str]], bench: Path, extra: bytes = b"") -> Path:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(HEADER)
        writer.writerows(rows)
        with bench.open(encoding="utf-8") as generated:
            header = next(csv.reader(generated))
            for row in csv.DictReader(generated, fieldnames=header):
                writer.writerow([row.get(name, "") for name in HEADER])
    with path.open("ab") as handle:
        handle.write(extra)
    return path


def import_both_ways(
    make_database: Callable[[], str],
    runs: list[tuple[Path, str]],
    *,
    validation_process: bool = False,
    into: tuple[str, str] | None = None,
) -> tuple[str, str, list[ImportSummary]]:
    """Each (file, format) of ``runs`` in turn through the shared mode into one database and
    through ``--bulk`` into another (new ones, or ``into``: shared, bulk); asserts that every
    table, the known rows' digests and the runs' counts are the same. Returns both databases
    and the shared mode's runs."""
    shared, staged = into or (make_database(), make_database())
    shared_runs, staged_runs = (
        [
            Importer(
                url,
                bulk=bulk,
                validation_process=validation_process,
                interactive=False,
                batch_size=500,
            ).run([path], fmt)
            for path, fmt in runs
        ]
        for url, bulk in ((shared, False), (staged, True))
    )
    expected, got = snapshot(shared), snapshot(staged)
    for table in expected:
        assert got[table] == expected[table], table
    assert digests(staged) == digests(shared)
    assert [counts(run) for run in staged_runs] == [counts(run) for run in shared_runs]
    assert [run.files[0].error for run in staged_runs] == [
        run.files[0].error for run in shared_runs
    ]
    return shared, staged, shared_runs


def bench_files(tmp_path: Path, rows: int, *seeds: int) -> list[Path]:
    """The bench generator's CSV files of ``rows`` rows (30 % repeats), one per seed."""
    paths = [tmp_path / f"bench{seed}.csv" for seed in seeds]
    for path, seed in zip(paths, seeds, strict=True):
        generate(path, rows, 0.3, seed)
    return paths


def counts(summary: ImportSummary) -> tuple:
    stored = summary.stored
    return (
        summary.read,
        summary.duplicates,
        summary.known,
        sum(summary.unreadable.values()),
        stored.items,
        stored.inserted,
        stored.updated,
        dict(stored.rejected),
        stored.conflicts,
        stored.invalid_identifiers,
        dict(stored.tiers),
        dict(stored.tier_outcomes),
    )


def staged_rows(caplog: pytest.LogCaptureFixture) -> tuple[int, ...]:
    """What the staging load logged it resolved: (rows, inserted, updated, tangled)."""
    [record] = [r for r in caplog.records if r.name == "scrapers.db.write.staging"]
    return record.args


def digests(url: str) -> list[tuple]:
    return query(
        url,
        "SELECT encode(d.digest, 'hex'), t.title_key, t.isrc, t.spotify_id"
        " FROM import_row_digests d JOIN tracks t ON t.id = d.track_id ORDER BY 1",
    )


def test_bulk_resolved_in_sql_stores_the_shared_modes_catalogue(
    make_database, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    bench_one, bench_two = bench_files(tmp_path, 3000, 6, 7)
    broken = b'M,"Broken\nN,Stray",\n,,,,,,,\n"O, P",Quoted,,,,,,\n'
    files = [
        write(tmp_path / "first.csv", FIRST, bench_one, broken),
        write(tmp_path / "second.csv", SECOND, bench_two),
        # The first file again: every row is known or a repeat, nothing is written.
        tmp_path / "first.csv",
    ]
    shared, staged, shared_runs = import_both_ways(make_database, [(path, "csv") for path in files])
    # The files hold what the comparison is about.
    first = counts(shared_runs[0])
    assert first[1] > 0 and first[7] and first[8] > 0 and first[9] > 0  # repeats, rejects, ...
    assert counts(shared_runs[1])[2] > 0 and counts(shared_runs[1])[6] > 0  # known, updated
    # On the third run every row is known or a repeat; only the refused rows are refused again.
    third = counts(shared_runs[2])
    assert third[4:7] == (sum(third[7].values()), 0, 0)

    # Updates of stored tracks, after enrichment gave some of them an outcome.
    bench_changed = tmp_path / "bench_changed.csv"
    generate(bench_changed, 3000, 0.3, 6, variant=1)
    updates = write(tmp_path / "updates.csv", UPDATES + TANGLED_UPDATES, bench_changed)
    for url in (shared, staged):
        query(url, ENRICHED + "SELECT 1")
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="scrapers.db.write.staging"):
        _, _, [shared_update] = import_both_ways(
            make_database, [(updates, "csv")], into=(shared, staged)
        )
    # Every row staged updated its track in SQL, but those left to the writer.
    sent = shared_update.read - shared_update.duplicates - shared_update.known
    assert staged_rows(caplog) == (sent, 0, sent - len(TANGLED_UPDATES), len(TANGLED_UPDATES))
    assert counts(shared_update)[6] > 2000  # updated: the bench's rows, each a stored track
    assert counts(shared_update)[8] == 1  # the Spotify ID that contradicts a stored one
