"""Items that flow spider -> enrichment -> database.

A tracklist page yields one ``SetlistItem`` and then one ``TrackItem`` per row. Track items point
at their setlist by ``(setlist_source, setlist_source_id)``. When the crawl stores into the
database, ``scrapers.crawl.incremental`` hands a page's setlist item on after its rows, with the
page's digest: storing it marks the page as read whole, which lets an incremental crawl skip it
(the writer makes a bare setlist row for rows that come first). Other producers may also send
plain dicts in the testing plan's shape (``track_name``, ``artist_name``, ``isrc``,
``spotify_id``, ``bpm``, ...); the batch writer accepts both.

These classes are the one list of an item's fields: ``scrapers.db.write.records`` validates exactly
these, and every importer reads them (``RECORDING_FIELDS`` for formats that describe recordings
rather than setlist rows, such as a CSV catalogue).
"""

from collections.abc import Mapping
from typing import Any

import scrapy
from itemadapter import ItemAdapter

# Marks the fields that describe the recording itself (not its place on a page).
_RECORDING = {"recording": True}


class SetlistItem(scrapy.Item):
    source = scrapy.Field()  # "1001tracklists"
    source_id = scrapy.Field()  # the site's tracklist id, e.g. "1gz59x6t"
    url = scrapy.Field()
    title = scrapy.Field()
    djs = scrapy.Field()  # list[str], as linked in the header
    event = scrapy.Field()  # event / source name, or None
    date = scrapy.Field()  # ISO date "YYYY-MM-DD" of the set, or None
    genres = scrapy.Field()  # list[str]
    stated_track_count = scrapy.Field()  # the site's "with N tracks", or None
    content_hash = scrapy.Field()  # digest of the parsed page (scrapers.crawl.refresh)
    row_count = scrapy.Field()  # rows on the page: stored rows past it are removed
    # When the page was fetched (ISO 8601 with its UTC offset). Of two fetches of one set, the
    # newest wins: an older one (a spool replayed late) never overwrites the stored set's rows.
    fetched_at = scrapy.Field()


class TrackItem(scrapy.Item):
    # Where the row sits.
    setlist_source = scrapy.Field()
    setlist_source_id = scrapy.Field()
    row_index = scrapy.Field()  # 0-based order of the div.tlpItem row on the page
    position = scrapy.Field()  # int as shown ("01" -> 1), None for a "w/" row
    played_with_previous = scrapy.Field()  # bool: a "w/" row
    mashup_parent_row = scrapy.Field()  # row_index of the mashup parent for a part, else None
    is_mashup = scrapy.Field()  # bool: this row is a mashup parent
    cue_seconds = scrapy.Field()  # int, None when the set has no cues
    fetched_at = scrapy.Field()  # when the row's page was fetched, as SetlistItem.fetched_at

    # What was played. f"{artist} - {title}" is the line as the site shows it.
    artist = scrapy.Field(_RECORDING)
    title = scrapy.Field(_RECORDING)
    artists = scrapy.Field()  # list[{"name": str, "role": "primary"|"featured"|"remixer"}]
    label = scrapy.Field(_RECORDING)  # as shown, several joined by "/", or None
    site_track_id = scrapy.Field()  # data-trackid, or None
    is_unknown = scrapy.Field()  # bool: an "ID - ID" row (no track)
    is_partial_id = scrapy.Field()  # bool: "Artist - ID" (no track)

    # Identifiers and metadata: empty from the site, filled by enrichment or an importer.
    isrc = scrapy.Field(_RECORDING)
    spotify_id = scrapy.Field(_RECORDING)
    musicbrainz_id = scrapy.Field(_RECORDING)
    duration_ms = scrapy.Field(_RECORDING)
    bpm = scrapy.Field(_RECORDING)
    key = scrapy.Field(_RECORDING)
    genre = scrapy.Field(_RECORDING)
    release_date = scrapy.Field(_RECORDING)
    metadata = scrapy.Field()  # dict: provenance ("source", "confidence" per value), raw values
    version = scrapy.Field(_RECORDING)  # "Extended Mix"; else read from the title's bracket
    is_remix = scrapy.Field(_RECORDING)  # bool; else "remix" in the title or a remixer credit
    enrichment_status = scrapy.Field()  # scrapers.statuses.EnrichmentStatus, or None


# Plan-shape dicts (the testing plan's ``track_name``, ``artist_name``) name these differently.
TRACK_ALIASES = {"track_name": "title", "artist_name": "artist", "name": "title"}
RECORDING_FIELDS = tuple(name for name, field in TrackItem.fields.items() if field.get("recording"))


def resolve_aliases(fields: dict[str, Any]) -> None:
    """Rename plan-shape names to the item's, in place; the item's own name wins if both are."""
    for alias, name in TRACK_ALIASES.items():
        if alias in fields and name not in fields:
            fields[name] = fields.pop(alias)


def to_plain(item: Any) -> dict[str, Any]:
    """The item as a plain dict (what ``scrapy crawl -O items.jsonl`` would write)."""
    if type(item) is dict or isinstance(item, Mapping):
        return dict(item)
    return ItemAdapter(item).asdict()
