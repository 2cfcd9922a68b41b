"""The columnar front end against today's Python path: identical rows, digests and records.

``ColumnarCsvReader`` decides plain rows in columns (``record_columns``, ``identity_columns``) and
sends every other line through ``CsvLines`` and ``to_record``. Whatever a file holds, each row must
come out exactly as ``CsvReader`` + ``row_digest`` + ``to_record`` make it: the bench's file, a
seeded fuzz corpus of credit spellings, Unicode rewrites and odd values, and the real spellings of
``../shared/samples``.
"""

from __future__ import annotations

import csv
import random
from pathlib import Path

import polars as pl
import pytest

from bench.generate_import_file import generate
from scrapers import identity, identity_columns
from scrapers.db.write import records
from scrapers.db.write.fields import Rejected
from scrapers.importers.columnar import ColumnarCsvReader, FastRow
from scrapers.importers.csv_reader import CsvReader
from scrapers.importers.driver import row_digest
from tests.test_identity import sample_lines

HEADER = ["artist", "title", "isrc", "spotify_id", "duration_ms", "bpm", "label", "release_date"]
FULL_HEADER = [*HEADER, "musicbrainz_id", "key", "genre", "version", "is_remix"]

NAMES = ["Above & Beyond", "Chase & Status", "deadmau5", "Armin van Buuren", "X", "Kx", "ID"]
JOINS = [
    " feat. ",
    " ft. ",
    " Ft ",
    " featuring ",
    " & ",
    " x ",
    " X ",
    " vs. ",
    " vs ",
    " + ",
    ", ",
    " and ",
    ",",
    "  ",
    " with ",
]
TITLE_PARTS = [
    "Strobe",
    "Love Is Not Enough",
    "Id",
    "(feat. {name})",
    "[ft. {name} & {name}]",
    "( Featuring {name} and {name} )",
    "feat. {name}",
    "({name} Remix)",
    "[{name} & {name} Rework]",
    "(Extended Mix)",
    "(Original Mix)",
    "(2019 Remaster)",
    "(VIP)",
    "(Dub)",
    "- Radio Edit",
    "(1 Remix)",
    "(Club Mix)",
    "(!! edit)",
    "Love's",
    "rock`n`roll",
    "back\\slash",
    "under_score",
    "[{name} x {name} Bootleg]",
    "((nested) mix)",
    "remix",
    "'quoted'",
]
# Rewrites the Python and a naive columnar fold disagree on: they must take the Python path.
UNICODE = [
    "Straße",
    "ΣΟΦΙΑ",
    "ﬁnal",
    "Beyonce\u0301",
    "Tie\u0308sto",
    "A\u034fB",
    "Sigur Rós",
    "\x1cA\x1d",
    "\x1e-\x1f",
    "٣ Remix",
    "ＤＪ",
    "İstanbul",
    "ıi",
    "K\u212a",
    "ſ feat. X",
    "Zoë Johnston",
    "\u00a0nbsp",
    "tab\there",
]
ISRCS = [
    "",
    "GBAYE0601498",
    "gb-aye-06-01498",
    "GB.AYE.06.01498",
    " GBAYE0601498 ",
    "TCABC1234567",
    "GBAYE060149",
    "-",
    "ＧＢAYE0601498",
    "GBAYE06014ß",
    "not an isrc",
]
SPOTIFY = [
    "",
    "4uLU6hMCjMI75M1A2tKUQC",
    "spotify:track:4uLU6hMCjMI75M1A2tKUQC",
    "https://open.spotify.com/track/4uLU6hMCjMI75M1A2tKUQC?si=x",
    "https://open.spotify.com/intl-de/track/4uLU6hMCjMI75M1A2tKUQC",
    "4uLU6hMCjMI75M1A2tKUQ",
    "spotify:album:4uLU6hMCjMI75M1A2tKUQC",
]
NUMBERS = ["", "128", "0128", "128.5", "0", "999", "1000", "abc", "-5", "1e3", "٣", "9" * 30]
DATES = ["", "2019-05-01", "2019", "2019-05", "2019-02-30", "0000-01-01", "2019-05-01T10:00", "x"]
UUIDS = [
    "",
    "f3b1c2d4-1234-4abc-8def-0123456789ab",
    "F3B1C2D4-1234-4ABC-8DEF-0123456789AB",
    "{f3b1c2d4-1234-4abc-8def-0123456789ab}",
    "nope",
]
FLAGS = ["", "true", "TRUE", "yes", "No", "0", "1", "maybe"]


