"""The importer's readers, format detection, JSON streaming and progress output (no database)."""

from __future__ import annotations

import io
import itertools
import json
import re
import tracemalloc
import zipfile
from hashlib import sha256
from pathlib import Path

import pytest

from scrapers.db.write import records
from scrapers.db.write.payload import MAX_PAYLOAD_BYTES
from scrapers.importers.csv_reader import COLUMNS, STRAY_QUOTE, UNCLOSED_QUOTE
from scrapers.importers.detect import READERS, UnknownFormat, detect_format
from scrapers.importers.jsonstream import JsonStreamError, iter_array
from scrapers.importers.lines import MAX_LINE_BYTES, TOO_LONG
from scrapers.importers.progress import Progress
from scrapers.importers.source import SourceRow
from scrapers.items import RECORDING_FIELDS, SetlistItem, TrackItem

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "import"


def read(path: Path, fmt: str | None = None) -> list[SourceRow]:
    return list(READERS[fmt or detect_format(path)](path).rows())


def line_of(row: SourceRow) -> int:
    return int(row.location.rsplit(":", 1)[1])


def stored(rows: list[SourceRow]) -> list[tuple[int, dict]]:
    return [(line_of(row), dict(row.item)) for row in rows if row.item is not None]


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("catalogue.csv", "csv"),
        ("crawl_items.jsonl", "jsonl"),
        ("listens.jsonl", "listenbrainz"),
        ("Streaming_History_Audio_2023.json", "spotify"),
        ("Playlist1.json", "spotify"),
    ],
)
def test_detects_each_fixture(name: str, expected: str) -> None:
    assert detect_format(FIXTURES / name) == expected


def test_detects_listenbrainz_zip_and_array(tmp_path: Path) -> None:
    archive = tmp_path / "export.zip"
    with zipfile.ZipFile(archive, "w") as bundle:
        bundle.writestr("user.json", "{}")
        bundle.write(FIXTURES / "listens.jsonl", "listens/2023/11.jsonl")
    listens = [json.loads(line) for line in (FIXTURES / "listens.jsonl").read_text().splitlines()]
    array = tmp_path / "old_export.json"
    array.write_text(json.dumps(listens, indent=2))
    assert detect_format(archive) == "listenbrainz"
    assert detect_format(array) == "listenbrainz"
    # The same listens in three containers give the same items.
    items = [dict(row.item) for row in read(FIXTURES / "listens.jsonl")]
    assert [dict(row.item) for row in read(archive)] == items
    assert [dict(row.item) for row in read(array)] == items
    assert read(archive)[0].location.endswith("export.zip!listens/2023/11.jsonl:1")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "empty"),
        (b"name,year\nx,1999\n", "header lacks artist, title: its first line holds 'name', 'year'"),
        (b'[{"foo": 1}]', "neither a Spotify play"),
        (b'{"foo": 1}\n', "neither a crawl item"),
    ],
)
def test_detection_refuses_what_it_does_not_know(
    tmp_path: Path, content: bytes, message: str
) -> None:
    path = tmp_path / "mystery.dat"
    path.write_bytes(content)
    with pytest.raises(UnknownFormat, match=message):
        detect_format(path)


def test_csv_reader_maps_columns_and_numbers_lines() -> None:
    rows = stored(read(FIXTURES / "catalogue.csv"))
    assert [line for line, _ in rows] == [2, 3, 4, 5, 6, 7]
    first = rows[0][1]
    assert first["artist"] == "Deadmau5"
    assert first["isrc"] == "CA-7H3-09-00001"  # normalised by the writer, not the reader
    assert first["duration_ms"] == "637000"
    assert "enrichment_status" not in first  # has a valid ISRC: nothing to backfill
    assert rows[2][1]["enrichment_status"] == "pending"
    assert rows[4][1]["artist"] == "Above & Beyond ft. Zoë Johnston"
    assert rows[4][1]["title"] == "Love Is Not Enough, Again"


def test_csv_header_is_required(tmp_path: Path) -> None:
    path = tmp_path / "no_header.csv"
    path.write_text("Deadmau5,Strobe\n")
    with pytest.raises(ValueError, match="header lacks artist, title"):
        read(path, "csv")


