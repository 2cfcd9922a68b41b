"""assign_identifiers: the conflict policy for an existing track gaining identifiers."""

from __future__ import annotations

import pytest
from prometheus_client import REGISTRY

from scrapers.db.write.conflicts import assign_identifiers
from scrapers.db.write.fields import Rejected
from scrapers.statuses import ConflictResolution


def _track(db, title: str, isrc: str | None = None, spotify_id: str | None = None) -> str:
    with db.cursor() as cursor:
        cursor.execute(
            "INSERT INTO tracks (title, normalized_title, isrc, spotify_id, bpm)"
            " VALUES (%s, lower(%s), %s, %s, 120) RETURNING id::text",
            (title, title, isrc, spotify_id),
        )
        return cursor.fetchone()[0]


def _row(db, track_id: str) -> dict:
    with db.cursor() as cursor:
        cursor.execute(
            "SELECT isrc, spotify_id, bpm, metadata FROM tracks WHERE id = %s", (track_id,)
        )
        isrc, spotify_id, bpm, metadata = cursor.fetchone()
    return {"isrc": isrc, "spotify_id": spotify_id, "bpm": bpm, "metadata": metadata}


def _conflicts(db) -> list[tuple]:
    with db.cursor() as cursor:
        cursor.execute(
            "SELECT identifier_type, track_id::text, other_track_id::text, stored_value,"
            " incoming_value, resolution, origin FROM identifier_conflicts ORDER BY id"
        )
        return cursor.fetchall()


def test_track_gains_normalised_identifiers_and_values(db) -> None:
    track = _track(db, "Angels")
    outcome = assign_identifiers(
        db,
        track,
        isrc="us-rc1-23-45678",
        spotify_id="spotify:track:4uLU6hMCjMI75M1A2tKUQC",
        values={"bpm": 128, "genre": None},
        metadata={"source": "deezer"},
        origin="enrichment:test",
    )
    assert outcome.assigned == {"isrc": "USRC12345678", "spotify_id": "4uLU6hMCjMI75M1A2tKUQC"}
    assert outcome.conflicts == []
    row = _row(db, track)
    assert (row["isrc"], row["spotify_id"], row["bpm"]) == (
        "USRC12345678",
        "4uLU6hMCjMI75M1A2tKUQC",
        128,
    )
    assert row["metadata"] == {"source": "deezer"}


def test_identifier_owned_by_another_track_stays_there(db) -> None:
    owner = _track(db, "Owner", isrc="USRC12345678")
    claimant = _track(db, "Claimant")
    outcome = assign_identifiers(db, claimant, isrc="USRC12345678", origin="enrichment:test")
    assert outcome.assigned == {}
    assert _row(db, claimant)["isrc"] is None
    assert _row(db, owner)["isrc"] == "USRC12345678"
    assert _conflicts(db) == [
        (
            "isrc",
            claimant,
            owner,
            None,
            "USRC12345678",
            ConflictResolution.KEPT_ON_OTHER_TRACK,
            "enrichment:test",
        )
    ]


def test_stored_identifier_is_never_overwritten(db) -> None:
    track = _track(db, "Stored", isrc="USRC12345678")
    outcome = assign_identifiers(db, track, isrc="GBAYE0000001", origin="enrichment:test")
    assert outcome.assigned == {}
    assert _row(db, track)["isrc"] == "USRC12345678"
    assert _conflicts(db) == [
        (
            "isrc",
            track,
            None,
            "USRC12345678",
            "GBAYE0000001",
            ConflictResolution.KEPT_STORED,
            "enrichment:test",
        )
    ]


def test_invalid_identifier_is_kept_in_metadata_and_nulls_do_not_erase(db) -> None:
    track = _track(db, "Raw")
    outcome = assign_identifiers(
        db, track, isrc="TC-123-45-67890", values={"bpm": None}, origin="enrichment:test"
    )
    assert outcome.invalid == {"isrc": "TC-123-45-67890"}
    row = _row(db, track)
    assert row["isrc"] is None
    assert row["bpm"] == 120
    assert row["metadata"] == {"invalid": {"isrc": "TC-123-45-67890"}}


def test_unknown_track_and_wrong_value_types_raise(db) -> None:
    with pytest.raises(LookupError):
        assign_identifiers(
            db, "00000000-0000-0000-0000-000000000000", isrc="USRC12345678", origin="t"
        )
    track = _track(db, "Typed")
    with pytest.raises(Rejected, match="wrong_type"):
        assign_identifiers(db, track, values={"bpm": ["fast"]}, origin="t")
    with pytest.raises(Rejected, match="not a track value"):
        assign_identifiers(db, track, values={"title": "x"}, origin="t")


def _invalid_isrcs_counted() -> float:
    return REGISTRY.get_sample_value("invalid_identifiers_total", {"identifier_type": "isrc"}) or 0


def test_invalid_identifiers_are_counted_only_once_committed(db) -> None:
    """Work rolled back (an unknown track, a refused value) counts nothing; a commit counts."""
    before = _invalid_isrcs_counted()
    with pytest.raises(LookupError):
        assign_identifiers(
            db, "00000000-0000-0000-0000-000000000000", isrc="TC-123-45-67890", origin="t"
        )
    track = _track(db, "Counted")
    with pytest.raises(Rejected):
        assign_identifiers(db, track, isrc="TC-123-45-67890", values={"bpm": ["x"]}, origin="t")
    assert _invalid_isrcs_counted() == before
    assign_identifiers(db, track, isrc="TC-123-45-67890", origin="t")
    assert _invalid_isrcs_counted() == before + 1
