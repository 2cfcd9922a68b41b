"""The enrichment service: a small HTTP server in front of the backfill.

* ``POST /enrich/batch`` with ``{"force_refresh": false, "max_tracks": 10}`` (both optional; an
  empty body means the defaults) runs one batch and answers its counts. A second batch while
  one runs gets 409.
* ``GET /health``: the database and each source's circuit.
* ``GET /metrics``: every Prometheus metric of the process.

The request body is untrusted: bounded in size, JSON only, known fields only, typed and ranged,
and anything else is a 400 that says what was wrong. Binds 127.0.0.1 unless told otherwise.
"""

from __future__ import annotations

import json
import logging
import threading
from contextlib import closing
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import psycopg2
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from scrapers.db.connection import connect
from scrapers.enrichment.backfill import Backfill, BatchRunningError

logger = logging.getLogger(__name__)

DEFAULT_MAX_TRACKS = 100
MAX_TRACKS_LIMIT = 10_000
MAX_BODY_BYTES = 16 * 1024
BATCH_FIELDS = {"force_refresh": bool, "max_tracks": int}


class BadRequestError(ValueError):
    """The client's request cannot be run; the message tells it why."""


def parse_batch_request(body: bytes) -> tuple[bool, int]:
    """``(force_refresh, max_tracks)`` from a request body, or ``BadRequestError``."""
    if not body.strip():
        return False, DEFAULT_MAX_TRACKS
    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise BadRequestError(f"body is not valid JSON: {error}") from error
    if not isinstance(payload, dict):
        raise BadRequestError("body must be a JSON object")
    unknown = sorted(set(payload) - set(BATCH_FIELDS))
    if unknown:
        raise BadRequestError(
            f"unknown field(s): {', '.join(unknown)[:200]}; allowed: force_refresh, max_tracks"
        )
    for name, kind in BATCH_FIELDS.items():
        value = payload.get(name)
        # bool is an int in Python; JSON true is not a track count.
        if name in payload and (not isinstance(value, kind) or (kind is int and value is True)):
            raise BadRequestError(
                f"{name} must be a JSON {'boolean' if kind is bool else 'integer'}"
            )
    force_refresh = payload.get("force_refresh", False)
    max_tracks = payload.get("max_tracks", DEFAULT_MAX_TRACKS)
    if isinstance(max_tracks, bool) or not 1 <= max_tracks <= MAX_TRACKS_LIMIT:
        raise BadRequestError(f"max_tracks must be between 1 and {MAX_TRACKS_LIMIT}")
    return force_refresh, max_tracks


class EnrichmentService(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], backfill: Backfill) -> None:
        self.backfill = backfill
        self.batch_lock = threading.Lock()
        super().__init__(address, _Handler)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"

    def health(self) -> tuple[int, dict[str, Any]]:
        sources = {c.name: c.breaker.state for c in self.backfill.enricher.clients}
        try:
            url = self.backfill.database_url
            with closing(connect(url, autocommit=True)) as connection, connection.cursor() as cur:
                cur.execute("SELECT 1")
            database = "ok"
        except psycopg2.Error as error:
            database = f"unavailable: {str(error).strip()[:200]}"
        status = HTTPStatus.OK if database == "ok" else HTTPStatus.SERVICE_UNAVAILABLE
        return status, {
            "status": "ok" if status == HTTPStatus.OK else "degraded",
            "database": database,
            "batch_running": self.batch_lock.locked(),
            "sources": sources,
        }

    def run_batch(self, body: bytes) -> tuple[int, dict[str, Any]]:
        try:
            force_refresh, max_tracks = parse_batch_request(body)
        except BadRequestError as error:
            return HTTPStatus.BAD_REQUEST, {"error": str(error)}
        if not self.batch_lock.acquire(blocking=False):
            return HTTPStatus.CONFLICT, {"error": "an enrichment batch is already running"}
        try:
            counts = self.backfill.run(max_tracks=max_tracks, force_refresh=force_refresh)
        except BatchRunningError as error:
            return HTTPStatus.CONFLICT, {"error": str(error)}
        except psycopg2.Error as error:
            logger.error("Enrichment batch failed: %s", error)
            return HTTPStatus.SERVICE_UNAVAILABLE, {"error": "database unavailable"}
        finally:
            self.batch_lock.release()
        return HTTPStatus.OK, {
            "force_refresh": force_refresh,
            "max_tracks": max_tracks,
            **counts.as_dict(),
        }


class _Handler(BaseHTTPRequestHandler):
    server: EnrichmentService
    server_version = "tracklists-enrichment/0.1"

    def do_GET(self) -> None:
        if self.path == "/health":
            self._json(*self.server.health())
        elif self.path == "/metrics":
            self._send(HTTPStatus.OK, CONTENT_TYPE_LATEST, generate_latest(REGISTRY))
        elif self.path == "/enrich/batch":
            self._json(HTTPStatus.METHOD_NOT_ALLOWED, {"error": "use POST"}, allow="POST")
        else:
            self._json(HTTPStatus.NOT_FOUND, {"error": f"no such endpoint: {self.path[:100]}"})

    def do_POST(self) -> None:
        if self.path != "/enrich/batch":
            if self.path in ("/health", "/metrics"):
                self._json(HTTPStatus.METHOD_NOT_ALLOWED, {"error": "use GET"}, allow="GET")
            else:
                self._json(HTTPStatus.NOT_FOUND, {"error": f"no such endpoint: {self.path[:100]}"})
            return
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if not 0 <= length <= MAX_BODY_BYTES:
            self.close_connection = True
            self._json(
                HTTPStatus.BAD_REQUEST, {"error": f"body must be at most {MAX_BODY_BYTES} bytes"}
            )
            return
        body = self.rfile.read(length) if length else b""
        content_type = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if body.strip() and content_type != "application/json":
            self._json(
                HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
                {"error": "send the body as Content-Type: application/json"},
            )
            return
        self._json(*self.server.run_batch(body))

    def log_message(self, format: str, *args: Any) -> None:
        logger.info("%s %s", self.address_string(), format % args)

    def _json(self, status: int, payload: dict[str, Any], *, allow: str | None = None) -> None:
        body = json.dumps(payload).encode() + b"\n"
        self._send(status, "application/json", body, allow=allow)

    def _send(
        self, status: int, content_type: str, body: bytes, *, allow: str | None = None
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        if allow:
            self.send_header("Allow", allow)
        self.end_headers()
        self.wfile.write(body)