def test_csv_bad_rows_are_rejected_with_their_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_bytes(
        b"Artist , TITLE,isrc\n"
        b"A,One,\n"
        b'"Multi\nLine",Two,\n'  # a quoted newline: both halves rejected, nothing stored
        b"B,Three,,extra\n"
        b"\n"
        b"C,Fo\xffur,\n"
        b"D,Five,\n"
    )
    rows = read(path, "csv")
    assert [(line_of(row), row.error) for row in rows] == [
        (2, None),
        (3, UNCLOSED_QUOTE),
        (4, STRAY_QUOTE),
        (5, "4 fields, header has 3"),
        (7, "invalid UTF-8 in the row"),
        (8, None),
    ]
    assert rows[3].payload.text == "B,Three,,extra"


def test_csv_stray_quote_does_not_swallow_the_rows_after_it(tmp_path: Path) -> None:
    """``H1,"T1`` made the csv module read the next lines into one title, silently."""
    path = tmp_path / "stray.csv"
    path.write_bytes(b'artist,title\nH1,"T1\nH2,T2\nH3,T3\nH4,"T4, Live"\nH5,T5\n')
    rows = read(path, "csv")
    assert [(line_of(row), row.error) for row in rows] == [
        (2, UNCLOSED_QUOTE),
        (3, None),
        (4, None),
        (5, None),  # its quote opens a field: it is not the broken one's end
        (6, None),
    ]
    assert rows[0].payload.text == 'H1,"T1'
    assert [(row.item["artist"], row.item["title"]) for row in rows[1:]] == [
        ("H2", "T2"),
        ("H3", "T3"),
        ("H4", "T4, Live"),
        ("H5", "T5"),
    ]


def test_csv_line_ends_and_last_line_without_one(tmp_path: Path) -> None:
    path = tmp_path / "crlf.csv"
    path.write_bytes(b'\xef\xbb\xbfartist,title\r\nA,"One, Two"\r\nB,"Three"')
    rows = read(path, "csv")
    assert [(row.item["artist"], row.item["title"]) for row in rows] == [
        ("A", "One, Two"),
        ("B", "Three"),
    ]


def read_with_long_line(
    path: Path, fmt: str, head: bytes, long_line: bytes, tail: bytes
) -> tuple[list[SourceRow], int]:
    """Write ``head``, ``long_line`` (in pieces) and ``tail`` to ``path``, then read it: the rows
    and the peak of memory allocated while reading."""
    with open(path, "wb") as handle:
        handle.write(head)
        for start in range(0, len(long_line), 1 << 20):
            handle.write(long_line[start : start + (1 << 20)])
        handle.write(b"\n" + tail)
    tracemalloc.start()
    try:
        rows = read(path, fmt)
        return rows, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_csv_field_over_16_mib_is_rejected_and_reading_goes_on(tmp_path: Path) -> None:
    """It raised ``_csv.Error: field larger than field limit`` and ended the file."""
    long_line = b'Big,"' + b"x" * (17 << 20) + b'"'
    rows, peak = read_with_long_line(
        tmp_path / "big.csv", "csv", b"artist,title\nA,One\n", long_line, b"B,Two\n"
    )
    assert [(line_of(row), row.error) for row in rows] == [(2, None), (3, TOO_LONG), (4, None)]
    kept = rows[1].payload
    assert kept.text == long_line[:MAX_PAYLOAD_BYTES].decode()
    assert (kept.size, kept.sha256) == (len(long_line), sha256(long_line).hexdigest())
    assert peak < 4_000_000  # the 17 MiB line was streamed past, never held


def test_jsonl_line_over_the_limit_is_streamed_past(tmp_path: Path) -> None:
    """A 200 MB line took 1.2 GB and was stored whole; now it is hashed in passing."""
    long_line = b'{"artist": "A", "title": "' + b"t" * (30 << 20) + b'"}'
    first, last = b'{"artist": "A", "title": "One"}\r\n', b'{"artist": "B", "title": "T"}'
    rows, peak = read_with_long_line(tmp_path / "items.jsonl", "jsonl", first, long_line, last)
    assert [(line_of(row), row.error) for row in rows] == [(1, None), (2, TOO_LONG), (3, None)]
    kept = rows[1].payload
    assert kept.text == long_line[:MAX_PAYLOAD_BYTES].decode()
    assert (kept.size, kept.sha256) == (len(long_line), sha256(long_line).hexdigest())
    assert peak < 4_000_000


def test_a_line_end_split_across_chunks_is_not_hashed(tmp_path: Path) -> None:
    long_line = b"y" * (MAX_LINE_BYTES + 1) + b"\r"  # "\r\n" across the chunk boundary
    path = tmp_path / "crlf.jsonl"
    path.write_bytes(long_line + b'\n{"artist": "A", "title": "T"}\n')
    rows = read(path, "jsonl")
    assert rows[0].payload.sha256 == sha256(long_line[:-1]).hexdigest()
    assert rows[1].item["title"] == "T"


