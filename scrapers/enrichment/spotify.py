"""Spotify Web API, optional: used only when SPOTIFY_CLIENT_ID and SPOTIFY_CLIENT_SECRET are set.

A client-credentials token is fetched from the accounts service, reused until shortly before it
expires, and fetched again at once when the API answers 401. Search ``limit`` is at most 10.
Neither the secret nor the token is ever logged or cached.
"""

from __future__ import annotations

import base64
import threading
import time
import urllib.parse
from typing import Any

from scrapers.enrichment.client import SourceClient, SourceRequestError
from scrapers.enrichment.matching import (
    Candidate,
    build_candidate,
    text,
    valid_date,
    valid_duration_ms,
)
from scrapers.identity import normalize_spotify_id, search_artists, search_title

SEARCH_LIMIT = 10  # Spotify's maximum since 2026
# Renew this many seconds before the stated expiry, so a token never dies mid-request.
TOKEN_MARGIN = 30.0


class SpotifyClient(SourceClient):
    name = "spotify"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not self.config.spotify_enabled:
            raise ValueError("Spotify needs SPOTIFY_CLIENT_ID and SPOTIFY_CLIENT_SECRET")
        self._token_lock = threading.Lock()
        self._token: str | None = None
        self._token_expires = 0.0
        self.tokens_fetched = 0

    def auth_headers(self, *, renew: bool = False) -> dict[str, str]:
        with self._token_lock:
            if renew or self._token is None or time.monotonic() >= self._token_expires:
                self._fetch_token()
            return {"Authorization": f"Bearer {self._token}"}

    def lookup_isrc(self, isrc: str, *, refresh: bool = False) -> list[Candidate]:
        found = self._search(f"isrc:{isrc}", refresh)
        return [candidate for candidate in found if candidate.values.get("isrc") == isrc]

    def search(self, artist: str, title: str, *, refresh: bool = False) -> list[Candidate]:
        main_artist = search_artists(artist)[0]
        query = f"track:{_quoted(search_title(title))} artist:{_quoted(main_artist)}"
        return self._search(query, refresh)

    def _search(self, query: str, refresh: bool) -> list[Candidate]:
        answer = self.get_json(
            "/v1/search",
            {"q": query, "type": "track", "limit": str(SEARCH_LIMIT)},
            refresh=refresh,
        )
        tracks = answer.body.get("tracks") if isinstance(answer.body, dict) else None
        items = tracks.get("items") if answer.found and isinstance(tracks, dict) else None
        if not isinstance(items, list):
            return []
        found = (_candidate(item) for item in items[:SEARCH_LIMIT])
        return [candidate for candidate in found if candidate]

    def _fetch_token(self) -> None:
        credentials = f"{self.config.spotify_client_id}:{self.config.spotify_client_secret}"
        response = self.send(
            "POST",
            f"{self.config.spotify_accounts_url}/api/token",
            headers={
                "Authorization": "Basic " + base64.b64encode(credentials.encode()).decode(),
                "Content-Type": "application/x-www-form-urlencoded",
            },
            data=urllib.parse.urlencode({"grant_type": "client_credentials"}).encode(),
        )
        body = response.body if isinstance(response.body, dict) else {}
        token, lifetime = body.get("access_token"), body.get("expires_in")
        if response.status != 200 or not isinstance(token, str) or not token:
            # The accounts service names the problem ("invalid_client"); echo only that.
            reason = text(body.get("error"), 60) or "no token in the answer"
            raise SourceRequestError(
                f"Spotify token request refused (HTTP {response.status}: {reason})"
            )
        lifetime = float(lifetime) if isinstance(lifetime, int | float) else 3600.0
        self._token = token
        self._token_expires = time.monotonic() + max(0.0, lifetime - TOKEN_MARGIN)
        self.tokens_fetched += 1


def _quoted(value: str) -> str:
    return '"' + value.replace('"', " ") + '"'


def _candidate(item: Any) -> Candidate | None:
    if not isinstance(item, dict):
        return None
    spotify_id = normalize_spotify_id(item.get("id"))
    if spotify_id is None:
        return None
    external = item.get("external_ids") if isinstance(item.get("external_ids"), dict) else {}
    album = item.get("album") if isinstance(item.get("album"), dict) else {}
    artists = item.get("artists") if isinstance(item.get("artists"), list) else []
    names = [text(a.get("name"), 200) for a in artists[:20] if isinstance(a, dict)]
    return build_candidate(
        "spotify",
        spotify_id,
        item.get("name"),
        ", ".join(name for name in names if name),
        [external.get("isrc")],
        spotify_id=spotify_id,
        duration_ms=valid_duration_ms(item.get("duration_ms")),
        release_date=valid_date(album.get("release_date")),
    )
