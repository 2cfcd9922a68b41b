"""Local stand-ins for MusicBrainz, Deezer and Spotify, bound to 127.0.0.1.

They answer in each service's documented JSON shapes, errors included, and behave like the real
ones where it matters to a client: MusicBrainz answers 503 to requests faster than its rate,
Deezer answers its quota error with HTTP 200, Spotify answers 401 to an expired token. Tests can
also script the next answers (``script``). Every request is logged with its arrival time, so a
test can prove what the client sent and when.
"""

from __future__ import annotations

import base64
import json
import re
import threading
import time
import urllib.parse
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self

from scrapers.identity import fold_text
from tests.serving import serve_in_background

# The services' own error bodies.
MB_THROTTLED = {
    "error": "Your requests are exceeding the allowable rate limit. Please see "
    "https://wiki.musicbrainz.org/XMLWebService for more information."
}
DEEZER_QUOTA = {"error": {"type": "Exception", "message": "Quota limit exceeded", "code": 4}}
DEEZER_NO_DATA = {"error": {"type": "DataException", "message": "no data", "code": 800}}
SPOTIFY_EXPIRED = {"error": {"status": 401, "message": "The access token expired"}}


@dataclass
class Recording:
    """One recording as all three fakes know it."""

    artist: str
    title: str
    isrc: str | None
    duration_ms: int
    mbid: str
    deezer_id: int
    spotify_id: str
    bpm: float = 0
    release_date: str = "2020-01-31"
    # ISRCs MusicBrainz lists besides ``isrc`` (e.g. a TuneCore code filed by mistake).
    other_isrcs: list[str] = field(default_factory=list)


@dataclass
class Logged:
    at: float
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]


@dataclass
class Scripted:
    status: int
    body: Any
    headers: dict[str, str]
    path_contains: str


Reply = tuple[int, dict[str, str], Any]


class FakeSource:
    """A threaded HTTP server; subclasses implement ``route``."""

    def __init__(self, catalogue: list[Recording]) -> None:
        self.catalogue = catalogue
        # Seconds each answer takes, like a real service across the internet.
        self.latency = 0.0
        self.requests: list[Logged] = []
        self._scripted: deque[Scripted] = deque()
        self._lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                fake._serve(self, "GET")

            def do_POST(self) -> None:
                fake._serve(self, "POST")

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet: the request log is ``fake.requests``."""

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> Self:
        serve_in_background(self._server)
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def script(
        self,
        status: int,
        body: Any,
        *,
        headers: dict[str, str] | None = None,
        times: int = 1,
        path_contains: str = "",
    ) -> None:
        """The next ``times`` requests whose path contains ``path_contains`` get this answer."""
        for _ in range(times):
            self._scripted.append(Scripted(status, body, headers or {}, path_contains))

    def api_requests(self) -> list[Logged]:
        """Requests to the data API (not to a token endpoint)."""
        return [r for r in self.requests if r.method == "GET"]

    def route(
        self, method: str, path: str, query: dict[str, str], headers: Any, body: bytes
    ) -> Reply:
        raise NotImplementedError

    def _serve(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        parsed = urllib.parse.urlsplit(handler.path)
        path = urllib.parse.unquote(parsed.path)
        query = dict(urllib.parse.parse_qsl(parsed.query))
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        with self._lock:
            self.requests.append(
                Logged(time.monotonic(), method, path, query, dict(handler.headers.items()))
            )
            scripted = next((s for s in self._scripted if s.path_contains in path), None)
            if scripted is not None:
                self._scripted.remove(scripted)
        if self.latency:
            time.sleep(self.latency)
        if scripted is not None:
            status, headers, payload = scripted.status, scripted.headers, scripted.body
        else:
            status, headers, payload = self.route(method, path, query, handler.headers, body)
        data = json.dumps(payload).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(data)))
        for name, value in headers.items():
            handler.send_header(name, value)
        handler.end_headers()
        handler.wfile.write(data)

    @staticmethod
    def _matching_all(recording: Recording, artists: list[str]) -> bool:
        """Every searched artist name is in the recording's credit (Lucene's AND)."""
        return all(fold_text(artist) in fold_text(recording.artist) for artist in artists)

    def _matching(self, artist: str, title: str) -> list[Recording]:
        """Recordings whose folded title and artist contain the query's (a crude search)."""
        artist, title = fold_text(artist), fold_text(title)
        return [
            r
            for r in self.catalogue
            if title in fold_text(r.title) and artist in fold_text(r.artist)
        ]