@pytest.mark.parametrize(
    ("content", "named"),
    [
        (
            "artist,title\nA,B\n".encode("utf-16"),
            "UTF-16 text (little-endian, byte order mark FF FE)",
        ),
        ("artist,title\nA,B\n".encode("utf-16-be"), "UTF-16 text (big-endian, no byte order mark)"),
        ("artist,title\nA,B\n".encode("utf-32"), "UTF-32 text (little-endian"),
    ],
)
def test_utf16_and_utf32_files_are_named(tmp_path: Path, content: bytes, named: str) -> None:
    path = tmp_path / "excel.csv"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=re.escape(named)) as detected:
        detect_format(path)
    assert "iconv" in str(detected.value) and str(path) not in str(detected.value)
    with pytest.raises(ValueError, match=re.escape(named)):
        read(path, "csv")


def test_headerless_csv_message_shows_what_it_found(tmp_path: Path) -> None:
    path = tmp_path / "no_header.csv"
    path.write_text("Deadmau5,Strobe,USUS11000356\n")
    with pytest.raises(ValueError) as error:
        read(path, "csv")
    message = str(error.value)
    assert message.startswith("header lacks artist, title: its first line holds ")
    assert "'Deadmau5', 'Strobe', 'USUS11000356'" in message
    assert message.count("artist") == 1 and message.count("isrc") == 1
    assert str(path) not in message


def test_crawl_export_round_trips_items() -> None:
    rows = read(FIXTURES / "crawl_items.jsonl")
    setlist, apollo, unknown, hypnotized = (row.item for row in rows)
    assert setlist.keys() <= set(SetlistItem.fields)
    assert setlist["source_id"] == "demo0001"
    assert apollo["row_index"] == 0
    assert "enrichment_status" not in apollo
    assert unknown["is_unknown"] is True
    assert hypnotized["enrichment_status"] == "pending"


@pytest.mark.parametrize("path", sorted(FIXTURES.iterdir()), ids=lambda path: path.name)
def test_readers_emit_only_item_fields(path: Path) -> None:
    """Readers build plain dicts for speed; their keys must still be the items' fields."""
    fields = set(TrackItem.fields) | set(SetlistItem.fields)
    for row in read(path):
        if row.item is not None:
            assert row.item.keys() <= fields, row.location


def test_jsonl_bad_lines_are_rejected_with_their_line(tmp_path: Path) -> None:
    path = tmp_path / "items.jsonl"
    path.write_bytes(
        b'{"artist": "A", "title": "One"}\n'
        b"{not json\n"
        b"\n"
        b"[1, 2]\n"
        b'{"artist": "B", "title": "T\xe9"}\n'
        b'{"artist_name": "C", "track_name": "Three"}\n'
    )
    rows = read(path, "jsonl")
    assert [(line_of(row), row.error) for row in rows] == [
        (1, None),
        (2, "invalid JSON: Expecting property name enclosed in double quotes"),
        (4, "not a JSON object"),
        (5, "invalid UTF-8"),
        (6, None),
    ]
    assert rows[1].payload.text == "{not json"
    assert (rows[-1].item["artist"], rows[-1].item["title"]) == ("C", "Three")


def test_listenbrainz_reader_takes_identifiers_from_additional_info_and_mapping() -> None:
    rows = stored(read(FIXTURES / "listens.jsonl"))
    kerala, bloom, kerala_again, emerald = (item for _, item in rows)
    assert kerala["isrc"] == "GBCFB1600101"
    assert kerala["spotify_id"] == "https://open.spotify.com/track/5aBcDeFgHiJkLmNoPqRsTu"
    assert kerala["musicbrainz_id"] == "6a6b5d0e-2222-4c1d-8e2f-000000000002"
    assert kerala["metadata"]["release_name"] == "Migration"
    assert bloom["musicbrainz_id"] == "6a6b5d0e-2222-4c1d-8e2f-000000000006"  # mbid_mapping
    assert bloom["duration_ms"] == 301000  # "duration" is in seconds
    assert bloom["enrichment_status"] == "pending"
    assert kerala_again["isrc"] == kerala["isrc"]
    assert "isrc" not in emerald


