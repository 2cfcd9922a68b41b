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
# Spellings ranked by similarity (a query of common words matches more: any of them are taken).
CANDIDATES = 500
SEARCH_DOCUMENT = "(l.raw_artist || ' ' || l.raw_title)"
# The same text as words (migration 011 indexes this expression).
WORDS_DOCUMENT = f"to_tsvector('simple', {SEARCH_DOCUMENT})"
MAX_QUERY_WORDS = 8


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
    """Spellings that hold the query's words, else the most similar ones, ranked by similarity.

    Whole words first (the full-text index, migration 011): every word of the query as a word
    prefix, then, if that finds too little, every word but one (one typo, or one word the
    spelling lacks). Only when neither finds anything does the trigram index, whose cost grows
    with the query's length, look for spellings like the query.
    """
    cursor.execute(
        "SELECT coalesce(array_agg(lexeme ORDER BY positions[1]), '{}') "
        "FROM unnest(to_tsvector('simple', %s))",
        (text,),
    )
    words = cursor.fetchone()[0][:MAX_QUERY_WORDS]
    scored: dict[str, float] = {}
    for query in _word_queries(words):
        scored |= _scored(
            cursor, text, f"{WORDS_DOCUMENT} @@ to_tsquery('simple', %(match)s)", query
        )
        if len(scored) >= limit:
            break
    if not scored:
        cursor.execute(
            "SELECT set_config('pg_trgm.word_similarity_threshold', %s, true)",
            (str(WORD_SIMILARITY_THRESHOLD),),
        )
        scored = _scored(cursor, text, f"%(q)s <%% {SEARCH_DOCUMENT}", None)
    best = sorted(scored, key=lambda track: (-scored[track], track))[: max(limit * 2, 20)]
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


def _word_queries(words: list[str]) -> list[str]:
    """tsquery texts: all words as prefixes; then all but one of them, any one (2+ words)."""
    prefixes = ["'" + word.replace("\\", "\\\\").replace("'", "''") + "':*" for word in words]
    if not prefixes:
        return []
    queries = [" & ".join(prefixes)]
    if len(prefixes) > 1:
        queries.append(
            " | ".join(
                "(" + " & ".join(prefixes[:i] + prefixes[i + 1 :]) + ")"
                for i in range(len(prefixes))
            )
        )
    return queries


def _scored(cursor: Any, text: str, condition: str, match: str | None) -> dict[str, float]:
    """Tracks with a spelling meeting ``condition`` (at most ``CANDIDATES`` spellings), each
    scored by its best spelling's similarity to ``text``."""
    # Word similarity finds the query inside a longer spelling; whole-string similarity prefers
    # the spelling closest to the query among those ("Glue" before "Glue (Extended Mix)").
    cursor.execute(
        f"""
        SELECT l.track_id::text,
               max(word_similarity(%(q)s, {SEARCH_DOCUMENT}) * 0.7
                   + similarity(%(q)s, {SEARCH_DOCUMENT}) * 0.3)
        FROM (SELECT * FROM track_lookup l WHERE {condition} LIMIT %(cap)s) l
        GROUP BY l.track_id
        """,
        {"q": text, "match": match, "cap": CANDIDATES},
    )
    return dict(cursor.fetchall())