class FakeMusicBrainz(FakeSource):
    """``/ws/2/isrc/{isrc}`` and ``/ws/2/recording?query=``; 503 when called too fast."""

    def __init__(self, catalogue: list[Recording], *, rate: float | None = None) -> None:
        super().__init__(catalogue)
        # A token bucket holding three requests: arrival jitter between a client's evenly spaced
        # sends is forgiven (on a busy machine one interval of 50 ms was not: a request arrived
        # late, the next on time), a client sending faster than ``rate`` is refused within a
        # second.
        self.rate = rate
        self._tokens = self.BURST
        self._refilled = time.monotonic()
        self.throttled = 0

    BURST = 3.0

    def _take_token(self) -> bool:
        if not self.rate:
            return True
        now = time.monotonic()
        self._tokens = min(self.BURST, self._tokens + (now - self._refilled) * self.rate)
        self._refilled = now
        if self._tokens < 1:
            return False
        self._tokens -= 1
        return True

    def route(
        self, method: str, path: str, query: dict[str, str], headers: Any, body: bytes
    ) -> Reply:
        with self._lock:
            too_fast = not self._take_token()
            self.throttled += too_fast
        if too_fast:
            return 503, {"Retry-After": "1"}, MB_THROTTLED
        if "(" not in headers.get("User-Agent", ""):  # no contact details
            return 403, {}, {"error": "a User-Agent with contact details is required"}
        isrc_path = re.fullmatch(r"/ws/2/isrc/([^/]+)", path)
        if isrc_path:
            found = [r for r in self.catalogue if r.isrc == isrc_path.group(1)]
            if not found:
                return 404, {}, {"error": "Not Found", "help": "For usage, please see: ..."}
            return 200, {}, {"isrc": isrc_path.group(1), "recordings": [_mb(r) for r in found]}
        if path == "/ws/2/recording":
            terms = re.findall(r'(recording|artist):"((?:[^"\\]|\\.)*)"', query["query"])
            title = next((value for field, value in terms if field == "recording"), "")
            artists = [value for field, value in terms if field == "artist"] or [""]
            found = [r for r in self._matching("", title) if self._matching_all(r, artists)]
            recordings = [{**_mb(r), "score": 100 - i} for i, r in enumerate(found)]
            return (
                200,
                {},
                {
                    "created": "2026-01-01T00:00:00Z",
                    "count": len(found),
                    "offset": 0,
                    "recordings": recordings,
                },
            )
        return 400, {}, {"error": "Invalid resource"}


def _mb(r: Recording) -> dict[str, Any]:
    return {
        "id": r.mbid,
        "title": r.title,
        "length": r.duration_ms,
        "first-release-date": r.release_date,
        "video": False,
        "artist-credit": [
            {"name": r.artist, "joinphrase": "", "artist": {"id": r.mbid, "name": r.artist}}
        ],
        "isrcs": ([r.isrc] if r.isrc else []) + r.other_isrcs,
    }


class FakeDeezer(FakeSource):
    """``/track/isrc:X``, ``/track/ID``, ``/search?q=``; errors as HTTP 200 + ``error`` body."""

    def __init__(
        self, catalogue: list[Recording], *, quota: int | None = None, window: float = 5.0
    ) -> None:
        super().__init__(catalogue)
        self.quota, self.window = quota, window
        self._recent: deque[float] = deque()
        self.quota_errors = 0

    def route(
        self, method: str, path: str, query: dict[str, str], headers: Any, body: bytes
    ) -> Reply:
        if self._over_quota():
            return 200, {}, DEEZER_QUOTA
        by_isrc = re.fullmatch(r"/track/isrc:(.+)", path)
        by_id = re.fullmatch(r"/track/(\d+)", path)
        if by_isrc or by_id:
            found = [
                r
                for r in self.catalogue
                if (by_isrc and r.isrc == by_isrc.group(1))
                or (by_id and r.deezer_id == int(by_id.group(1)))
            ]
            return 200, {}, _deezer(found[0]) if found else DEEZER_NO_DATA
        if path == "/search":
            terms = dict(re.findall(r'(artist|track):"([^"]*)"', query.get("q", "")))
            found = self._matching(terms.get("artist", ""), terms.get("track", ""))
            data = [
                {k: v for k, v in _deezer(r).items() if k not in ("isrc", "bpm", "release_date")}
                for r in found
            ]
            return 200, {}, {"data": data, "total": len(data)}
        return 200, {}, DEEZER_NO_DATA

    def _over_quota(self) -> bool:
        if self.quota is None:
            return False
        now = time.monotonic()
        with self._lock:
            while self._recent and now - self._recent[0] > self.window:
                self._recent.popleft()
            if len(self._recent) >= self.quota:
                self.quota_errors += 1
                return True
            self._recent.append(now)
        return False