def test_listenbrainz_listen_without_track_metadata_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "listens.jsonl"
    path.write_text('{"listened_at": 1}\n{"track_metadata": {"artist_name": "A"}}\n')
    rows = read(path, "listenbrainz")
    assert rows[0].error == "no track_metadata object"
    # Missing title is the writer's call (same rule for every front door): passed on as read.
    assert rows[1].item["artist"] == "A" and "title" not in rows[1].item


def test_spotify_history_skips_podcasts_and_numbers_records() -> None:
    rows = read(FIXTURES / "Streaming_History_Audio_2023.json")
    assert [(line_of(row), row.skipped is not None) for row in rows] == [
        (2, False),
        (19, True),
        (36, False),
        (53, False),
    ]
    assert rows[0].item["spotify_id"] == "spotify:track:7aBcDeFgHiJkLmNoPqRsTu"
    assert rows[0].item["metadata"]["album"] == "Windowlicker"


def test_spotify_playlists_give_item_lines_local_tracks_and_skip_episodes() -> None:
    rows = read(FIXTURES / "Playlist1.json")
    assert [line_of(row) for row in rows] == [7, 18, 34, 45, 55]
    assert rows[1].item["artist"] == "Unknown Artist"
    assert rows[1].item["title"] == "Untitled Dub"
    assert rows[3].skipped is not None
    assert rows[4].item["title"] == "Losing It"


def test_spotify_history_broken_record_is_rejected_and_reading_goes_on(tmp_path: Path) -> None:
    records = [
        {"master_metadata_track_name": f"T{i}", "master_metadata_album_artist_name": "A"}
        for i in range(3)
    ]
    text = json.dumps(records, indent=1).replace('"T1"', '"T1" oops')
    path = tmp_path / "Streaming_History_Audio_2024.json"
    path.write_text(text)
    rows = read(path, "spotify")
    outcome = [(line_of(row), row.error is None) for row in rows]
    assert outcome == [(2, True), (6, False), (10, True)]
    assert "oops" in rows[1].payload.text
    assert rows[2].item["title"] == "T2"


@pytest.mark.parametrize("chunk", [1, 2, 7, 64, 1 << 20])
def test_iter_array_is_independent_of_chunk_boundaries(chunk: int) -> None:
    values = [{"n": i, "s": "x\ny" * i, "nested": {"list": [i, {"deep": "]"}]}} for i in range(30)]
    text = "\n" + json.dumps(values, indent=2)
    elements = list(iter_array(io.StringIO(text), chunk_chars=chunk))
    assert [element.value for element in elements] == values
    starts = [number for number, line in enumerate(text.splitlines(), 1) if line == "  {"]
    assert [element.line for element in elements] == starts


def test_iter_array_finds_a_nested_array_and_reports_truncation() -> None:
    pattern = re.compile(r'"rows"\s*:\s*\[')
    text = '{"meta": 1, "rows": [{"a": 1}, {"a": 2}], "tail": true}'
    assert [e.value for e in iter_array(io.StringIO(text), pattern)] == [{"a": 1}, {"a": 2}]
    truncated = list(iter_array(io.StringIO('[{"a": 1}, {"a": '), chunk_chars=4))
    assert truncated[0].value == {"a": 1}
    assert truncated[1].error is not None
    with pytest.raises(JsonStreamError):
        list(iter_array(io.StringIO('{"no": "array"}')))


@pytest.mark.parametrize("chunk", [3, 16, 64])
def test_iter_array_skips_an_oversized_record_and_goes_on(chunk: int) -> None:
    text = json.dumps([{"big": "x" * 500}, {"a": 1}, {"a": 2}], indent=1)
    elements = list(iter_array(io.StringIO(text), max_element_chars=100, chunk_chars=chunk))
    assert elements[0].error == "record longer than 100 chars"
    assert [element.value for element in elements[1:]] == [{"a": 1}, {"a": 2}]
    assert [element.line for element in elements] == [2, 5, 8]


def test_iter_array_crosses_long_garbage_in_bounded_memory() -> None:
    garbage = "x" * 3_000_000
    stream = io.StringIO('[{"a": 1}, ' + garbage + ', {"a": 2}]')
    tracemalloc.start()
    elements = list(iter_array(stream, max_element_chars=1000, chunk_chars=4096))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert [element.value for element in elements] == [{"a": 1}, None, {"a": 2}]
    kept = elements[1].payload
    assert kept.text == garbage[:MAX_PAYLOAD_BYTES] and kept.truncated
    assert (kept.size, kept.sha256) == (len(garbage), sha256(garbage.encode()).hexdigest())
    assert peak < 1_000_000  # the 3 MB stretch was never held whole


