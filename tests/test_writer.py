"""The batch writer against a real PostgreSQL: tiers, dedupe, conflicts, rejects, setlists."""

from __future__ import annotations

import hashlib
import itertools
import os
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from prometheus_client import REGISTRY
from psycopg2 import sql

from scrapers.db.write import ids
from scrapers.db.write.payload import MAX_PAYLOAD_BYTES, payload_text
from scrapers.db.write.writer import BatchWriter, DatabaseUnavailable, new_id
from scrapers.importers.overlap import OverlappedWriter
from scrapers.items import SetlistItem, TrackItem
from scrapers.metrics import MatchTier

ISRC = "USRC12345678"
SPOTIFY = "4uLU6hMCjMI75M1A2tKUQC"
OTHER_SPOTIFY = "7ouMYWpwJ422jRcDASZB7P"


@pytest.fixture
def writer(db_url: str) -> Iterator[BatchWriter]:
    with BatchWriter(db_url, origin="test:writer", retry_timeout=5) as batch_writer:
        yield batch_writer


def query(db, statement: str, params: Any = None) -> list[tuple]:
    with db.cursor() as cursor:
        cursor.execute(statement, params)
        return cursor.fetchall()


def counter(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def tier_counts() -> tuple[float, float, float]:
    return (
        counter("tracks_upsert_isrc_total"),
        counter("tracks_upsert_spotify_total"),
        counter("tracks_upsert_title_total"),
    )


def delta(before: tuple[float, ...], after: tuple[float, ...]) -> tuple[float, ...]:
    return tuple(b - a for a, b in zip(before, after, strict=True))


def track(artist: str, title: str, **fields: Any) -> dict[str, Any]:
    return {"artist_name": artist, "track_name": title, **fields}


def test_isrc_tier_matches_any_spelling_of_the_isrc(writer, db) -> None:
    before = tier_counts()
    writer.write([track("Artist", "Song", isrc="us-rc1-23-45678")])
    result = writer.write([track("Someone Else", "Other Name", isrc="USRC 12 345678", bpm=128)])
    assert (result.inserted, result.updated) == (0, 1)
    assert query(db, "SELECT isrc, title, bpm FROM tracks") == [(ISRC, "Song", 128)]
    assert delta(before, tier_counts()) == (2, 0, 0)


def test_spotify_tier_and_the_track_gains_the_isrc(writer, db) -> None:
    before = tier_counts()
    writer.write([track("Artist", "Song", spotify_id=SPOTIFY)])
    url = f"https://open.spotify.com/track/{SPOTIFY}?si=abc"
    writer.write([track("Artist", "Song (other spelling)", spotify_id=url, isrc=ISRC)])
    assert query(db, "SELECT spotify_id, isrc FROM tracks") == [(SPOTIFY, ISRC)]
    # The second item carried an ISRC: it counts on the ISRC tier, its strongest identifier.
    assert delta(before, tier_counts()) == (1, 1, 0)


def test_title_tier_ignores_spelling_but_not_the_artist(writer, db) -> None:
    before = tier_counts()
    writer.write([track("Armin van Buuren feat. Fiora", "Waiting For The Night")])
    result = writer.write(
        [
            track("ARMIN VAN BUUREN", "Waiting for the Night (ft. Fiora)"),
            track("Armin van Buuren ft Fiora", "Waiting  For The Night!"),
            track("Somebody Else", "Waiting For The Night"),
        ]
    )
    assert (result.inserted, result.updated) == (1, 2)
    assert query(db, "SELECT count(*) FROM tracks") == [(2,)]
    assert delta(before, tier_counts()) == (0, 0, 4)
    assert query(
        db,
        "SELECT a.name, ta.role FROM track_artists ta JOIN artists a ON a.id = ta.artist_id"
        " JOIN tracks t ON t.id = ta.track_id WHERE t.title = 'Waiting For The Night'"
        " ORDER BY ta.role, a.name",
    ) == [("Fiora", "featured"), ("Armin van Buuren", "primary"), ("Somebody Else", "primary")]


def test_remixes_edits_and_originals_stay_apart(writer, db) -> None:
    titles = [
        "Angels",
        "Angels (Extended Mix)",
        "Angels (Radio Edit)",
        "Angels (Tiësto Remix)",
        "Angels (Tiesto Remix)",  # same remix, spelled without the accent
    ]
    writer.write([track("Robbie Williams", title) for title in titles])
    assert query(db, "SELECT count(*) FROM tracks") == [(4,)]
    assert query(db, "SELECT count(*) FROM tracks WHERE is_remix") == [(1,)]
    assert query(
        db,
        "SELECT a.name FROM track_artists ta JOIN artists a ON a.id = ta.artist_id"
        " WHERE ta.role = 'remixer'",
    ) == [("Tiësto",)]


def test_title_tier_does_not_adopt_a_track_with_other_identifiers(writer, db) -> None:
    writer.write([track("Artist", "Song", isrc=ISRC)])
    result = writer.write([track("Artist", "Song", isrc="GBAYE0000001")])
    assert result.inserted == 1
    assert query(db, "SELECT isrc FROM tracks ORDER BY isrc") == [("GBAYE0000001",), (ISRC,)]
    # An item without identifiers may still join the oldest matching recording.
    assert writer.write([track("Artist", "Song", bpm=125)]).updated == 1
    assert query(db, "SELECT isrc FROM tracks WHERE bpm = 125") == [(ISRC,)]


def test_batch_dedupe_one_track_per_recording(writer, db) -> None:
    items = [
        track("Artist", "Song"),
        track("Artist", "Song"),
        track("artist", "song", isrc=ISRC),
        track("Artist", "SONG", spotify_id=f"spotify:track:{SPOTIFY}", bpm=126),
        track("Artist", "Song", isrc="US-RC1-23-45678", key="8A"),
    ]
    result = writer.write(items)
    assert (result.inserted, result.updated) == (1, 4)
    assert query(db, "SELECT isrc, spotify_id, bpm, key FROM tracks") == [
        (ISRC, SPOTIFY, 126, "8A")
    ]
    assert query(db, "SELECT count(*) FROM artists") == [(1,)]


def test_isrc_of_track_a_and_spotify_of_track_b(writer, db) -> None:
    writer.write([track("A", "Track A", isrc=ISRC), track("B", "Track B", spotify_id=SPOTIFY)])
    track_a, track_b = (
        query(db, "SELECT id::text FROM tracks WHERE title = %s", (title,))[0][0]
        for title in ("Track A", "Track B")
    )
    conflicts_before = counter(
        "identifier_conflicts_total",
        identifier_type="spotify_id",
        resolution="kept_on_other_track",
    )
    result = writer.write([track("A", "Track A", isrc=ISRC, spotify_id=SPOTIFY, bpm=130)])
    assert (result.updated, result.conflicts) == (1, 1)
    assert query(db, "SELECT title, isrc, spotify_id, bpm FROM tracks ORDER BY title") == [
        ("Track A", ISRC, None, 130),
        ("Track B", None, SPOTIFY, None),
    ]
    assert query(
        db,
        "SELECT identifier_type, track_id::text, other_track_id::text, incoming_value,"
        " resolution, origin FROM identifier_conflicts",
    ) == [("spotify_id", track_a, track_b, SPOTIFY, "kept_on_other_track", "test:writer")]
    assert (
        counter(
            "identifier_conflicts_total",
            identifier_type="spotify_id",
            resolution="kept_on_other_track",
        )
        == conflicts_before + 1
    )


def test_bad_items_are_rejected_and_the_rest_of_the_batch_is_kept(writer, db) -> None:
    items = [
        track("Artist", "Good One", isrc="us-rc1-23-45678"),
        track("Artist", "Nul\x00Byte"),
        track("Artist", "x" * 501),
        track("Artist", "Typed", bpm=["fast"]),
        {"artist_name": "Artist", "isrc": "GBAYE0000001"},
        track("Artist", "Bad ISRC", isrc="TC-123-45-67890"),
        track("Artist", "Good Two"),
    ]
    locations = [f"export.csv:{line}" for line in range(2, 9)]
    rejected_before = counter("items_rejected_total", reason="missing_title")
    result = writer.write(items, locations)
    assert result.stored == 3
    assert dict(result.rejected) == {
        "nul_byte": 1,
        "field_too_long": 1,
        "wrong_type": 1,
        "missing_title": 1,
    }
    assert query(db, "SELECT title, isrc, metadata FROM tracks ORDER BY title") == [
        ("Bad ISRC", None, {"invalid": {"isrc": "TC-123-45-67890"}}),
        ("Good One", ISRC, {}),
        ("Good Two", None, {}),
    ]
    rejected = query(db, "SELECT location, reason, payload, origin FROM rejected_items ORDER BY id")
    assert [(location, reason.split(":")[0]) for location, reason, _, _ in rejected] == [
        ("export.csv:3", "nul_byte"),
        ("export.csv:4", "field_too_long"),
        ("export.csv:5", "wrong_type"),
        ("export.csv:6", "missing_title"),
    ]
    assert "\\u0000" in rejected[0][2]
    assert {origin for *_, origin in rejected} == {"test:writer"}
    assert counter("items_rejected_total", reason="missing_title") == rejected_before + 1
    # Importing the same file again stores nothing new and lists no refusal twice.
    assert writer.write(items, locations).inserted == 0
    assert query(db, "SELECT count(*) FROM rejected_items") == [(4,)]


def test_a_refused_item_is_kept_as_a_bounded_prefix_with_size_and_hash(writer, db) -> None:
    """It was stored whole: a 200 MB line went into rejected_items.payload in full."""
    item = track("Artist", "t" * 300_000)
    writer.write([item], ["big.jsonl:7"])
    payload = payload_text(item).encode()
    assert query(
        db,
        "SELECT location, octet_length(payload), payload_bytes, payload_sha256,"
        " left(payload, 20) FROM rejected_items",
    ) == [
        (
            "big.jsonl:7",
            MAX_PAYLOAD_BYTES,
            len(payload),
            hashlib.sha256(payload).hexdigest(),
            payload[:20].decode(),
        )
    ]


def refuse_poison(db) -> None:
    """A rule the validation cannot know about, enforced by PostgreSQL alone: a track titled
    "Poison" is refused."""
    with db.cursor() as cursor:
        cursor.execute(
            """
            CREATE FUNCTION refuse_poison() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                IF NEW.title = 'Poison' THEN
                    RAISE EXCEPTION 'poisoned title' USING ERRCODE = 'check_violation';
                END IF;
                RETURN NEW;
            END $$;
            CREATE TRIGGER refuse_poison BEFORE INSERT ON tracks
                FOR EACH ROW EXECUTE FUNCTION refuse_poison();
            """
        )


def test_an_item_the_database_refuses_is_isolated_and_rejected(writer, db) -> None:
    refuse_poison(db)
    items = [track("Artist", f"Song {n}") for n in range(7)]
    items.insert(4, track("Artist", "Poison"))
    result = writer.write(items, [f"line {n}" for n in range(8)])
    assert result.stored == 7
    assert query(db, "SELECT count(*) FROM tracks") == [(7,)]
    assert query(db, "SELECT location, reason FROM rejected_items") == [
        ("line 4", "database_error: 23514 poisoned title")
    ]


def setlist_items() -> list[Any]:
    row = {"setlist_source": "1001tracklists", "setlist_source_id": "abc123"}
    return [
        SetlistItem(
            source="1001tracklists",
            source_id="abc123",
            url="https://www.1001tracklists.com/tracklist/abc123/x.html",
            title="DJ - Live @ Somewhere",
            djs=["DJ"],
            date="2024-05-01",
            stated_track_count=5,
        ),
        TrackItem(**row, row_index=0, position=1, cue_seconds=0, artist="A", title="One"),
        TrackItem(
            **row,
            row_index=1,
            position=None,
            played_with_previous=True,
            artist="B",
            title="Two (Dub Mix)",
        ),
        TrackItem(
            **row, row_index=2, position=2, is_mashup=True, artist="C vs. D", title="Three vs. Four"
        ),
        TrackItem(
            **row, row_index=3, position=None, mashup_parent_row=2, artist="C", title="Three"
        ),
        TrackItem(
            **row,
            row_index=4,
            position=3,
            cue_seconds=420,
            artist="ID",
            title="ID",
            is_unknown=True,
        ),
        TrackItem(
            **row, row_index=5, position=4, artist="AFROJACK", title="ID", is_partial_id=True
        ),
    ]


def test_setlist_rows_positions_and_unknown_tracks(writer, db) -> None:
    result = writer.write(setlist_items())
    assert (result.setlists, result.setlist_rows, result.inserted) == (1, 6, 4)
    rows = query(
        db,
        "SELECT st.row_index, st.position, st.played_with_previous, st.is_mashup,"
        " st.mashup_parent_row, st.cue_seconds, t.title, st.is_unknown, st.is_partial_id"
        " FROM setlist_tracks st LEFT JOIN tracks t ON t.id = st.track_id ORDER BY row_index",
    )
    assert rows == [
        (0, 1, False, False, None, 0, "One", False, False),
        (1, None, True, False, None, None, "Two (Dub Mix)", False, False),
        (2, 2, False, True, None, None, "Three vs. Four", False, False),
        (3, None, False, False, 2, None, "Three", False, False),
        (4, 3, False, False, None, 420, None, True, False),
        (5, 4, False, False, None, None, None, False, True),
    ]
    assert query(db, "SELECT count(*) FROM tracks WHERE title = 'ID'") == [(0,)]
    # Applying the same batch again changes nothing: no duplicates anywhere.
    again = writer.write(setlist_items())
    assert (again.inserted, again.updated) == (0, 4)
    for table, count in (("tracks", 4), ("setlists", 1), ("setlist_tracks", 6), ("artists", 4)):
        statement = sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table))
        assert query(db, statement) == [(count,)], table