def _deezer(r: Recording) -> dict[str, Any]:
    return {
        "id": r.deezer_id,
        "readable": True,
        "title": r.title,
        "isrc": r.isrc or "",
        "link": f"https://www.deezer.com/track/{r.deezer_id}",
        "duration": r.duration_ms // 1000,
        "rank": 100000,
        "release_date": r.release_date,
        "bpm": r.bpm,
        "artist": {"id": r.deezer_id + 1, "name": r.artist, "type": "artist"},
        "type": "track",
    }


class FakeSpotify(FakeSource):
    """Accounts ``/api/token`` (client credentials) and API ``/v1/search`` on one server."""

    def __init__(
        self,
        catalogue: list[Recording],
        *,
        client_id: str = "fake-client",
        client_secret: str = "fake-secret-do-not-log",
        expires_in: int = 3600,
    ) -> None:
        super().__init__(catalogue)
        self.credentials = f"{client_id}:{client_secret}"
        self.expires_in = expires_in
        self.valid_tokens: set[str] = set()
        self.tokens_issued = 0

    def expire_tokens(self) -> None:
        with self._lock:
            self.valid_tokens.clear()

    def route(
        self, method: str, path: str, query: dict[str, str], headers: Any, body: bytes
    ) -> Reply:
        if method == "POST" and path == "/api/token":
            expected = "Basic " + base64.b64encode(self.credentials.encode()).decode()
            form = dict(urllib.parse.parse_qsl(body.decode()))
            if headers.get("Authorization") != expected:
                return 400, {}, {"error": "invalid_client", "error_description": "Invalid client"}
            if form.get("grant_type") != "client_credentials":
                return 400, {}, {"error": "unsupported_grant_type"}
            with self._lock:
                self.tokens_issued += 1
                token = f"token-{self.tokens_issued}"
                self.valid_tokens.add(token)
            return (
                200,
                {},
                {"access_token": token, "token_type": "Bearer", "expires_in": self.expires_in},
            )
        if path != "/v1/search":
            return 404, {}, {"error": {"status": 404, "message": "Service not found"}}
        token = headers.get("Authorization", "").removeprefix("Bearer ")
        if token not in self.valid_tokens:
            return 401, {}, SPOTIFY_EXPIRED
        if int(query.get("limit", "20")) > 10:
            return 400, {}, {"error": {"status": 400, "message": "Invalid limit"}}
        q = query.get("q", "")
        if q.startswith("isrc:"):
            found = [r for r in self.catalogue if r.isrc == q.removeprefix("isrc:")]
        else:
            terms = dict(re.findall(r'(track|artist):"([^"]*)"', q))
            found = self._matching(terms.get("artist", ""), terms.get("track", ""))
        items = [
            {
                "id": r.spotify_id,
                "name": r.title,
                "duration_ms": r.duration_ms,
                "artists": [{"name": r.artist}],
                "external_ids": {"isrc": r.isrc} if r.isrc else {},
                "album": {"release_date": r.release_date, "release_date_precision": "day"},
                "type": "track",
            }
            for r in found
        ]
        return 200, {}, {"tracks": {"items": items, "total": len(items), "limit": 10, "offset": 0}}


class RecordedAnswers(FakeSource):
    """MusicBrainz and Deezer on one server, replaying one labelled case's recorded answers.

    A case (``tests/fixtures/enrichment/*.json``) holds what each source answered for one track:
    MusicBrainz's recording search and ISRC lookups, Deezer's search, ISRC and track lookups. Any
    search query gets the case's search answer, as the real service answered the query the
    recorder sent; what the case does not hold is "not found" in each service's own shape. Point
    both sources' base URLs at ``url`` and set ``case`` before each lookup.
    """

    def __init__(self) -> None:
        super().__init__([])
        self.case: dict[str, Any] = {}

    def route(
        self, method: str, path: str, query: dict[str, str], headers: Any, body: bytes
    ) -> Reply:
        musicbrainz, deezer = self.case.get("musicbrainz", {}), self.case.get("deezer", {})
        if path == "/ws/2/recording":
            empty = {"created": "2026-01-01T00:00:00Z", "count": 0, "offset": 0, "recordings": []}
            return 200, {}, musicbrainz.get("search") or empty
        isrc_path = re.fullmatch(r"/ws/2/isrc/([^/]+)", path)
        if isrc_path:
            found = musicbrainz.get("isrc", {}).get(isrc_path.group(1))
            return (200, {}, found) if found else (404, {}, {"error": "Not Found"})
        if path == "/search":
            return 200, {}, deezer.get("search") or {"data": [], "total": 0}
        by_isrc = re.fullmatch(r"/track/isrc:(.+)", path)
        by_id = re.fullmatch(r"/track/(\d+)", path)
        found = None
        if by_isrc:
            found = deezer.get("isrc", {}).get(by_isrc.group(1))
        elif by_id:
            found = deezer.get("track", {}).get(by_id.group(1))
        return 200, {}, found or DEEZER_NO_DATA