def test_iter_array_memory_stays_bounded_on_a_big_array() -> None:
    class Generated(io.TextIOBase):
        """A 40 MB JSON array produced on the fly, never held whole."""

        def __init__(self, count: int) -> None:
            records = (f'{{"i": {i}, "pad": "{"x" * 400}"}},' for i in range(count))
            self.parts = itertools.chain(["["], records, ['{"i": -1}]'])

        def read(self, size: int = -1) -> str:
            out = []
            total = 0
            for part in self.parts:
                out.append(part)
                total += len(part)
                if total >= size:
                    break
            return "".join(out)

    tracemalloc.start()
    count = sum(1 for _ in iter_array(Generated(100_000), chunk_chars=1 << 16))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert count == 100_001
    assert peak < 5_000_000


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_progress_logs_plain_lines_off_a_terminal(caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock()
    progress = Progress(1000, stream=io.StringIO(), interactive=False, log_every=10, clock=clock)
    caplog.set_level("INFO", logger="scrapers.importers")
    clock.now = 5
    progress.update(100, 100)
    assert not caplog.records  # not yet due
    clock.now = 10
    progress.update(2000, 250)
    assert caplog.messages == ["import progress:  25%  2,000 rows  200 rows/s  ETA 0:00:30"]


def test_progress_draws_a_bar_with_rate_and_eta_on_a_terminal() -> None:
    clock = FakeClock()
    stream = io.StringIO()
    progress = Progress(1000, stream=stream, interactive=True, clock=clock)
    clock.now = 4
    progress.update(8000, 500)
    progress.close()
    output = stream.getvalue()
    assert output.startswith("\r[")
    assert "50%  8,000 rows  2,000 rows/s  ETA 0:00:04" in output
    assert output.endswith("\n")


# One value for every TrackItem field; a field added to items.py must be added here too.
EVERY_TRACK_FIELD = {
    "setlist_source": "1001tracklists",
    "setlist_source_id": "demo0001",
    "row_index": 3,
    "position": 4,
    "played_with_previous": False,
    "mashup_parent_row": None,
    "is_mashup": False,
    "cue_seconds": 600,
    "fetched_at": "2026-05-01T12:00:00+00:00",
    "artist": "Artist",
    "title": "Song (Extended Mix)",
    "artists": [{"name": "Artist", "role": "primary"}],
    "label": "Label",
    "site_track_id": "t1234x",
    "is_unknown": False,
    "is_partial_id": False,
    "isrc": "GBAYE0000001",
    "spotify_id": "4uLU6hMCjMI75M1A2tKUQC",
    "musicbrainz_id": "1f1e8a4c-3d07-4e4a-9c0a-3c8a1f3c1b2d",
    "duration_ms": 215000,
    "bpm": 128,
    "key": "8A",
    "genre": "House",
    "release_date": "2024-05-01",
    "metadata": {"source": "test"},
    "version": "Club Version",
    "is_remix": True,
    "enrichment_status": "enriched",
}


def test_every_track_field_survives_the_jsonl_reader_and_validation(tmp_path: Path) -> None:
    assert EVERY_TRACK_FIELD.keys() == TrackItem.fields.keys()
    path = tmp_path / "items.jsonl"
    path.write_text(json.dumps(EVERY_TRACK_FIELD) + "\n")
    [row] = read(path, "jsonl")
    given = {name for name, value in EVERY_TRACK_FIELD.items() if value is not None}
    assert given <= row.item.keys()
    record = records.to_record(row.item)
    assert (record.values["version"], record.is_remix) == ("Club Version", True)
    assert "extra" not in record.metadata, "every item field is a field, none is extra"


def test_csv_columns_are_every_recording_field(tmp_path: Path) -> None:
    """A catalogue describes recordings: its columns are the items' recording fields."""
    assert (
        set(COLUMNS) == set(RECORDING_FIELDS) and set(RECORDING_FIELDS) <= TrackItem.fields.keys()
    )
    values = {name: EVERY_TRACK_FIELD[name] for name in RECORDING_FIELDS} | {"is_remix": "no"}
    path = tmp_path / "catalogue.csv"
    path.write_text(",".join(values) + "\n" + ",".join(map(str, values.values())) + "\n")
    [row] = read(path, "csv")
    assert set(RECORDING_FIELDS) <= row.item.keys()
    record = records.to_record(row.item)
    assert (record.values["version"], record.is_remix) == ("Club Version", False)
    assert record.values["label"] == "Label"
