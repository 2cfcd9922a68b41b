"""Reading the catalogue: the one query module the CLI (``tracklists-explore``) and the web
explorer share. Every SQL statement on the catalogue's tables for them is here; functions take a
psycopg2 connection (``read_only`` gives one) and return frozen dataclasses (``results``), which
``as_json`` turns into JSON-ready values. Every list is bounded.

* ``search_tracks``: by ISRC, Spotify ID, exact "ARTIST - TITLE", or typo-tolerant text;
* ``track_detail`` / ``neighbourhood``: what DJs play after, before and with a track;
  ``plays_of``: the plays of many tracks at once (a graph's node sizes);
* ``dj_detail`` / ``find_djs``: a DJ's sets, top tracks and transitions;
* ``top_tracks`` / ``top_transitions``: over all setlists or a ``SetScope``;
* ``setlist``: one setlist as the site shows it;
* ``build_path``: the set builder (``MixRules``: BPM window, Camelot keys).
"""

from scrapers.db.explore.compatibility import CamelotKey, MixRules, camelot, harmonic
from scrapers.db.explore.djs import dj_detail, find_djs
from scrapers.db.explore.paths import DEFAULT_MAX_STEPS, MAX_STEPS, build_path
from scrapers.db.explore.results import (
    Credit,
    DjCount,
    DjDetail,
    Neighbour,
    Neighbourhood,
    Path,
    PathStep,
    Plays,
    SearchHit,
    Setlist,
    SetlistRow,
    SetlistSummary,
    TrackCount,
    TrackDetail,
    TrackRef,
    Transition,
    as_json,
)
from scrapers.db.explore.search import SearchQueryError, search_tracks, split_query
from scrapers.db.explore.session import read_only
from scrapers.db.explore.setlists import SetScope, setlist
from scrapers.db.explore.top import top_tracks, top_transitions
from scrapers.db.explore.tracks import (
    DEFAULT_LIMIT,
    MAX_LIMIT,
    neighbourhood,
    plays_of,
    track_by_id,
    track_detail,
)

__all__ = [
    "DEFAULT_LIMIT",
    "DEFAULT_MAX_STEPS",
    "MAX_LIMIT",
    "MAX_STEPS",
    "CamelotKey",
    "Credit",
    "DjCount",
    "DjDetail",
    "MixRules",
    "Neighbour",
    "Neighbourhood",
    "Path",
    "PathStep",
    "Plays",
    "SearchHit",
    "SearchQueryError",
    "SetScope",
    "Setlist",
    "SetlistRow",
    "SetlistSummary",
    "TrackCount",
    "TrackDetail",
    "TrackRef",
    "Transition",
    "as_json",
    "build_path",
    "camelot",
    "dj_detail",
    "find_djs",
    "harmonic",
    "neighbourhood",
    "plays_of",
    "read_only",
    "search_tracks",
    "setlist",
    "split_query",
    "top_tracks",
    "top_transitions",
    "track_by_id",
    "track_detail",
]