def both_paths(path: Path) -> tuple[int, int]:
    """Every row of ``path`` through both readers, compared; returns (fast rows, all rows)."""
    expected = list(CsvReader(path).rows())
    got = list(ColumnarCsvReader(path, chunk_lines=997).rows())
    assert len(got) == len(expected)
    fast = 0
    for old, new in zip(expected, got, strict=True):
        if not isinstance(new, FastRow):
            assert new == old
            continue
        fast += 1
        assert (new.location, new.item) == (old.location, old.item)
        assert repr(new.item) == repr(old.item)
        assert new.digest == row_digest(old.item)
        record = records.to_record(old.item)
        assert new.record == record, old.location
        assert repr(new.record) == repr(record)
        # The credits' keys the columns carry to the writer are identity's.
        assert new.record.credit_keys == [identity.artist_key(name) for name, _ in record.credits]
        assert new.record.credit_keys == record.artist_keys()
    # Each row's digest is known before it is validated: the plain rows' from their fields alone.
    early = [
        (line, digest)
        for chunk in ColumnarCsvReader(path, chunk_lines=997).chunks()
        for line, digest, _ in chunk.in_order()
    ]
    assert early == [
        (int(old.location.rsplit(":", 1)[1]), old.item and row_digest(old.item)) for old in expected
    ]
    return fast, len(got)


def test_the_bench_file_gives_identical_rows_and_records(tmp_path: Path) -> None:
    path = tmp_path / "bench.csv"
    generate(path, 20_000, 0.3, 6)
    fast, rows = both_paths(path)
    assert rows == 20_000
    assert fast == rows  # the bench's rows are plain ASCII: all take the columnar path


def fuzz_text(rng: random.Random, parts: list[str]) -> str:
    chosen = [rng.choice(parts) for _ in range(rng.randint(1, 4))]
    text = " ".join(part.format(name=pick(rng, NAMES + UNICODE, len(NAMES))) for part in chosen)
    if rng.random() < 0.15:
        text = text.upper() if rng.random() < 0.5 else text.lower()
    if rng.random() < 0.1:
        text = f"  {text} "
    return text


def fuzz_artist(rng: random.Random) -> str:
    names = [pick(rng, NAMES + UNICODE, len(NAMES)) for _ in range(rng.randint(1, 4))]
    text = names[0]
    for name in names[1:]:
        text += rng.choice(JOINS) + name
    return text if rng.random() > 0.02 else ""


def pick(rng: random.Random, values: list[str], good: int) -> str:
    """Mostly one of the first ``good`` values (which the columnar path decides), else any."""
    return rng.choice(values[:good] if rng.random() < 0.93 else values)


def fuzz_rows(seed: int, count: int) -> list[list[str]]:
    rng = random.Random(seed)
    rows = []
    for _ in range(count):
        rows.append(
            [
                fuzz_artist(rng),
                fuzz_text(rng, TITLE_PARTS) if rng.random() > 0.02 else "",
                pick(rng, ISRCS, 6),
                pick(rng, SPOTIFY, 5),
                pick(rng, NUMBERS, 3),
                pick(rng, NUMBERS, 3),
                pick(rng, ["", "Anjunabeats", "Mau5trap", "A" * 501, "Label, Inc."], 3),
                pick(rng, DATES, 2),
                pick(rng, UUIDS, 2),
                pick(rng, ["", "8A", "K" * 201], 2),
                pick(rng, ["", "Progressive House"], 2),
                pick(rng, ["", "", "Extended Mix", "v" * 201], 3),
                pick(rng, FLAGS, 7),
            ]
        )
    return rows


