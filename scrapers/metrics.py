"""Every Prometheus metric of the project, defined once.

Components import the metric objects from here; nothing else calls ``Counter(...)``. All live in
the default registry, which the crawl serves at ``/metrics`` and batch runs can push to a
Pushgateway.
"""

from prometheus_client import Counter

# Track items stored, by the strongest identifier they carried (the conflict target used).
# Names are fixed: dashboards and the testing plan refer to them.
TRACKS_UPSERT_ISRC = Counter("tracks_upsert_isrc", "Track items stored via ISRC match or insert")
TRACKS_UPSERT_SPOTIFY = Counter(
    "tracks_upsert_spotify", "Track items stored via Spotify ID (no ISRC on the item)"
)
TRACKS_UPSERT_TITLE = Counter(
    "tracks_upsert_title", "Track items stored via normalised artist + title (no identifier)"
)
