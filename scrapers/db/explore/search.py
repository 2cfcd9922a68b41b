"""Find tracks: by ISRC, by Spotify ID, by exact artist + title, or by typo-tolerant text.

Text search is trigram word similarity (``pg_trgm``, migration 011) between the query and every
spelling a track was stored under (``track_lookup``: "Artist Title"), so "bicpe glu" finds
"Bicep - Glue" and a track is found by any name the site or an import gave it. Identifiers and
the exact artist + title key (``scrapers.identity``) are tried first: they name one track.
"""

from __future__ import annotations

from typing import Any

from scrapers import identity
from scrapers.db.explore.refs import TRACK_REF_COLUMNS, load_refs, track_ref
from scrapers.db.explore.results import SearchHit
from scrapers.db.explore.tracks import DEFAULT_LIMIT, check_limit, track_plays

MAX_QUERY_LENGTH = 200
# Word similarity (0..1) a spelling needs to be a hit: 0.4 lets one typo in a short word through
# ("stobe" finds "Strobe": 0.44) while "glue" does not find every title holding a "g".
WORD_SIMILARITY_THRESHOLD = 0.4
# Spellings ranked by similarity before plays are counted for the best of them.
CANDIDATES = 200
SEARCH_DOCUMENT = "(l.raw_artist || ' ' || l.raw_title)"


class SearchQueryError(ValueError):
    """The query is empty or too long."""


def split_query(query: str) -> tuple[str, str] | None:
    """``"ARTIST - TITLE"`` -> (artist, title); None when the text has no " - " between them."""
    artist, separator, title = query.partition(" - ")
    if separator and artist.strip() and title.strip():
        return artist.strip(), title.strip()
    return None


def search_tracks(connection: Any, query: str, limit: int = DEFAULT_LIMIT) -> tuple[SearchHit, ...]:
    """Up to ``limit`` tracks for ``query``, best first.

    An ISRC or a Spotify ID (bare, URI or URL) finds the track holding it; "ARTIST - TITLE" finds
    the track with that artist + title key first; then text similarity, ties broken by the most
    setlists. Needs a transaction (the similarity threshold is set for it alone).
    """
    check_limit(limit)
    text = " ".join(query.split())
    if not text:
        raise SearchQueryError("the search text is empty")
    if len(text) > MAX_QUERY_LENGTH:
        raise SearchQueryError(f"the search text is longer than {MAX_QUERY_LENGTH} characters")
    with connection.cursor() as cursor:
        exact = _exact(cursor, text)
        hits = list(exact)
        if len(hits) < limit and not _is_identifier(text):
            known = {hit.track.id for hit in hits}
            hits += [hit for hit in _similar(cursor, text, limit) if hit.track.id not in known]
    return tuple(hits[:limit])


def _is_identifier(text: str) -> bool:
    return bool(identity.normalize_isrc(text) or identity.normalize_spotify_id(text))


def _exact(cursor: Any, text: str) -> list[SearchHit]:
    for kind, value in (
        ("isrc", identity.normalize_isrc(text)),
        ("spotify_id", identity.normalize_spotify_id(text)),
    ):
        if value:
            found = _where(cursor, f"t.{kind} = %s", value)
            if found:
                return [SearchHit(ref, kind, 1.0, sets) for ref, sets in found]
    parts = split_query(text)
    if parts:
        key = identity.title_key(*parts)
        return [
            SearchHit(ref, "title_key", 1.0, sets)
            for ref, sets in _where(cursor, "t.title_key = %s", key)
        ]
    return []


def _where(cursor: Any, condition: str, value: str) -> list[tuple[Any, int]]:
    cursor.execute(f"SELECT {TRACK_REF_COLUMNS} FROM tracks t WHERE {condition}", (value,))
    refs = [track_ref(row) for row in cursor.fetchall()]
    plays = track_plays(cursor, [ref.id for ref in refs])
    ranked = sorted(refs, key=lambda ref: -(plays[ref.id].sets if ref.id in plays else 0))
    return [(ref, plays[ref.id].sets if ref.id in plays else 0) for ref in ranked]


def _similar(cursor: Any, text: str, limit: int) -> list[SearchHit]:
    cursor.execute(
        "SELECT set_config('pg_trgm.word_similarity_threshold', %s, true)",
        (str(WORD_SIMILARITY_THRESHOLD),),
    )
    # Word similarity finds the query inside a longer spelling; whole-string similarity prefers
    # the spelling closest to the query among those ("Glue" before "Glue (Extended Mix)").
    cursor.execute(
        f"""
        SELECT l.track_id::text,
               max(word_similarity(%(q)s, {SEARCH_DOCUMENT}) * 0.7
                   + similarity(%(q)s, {SEARCH_DOCUMENT}) * 0.3) AS score
        FROM track_lookup l
        WHERE %(q)s <%% {SEARCH_DOCUMENT}
        GROUP BY l.track_id
        ORDER BY score DESC, l.track_id
        LIMIT %(cap)s
        """,
        {"q": text, "cap": CANDIDATES},
    )
    scored = dict(cursor.fetchall())
    best = sorted(scored, key=lambda track: -scored[track])[: max(limit * 2, 20)]
    plays = track_plays(cursor, best)
    refs = load_refs(cursor, best)
    hits = [
        SearchHit(
            refs[track], "text", round(scored[track], 3), plays[track].sets if track in plays else 0
        )
        for track in best
        if track in refs
    ]
    hits.sort(key=lambda hit: (-hit.score, -hit.sets, hit.track.artist, hit.track.title))
    return hits[:limit]
