"""A ``--bulk`` chunk's validated records as the COPY text of the staging tables
(``staging.StagedLoad``): built where the records are made, in the validation process while the
importer reads the next chunk, so that text travels back instead of records and the importer
builds none of it. Pure: no database.
"""

from __future__ import annotations

import json
import pickle
from collections.abc import Sequence
from typing import Any, NamedTuple

from scrapers.db.write import records
from scrapers.db.write.copy import text_of
from scrapers.db.write.records import SetlistRecord, TrackRecord
from scrapers.db.write.validation import Rejection, validate

# The columns of ``import_staging``, ``import_staged_credits`` and ``import_held`` the text
# fills (``staging_statements.CREATE``).
STAGED = (
    "line",
    "location",
    "digest",
    "artist",
    "title",
    "title_key",
    "normalized_title",
    "isrc",
    "spotify_id",
    "is_remix",
    *records.OVERWRITE_COLUMNS,
    *records.FILL_ONLY_COLUMNS,
    "metadata",
    "enrichment_status",
    "invalid_identifiers",
)
CREDITS = ("line", "position", "name", "artist_key", "role")
HELD = ("line", "location", "digest", "record", "setlist_source", "setlist_source_id", "row_index")


class StagingText(NamedTuple):
    """A chunk's records as COPY text, one text per staging table (``staging_text``)."""

    rows: int
    staging: str
    credits: str
    held: str


ValidatedText = tuple[StagingText, list[Rejection]]


def validated_text(
    items: Sequence[Any],
    locations: Sequence[str],
    lines: Sequence[int],
    digests: Sequence[bytes | None],
) -> ValidatedText:
    """``validate`` the items and write their records as ``staging_text``: what the validation
    process sends back for a chunk of a ``--bulk`` load, text rather than records (cheaper to
    send, and the main process builds none of it)."""
    valid, refused = validate(items, locations)
    staged = [(lines[index], locations[index], digests[index], record) for index, record in valid]
    return staging_text(staged), refused


def staging_text(staged: Sequence[tuple[int, str, bytes | None, records.Record]]) -> StagingText:
    """Rows validated by ``records.to_record`` (line, location, digest, record) as the COPY text
    of each staging table (``StagedLoad.add_records``).

    A setlist, or a track row placed in one, is *held*: kept whole for the batch writer,
    which writes it with the tangled rows in file order. A held row that is a track is
    staged as well, so that its title key, identifiers and spelling tangle whatever they
    touch (``staging_statements.TANGLED``)."""
    rows, credits, held = [], [], []
    for line, location, digest, record in staged:
        if isinstance(record, SetlistRecord) or record.placement is not None:
            placed = record.placement if isinstance(record, TrackRecord) else None
            setlist, row_index = (None, None), None
            if placed is not None:
                setlist, row_index = placed.setlist_key, placed.row_index
            held.append(
                (
                    line,
                    location,
                    None if digest is None else "\\x" + digest.hex(),
                    "\\x" + pickle.dumps(record, pickle.HIGHEST_PROTOCOL).hex(),
                    *setlist,
                    row_index,
                )
            )
            if not (isinstance(record, TrackRecord) and record.is_track):
                continue
        rows.append(
            (
                line,
                location,
                None if digest is None else "\\x" + digest.hex(),
                record.artist,
                record.title,
                record.title_key,
                record.normalized_title,
                record.isrc,
                record.spotify_id,
                record.is_remix,
                *(record.values.get(c) for c in records.OVERWRITE_COLUMNS),
                *(record.values.get(c) for c in records.FILL_ONLY_COLUMNS),
                json.dumps(record.metadata, default=str),
                record.enrichment_status,
                "{" + ",".join(record.invalid_identifiers) + "}",
            )
        )
        for position, ((name, role), key) in enumerate(
            zip(record.credits, record.artist_keys(), strict=True)
        ):
            credits.append((line, position, name, key, str(role)))
    return StagingText(len(staged), text_of(rows), text_of(credits), text_of(held))