def test_rows_of_a_setlist_never_seen_get_a_bare_setlist(writer, db) -> None:
    row = TrackItem(
        setlist_source="1001tracklists",
        setlist_source_id="later",
        row_index=0,
        artist="A",
        title="One",
    )
    writer.write([row])
    assert query(db, "SELECT source_id, title FROM setlists") == [("later", None)]
    writer.write([SetlistItem(source="1001tracklists", source_id="later", title="Named")])
    assert query(db, "SELECT source_id, title FROM setlists") == [("later", "Named")]
    assert query(db, "SELECT count(*) FROM setlist_tracks") == [(1,)]


def test_known_spellings_resolve_through_the_lookup_cache(writer, db) -> None:
    writer.write([track("Artist", "Song (Original Mix)")])
    assert query(db, "SELECT raw_artist, raw_title FROM track_lookup") == [
        ("Artist", "Song (Original Mix)")
    ]
    # Even when the stored key no longer matches (a newer identity module would compute
    # another), a spelling seen before resolves to its track.
    with db.cursor() as cursor:
        cursor.execute("UPDATE tracks SET title_key = 'changed::key'")
    result = writer.write([track("Artist", "Song (Original Mix)", bpm=124)])
    assert (result.inserted, result.updated) == (0, 1)
    assert query(db, "SELECT count(*), max(bpm) FROM tracks") == [(1, 124)]


