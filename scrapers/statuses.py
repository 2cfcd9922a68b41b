"""Every status, resolution and code the catalogue stores, each spelled once.

The database checks the same sets (CHECK constraints of migrations 001 and 008), and
``tests/test_statuses.py`` reads those constraints back from ``pg_constraint`` and compares: a
value added here without a migration, or the other way round, fails that test. SQL text built in
Python takes its values from here as parameters (or ``sql.Literal``), never as typed literals.
"""

from __future__ import annotations

from enum import StrEnum

# The music sources enrichment asks: a key of the enrichment settings, of the shared rate limits
# and the response cache, and a label of the enrichment metrics.
SOURCES = ("musicbrainz", "deezer", "spotify")


class EnrichmentStatus(StrEnum):
    """``tracks.enrichment_status``: where a track stands in the enrichment backfill."""

    PENDING = "pending"  # never looked up: the backfill's queue
    ENRICHED = "enriched"  # a source gave a valid ISRC
    NOT_FOUND = "not_found"  # every source answered, none had one
    FAILED = "failed"  # a source could not answer (outage, quota): tried again sooner

    @classmethod
    def outcomes(cls) -> tuple[EnrichmentStatus, ...]:
        """The results of a lookup. One replaces "pending"; "pending" never replaces one."""
        return (cls.ENRICHED, cls.NOT_FOUND, cls.FAILED)


class ConflictResolution(StrEnum):
    """``identifier_conflicts.resolution``: what the conflict policy did with the claim."""

    KEPT_STORED = "kept_stored"  # the track kept its own, different identifier
    KEPT_ON_OTHER_TRACK = "kept_on_other_track"  # another track holds it and keeps it


class IdentifierType(StrEnum):
    """``identifier_conflicts.identifier_type``: the unique identifiers a track can carry."""

    ISRC = "isrc"
    SPOTIFY_ID = "spotify_id"


class CreditRole(StrEnum):
    """``track_artists.role``."""

    PRIMARY = "primary"
    FEATURED = "featured"
    REMIXER = "remixer"


class RejectionCode(StrEnum):
    """Why an input was not stored: the start of ``rejected_items.reason`` ("code: detail")
    and the ``items_rejected_total{reason}`` label."""

    WRONG_TYPE = "wrong_type"
    WRONG_VALUE = "wrong_value"
    FIELD_TOO_LONG = "field_too_long"
    NUL_BYTE = "nul_byte"
    MISSING_TITLE = "missing_title"
    MISSING_ARTIST = "missing_artist"
    MISSING_SOURCE_ID = "missing_source_id"
    MISSING_ROW_INDEX = "missing_row_index"
    UNKNOWN_TRACK = "unknown_track"  # an "ID - ID" row with no setlist to sit in
    DATABASE_ERROR = "database_error"  # PostgreSQL refused the item alone (bisection)
    UNREADABLE = "unreadable"  # an importer could not read the line at all