def test_a_fuzz_corpus_gives_identical_rows_and_records(tmp_path: Path) -> None:
    path = tmp_path / "fuzz.csv"
    rows = fuzz_rows(seed=22, count=6_000)
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(FULL_HEADER)
        writer.writerows(rows)
        # Lines the csv module reads in its own way: they must reach it, in order.
        handle.write('A,"Broken\nB,Stray",\n,,\n   \nC,Fine\n"Q, R",T\n')
    fast, total = both_paths(path)
    assert total > 5_000
    assert 0.1 * total < fast < 0.9 * total  # both paths are exercised


def test_identity_columns_is_identity_on_printable_ascii() -> None:
    rng = random.Random(12)
    lines = [(fuzz_artist(rng), fuzz_text(rng, TITLE_PARTS)) for _ in range(20_000)]
    lines = [
        (artist, title)
        for artist, title in lines
        if artist.isascii() and title.isascii() and artist.isprintable() and title.isprintable()
    ]
    assert len(lines) > 10_000
    assert_same_identity(lines)


def assert_same_identity(lines: list[tuple[str, str]]) -> None:
    frame = pl.DataFrame(
        {
            "row": range(len(lines)),
            "artist": [a for a, _ in lines],
            "title": [t for _, t in lines],
        }
    )
    keyed, credits = identity_columns.line_identity(frame)
    keyed = keyed.sort("row")
    credited: dict[int, list[tuple[str, str]]] = {}
    for row, name, role in credits.select("row", "name", "role").iter_rows():
        credited.setdefault(row, []).append((name, role))
    for (artist, title), key, normalized in zip(
        lines, keyed["title_key"], keyed["normalized_title"], strict=True
    ):
        line = identity.line_identity(artist, title)
        assert (key, normalized) == (line.title_key, line.normalized_title), (artist, title)
    for row, (artist, title) in enumerate(lines):
        assert credited.get(row, []) == list(identity.line_identity(artist, title).credits)


@pytest.mark.parametrize("text", UNICODE)
def test_text_outside_printable_ascii_is_left_to_identity(text: str) -> None:
    frame = pl.DataFrame({"text": [text]})
    assert not frame.select(identity_columns.printable_ascii(pl.col("text"))).item()


def test_real_spellings_give_identical_rows_and_records(
    tmp_path: Path, shared_samples: Path
) -> None:
    lines = [line.split(" - ", 1) for line in sample_lines(shared_samples) if " - " in line]
    assert len(lines) >= 30
    rewrites = [
        (artist.upper().replace(" ft. ", " Feat. ").replace("&", " & "), f"  {title.lower()}  ")
        for artist, title in lines
    ]
    path = tmp_path / "real.csv"
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["artist", "title"])
        writer.writerows([*lines, *rewrites])
    fast, _ = both_paths(path)
    assert fast > 0
    ascii_lines = [
        (artist, title)
        for artist, title in [*lines, *rewrites]
        if f"{artist}{title}".isascii() and not identity.is_unknown_text(title)
    ]
    assert_same_identity(ascii_lines)


def test_an_unknown_title_is_rejected_by_the_python_path(tmp_path: Path) -> None:
    path = tmp_path / "unknown.csv"
    path.write_text("artist,title\nA,ID\nB,Real\n", encoding="utf-8")
    rows = list(ColumnarCsvReader(path).rows())
    assert not isinstance(rows[0], FastRow)
    with pytest.raises(Rejected, match="unknown_track"):
        records.to_record(rows[0].item)
    assert isinstance(rows[1], FastRow)