def test_nulls_never_erase_and_identifiers_are_never_overwritten(writer, db) -> None:
    writer.write([track("Artist", "Song", isrc=ISRC, spotify_id=SPOTIFY, bpm=128, key="8A")])
    again = [track("Artist", "Song", isrc=ISRC, spotify_id=OTHER_SPOTIFY, bpm=None)]
    assert writer.write(again).conflicts == 1
    assert query(db, "SELECT spotify_id, bpm, key FROM tracks") == [(SPOTIFY, 128, "8A")]
    # The same contradiction again is the same fact: recorded once.
    assert writer.write(again).conflicts == 0
    assert query(
        db, "SELECT stored_value, incoming_value, resolution FROM identifier_conflicts"
    ) == [(SPOTIFY, OTHER_SPOTIFY, "kept_stored")]


def test_debug_log_names_each_isrc_upsert(writer, caplog) -> None:
    with caplog.at_level("DEBUG", logger="scrapers.db"):
        writer.write([track("Artist", "Song", isrc="us-rc1-23-45678")])
    assert "Upserted track via ISRC: USRC12345678" in caplog.text
    assert "Stored batch of 1 items" in caplog.text


def test_nul_bytes_hidden_in_nested_values_are_found(writer, db) -> None:
    result = writer.write(
        [
            track("Artist", "Nested", metadata={"source": {"name": "deezer\x00"}}),
            track("Artist", "Listed", artists=[{"name": "A\x00", "role": "primary"}]),
        ]
    )
    assert result.rejected == {"nul_byte": 2}
    assert query(db, "SELECT reason FROM rejected_items ORDER BY id") == [
        ("nul_byte: metadata.source.name contains a NUL byte",),
        ("nul_byte: artists.name contains a NUL byte",),
    ]


def test_text_with_copy_control_characters_round_trips(writer, db) -> None:
    title = "Back\\slash\tTab\nNew\rLine \\N"
    writer.write([track("Artist\t2", title, metadata={"note": "a\tb"})])
    assert query(db, "SELECT title, metadata FROM tracks") == [(title, {"note": "a\tb"})]
    assert query(db, "SELECT raw_artist, raw_title FROM track_lookup") == [("Artist\t2", title)]


def test_enrichment_outcome_replaces_pending_but_pending_never_replaces_an_outcome(
    writer, db
) -> None:
    writer.write([track("Artist", "Queued", enrichment_status="pending")])
    assert query(db, "SELECT enrichment_status FROM tracks") == [("pending",)]
    writer.write([track("Artist", "Queued", enrichment_status="enriched", isrc=ISRC)])
    assert query(db, "SELECT enrichment_status, isrc FROM tracks") == [("enriched", ISRC)]
    writer.write([track("Artist", "Queued", enrichment_status="pending")])
    assert query(db, "SELECT enrichment_status FROM tracks") == [("enriched",)]


def test_submitted_batches_are_stored_in_order(writer, db) -> None:
    setlist, *rows = setlist_items()
    overlapped = OverlappedWriter(writer)
    futures = [
        overlapped.submit([setlist]),
        overlapped.submit(rows[:3]),
        overlapped.submit(rows[3:]),
    ]
    results = [future.result(timeout=60) for future in futures]
    assert [r.setlists for r in results] == [1, 0, 0]
    assert [r.setlist_rows for r in results] == [0, 3, 3]
    # The setlist from the first batch is the one the later rows hang on: nothing was doubled.
    assert query(db, "SELECT count(*) FROM setlists") == [(1,)]
    assert query(db, "SELECT count(*) FROM setlist_tracks") == [(6,)]


def test_an_unreachable_database_fails_each_batch_loudly() -> None:
    url = "postgresql://nobody@127.0.0.1:9/none?connect_timeout=1"
    with BatchWriter(url, origin="test", retry_timeout=0.3) as unreachable:
        future = OverlappedWriter(unreachable).submit([track("A", "Lost?")])
        with pytest.raises(DatabaseUnavailable):
            future.result(timeout=30)
        with pytest.raises(DatabaseUnavailable):
            unreachable.write([track("A", "Lost?")])


def test_the_writer_session_never_jit_compiles(writer) -> None:
    """A candidate fetch's row estimate crosses jit_above_cost; compiling it cost 0.5 s a batch."""
    writer.write([track("A", "Warm up")])
    connection = writer._connection
    assert connection is not None
    with connection.cursor() as cursor:
        cursor.execute("SHOW jit")
        assert cursor.fetchone() == ("off",)
    connection.rollback()


def test_metadata_equal_in_python_but_not_in_json_is_stored_as_given(writer, db) -> None:
    """A batch serialises each distinct metadata once: {"n": 1} and {"n": True} compare equal
    in Python but are other JSON, and each track must keep its own."""
    writer.write(
        [
            track("Artist", "One", metadata={"n": 1, "source": "a"}),
            track("Artist", "True", metadata={"n": True, "source": "a"}),
            track("Artist", "Text", metadata={"source": "a"}),
            track("Artist", "Text again", metadata={"source": "a"}),
        ]
    )
    assert query(db, "SELECT title, metadata::text FROM tracks ORDER BY title") == [
        ("One", '{"n": 1, "source": "a"}'),
        ("Text", '{"source": "a"}'),
        ("Text again", '{"source": "a"}'),
        ("True", '{"n": true, "source": "a"}'),
    ]


def test_new_ids_are_version_7_uuids_that_sort_by_creation() -> None:
    first = new_id()
    time.sleep(0.002)
    second = new_id()
    assert uuid.UUID(first).version == 7
    assert uuid.UUID(first).variant == uuid.RFC_4122
    assert first < second


def test_ids_made_in_one_millisecond_sort_in_the_order_made() -> None:
    """A batch's tracks share one created_at: the title tier's "oldest" then goes by id, which
    drew its random part afresh each time and put tracks of one millisecond in any order."""
    ids = [new_id() for _ in range(5000)]
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)
    assert {uuid.UUID(made).version for made in ids} == {7}
    assert {uuid.UUID(made).variant for made in ids} == {uuid.RFC_4122}


def test_ids_made_at_once_are_the_ids_made_one_by_one(monkeypatch) -> None:
    """``new_ids`` formats the part its ids share once: across a carry of the low random bits
    into the high ones too, each id must be the one ``new_id`` makes from the same state."""
    milliseconds = time.time_ns() // 1_000_000 + 60_000  # ahead of the clock: counts up from it
    carry = 1 << 62
    monkeypatch.setattr(ids, "_last_id", [milliseconds, carry - 3])
    at_once = ids.new_ids(5) + list(itertools.islice(ids.id_stream(4), 6))
    monkeypatch.setattr(ids, "_last_id", [milliseconds, carry - 3])
    one_by_one = [ids.new_id() for _ in range(5)]
    assert at_once[:5] == one_by_one
    assert at_once == sorted(at_once) and len(set(at_once)) == len(at_once)
    for offset, made in enumerate(at_once, start=-2):
        value = uuid.UUID(made)
        assert (value.version, value.variant) == (7, uuid.RFC_4122)
        assert value.int >> 80 == milliseconds
        random_part = (value.int >> 64 & 0xFFF) << 62 | value.int & (carry - 1)
        assert random_part == carry + offset


def test_a_forked_child_draws_other_ids_than_its_parent() -> None:
    """Two processes that shared a random sequence would create the same ids in one millisecond."""
    random_part = (1 << 80) - 1
    read_end, write_end = os.pipe()
    child = os.fork()
    if child == 0:
        os.write(write_end, new_id().encode())
        os._exit(0)
    os.close(write_end)
    parent_id = new_id()
    os.waitpid(child, 0)
    with os.fdopen(read_end) as pipe:
        child_id = pipe.read()
    assert uuid.UUID(child_id).int & random_part != uuid.UUID(parent_id).int & random_part


def matched_counts() -> tuple[float, ...]:
    return tuple(counter("tracks_matched_total", tier=tier) for tier in MatchTier)


def test_matched_tiers_count_how_items_were_matched_not_what_they_carried(writer) -> None:
    """An item carrying an ISRC the catalogue does not know, found by its title, counts in
    tracks_upsert_isrc_total (its path) and tracks_matched_total{tier="title"} (its match)."""
    assert REGISTRY.get_sample_value("tracks_matched_total", {"tier": "spelling"}) is not None
    writer.write([track("Artist feat. Guest", "Song")])
    before, matched_before = tier_counts(), matched_counts()
    writer.write(
        [
            track("Artist", "Song (feat. Guest)", isrc=ISRC),  # title key
            track("Other", "Name", isrc="us-rc1-23-45678"),  # the ISRC it just gained
            track("Artist feat. Guest", "Song", spotify_id=SPOTIFY),  # known spelling
            track("New", "Track"),
        ]
    )
    assert delta(before, tier_counts()) == (2, 1, 1)
    # In MatchTier's order: isrc, spotify, spelling, title, new.
    assert delta(matched_before, matched_counts()) == (1, 0, 1, 1, 1)


def test_rewriting_known_items_writes_nothing(writer, db) -> None:
    """A re-import of rows already stored as they are changes no row version."""
    items = [
        track("Artist", "Song", isrc=ISRC, bpm=128, metadata={"source": "a"}),
        track("Other", "Name", bpm=120),
    ]
    writer.write(items)
    versions = query(db, "SELECT id, xmin::text FROM tracks ORDER BY id")
    assert writer.write(items).updated == 2
    assert query(db, "SELECT id, xmin::text FROM tracks ORDER BY id") == versions
    writer.write([track("Other", "Name", bpm=121)])
    assert query(db, "SELECT xmin::text FROM tracks ORDER BY id") != [v for _, v in versions]
