"""The enrichment service: a small HTTP server in front of the backfill.

* ``POST /enrich/batch`` with ``{"force_refresh": false, "max_tracks": 10}`` (both optional; an
  empty body means the defaults) runs one batch and answers its counts. A second batch in the
  same process while one runs gets 409; other service processes run theirs at the same time,
  on tracks of their own (see ``backfill``).
* ``GET /health``: the database and each source's circuit.
* ``GET /metrics``: every Prometheus metric of the process, and the catalogue's size.
* ``start_schedule``: a batch on its own every so many seconds, besides the ones asked for.

The request is untrusted. Its body is bounded in size (a ``Content-Length`` is required; chunked
bodies get 411), JSON only, nested at most ``MAX_JSON_DEPTH`` deep, known fields only, typed and
ranged; anything else is a 400 that says what was wrong. A client has
``ENRICHMENT_SERVICE_REQUEST_TIMEOUT`` seconds to send its whole request, and at most
``ENRICHMENT_SERVICE_MAX_CONNECTIONS`` connections are served at once (one thread each): more
get 503 at once. Every error is JSON. Binds 127.0.0.1 unless told otherwise.
"""

from __future__ import annotations

import io
import json
import logging
import socket
import threading
import time
from contextlib import closing, suppress
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import psycopg2
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from scrapers import metrics
from scrapers.db.connection import connect
from scrapers.enrichment.backfill import Backfill, BatchCounts
from scrapers.statuses import EnrichmentStatus

logger = logging.getLogger(__name__)

DEFAULT_MAX_TRACKS = 100
MAX_TRACKS_LIMIT = 10_000
MAX_BODY_BYTES = 16 * 1024
# The request is one flat object; anything nested deeper is not one (and deep enough nesting
# exhausts the JSON parser's recursion).
MAX_JSON_DEPTH = 8
BATCH_FIELDS = {"force_refresh": bool, "max_tracks": int}
# The method each path answers; other methods get 405 with this in ``Allow``.
ALLOWED_METHODS = {"/enrich/batch": "POST", "/health": "GET", "/metrics": "GET"}
# Closing a connection, read at most this much / this long of what the client still sends.
LINGER_BYTES = 256 * 1024
LINGER_SECONDS = 0.5
# Counting the catalogue may scan the tracks table; a scrape never waits longer than this.
CATALOGUE_STATEMENT_TIMEOUT_MS = 5000


class BadRequestError(ValueError):
    """The client's request cannot be run; the message tells it why."""


def json_depth(body: bytes) -> int:
    """How deep arrays and objects nest in ``body``, brackets inside strings not counted."""
    depth = deepest = 0
    in_string = escaped = False
    for byte in body:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # quote
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in b"[{":
            depth += 1
            deepest = max(deepest, depth)
        elif byte in b"]}":
            depth -= 1
    return deepest


def parse_batch_request(body: bytes) -> tuple[bool, int]:
    """``(force_refresh, max_tracks)`` from a request body, or ``BadRequestError``."""
    if not body.strip():
        return False, DEFAULT_MAX_TRACKS
    if json_depth(body) > MAX_JSON_DEPTH:
        raise BadRequestError(f"body is nested more than {MAX_JSON_DEPTH} levels deep")
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


def catalogue_counts(database_url: str) -> dict[str, int]:
    """The ``metrics.CATALOGUE_GAUGES``: one scan of ``tracks`` and a count of ``setlists``."""
    with closing(connect(database_url)) as connection, connection.cursor() as cursor:
        cursor.execute("SET LOCAL statement_timeout = %s", (CATALOGUE_STATEMENT_TIMEOUT_MS,))
        cursor.execute(
            "SELECT count(*), count(isrc), count(spotify_id),"
            " count(*) FILTER (WHERE isrc IS NULL AND enrichment_status = %s),"
            " (SELECT count(*) FROM setlists)"
            " FROM tracks",
            (EnrichmentStatus.PENDING,),
        )
        row = cursor.fetchone()
        connection.rollback()
    return dict(zip(metrics.CATALOGUE_GAUGES, row, strict=True))


class EnrichmentService(ThreadingHTTPServer):
    daemon_threads = True
    # Connections the kernel queues before accept: a burst is accepted (and refused with 503
    # if need be) instead of waiting out SYN retries.
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], backfill: Backfill) -> None:
        config = backfill.config
        self.backfill = backfill
        self.batch_lock = threading.Lock()
        self.request_timeout = config.service_request_timeout
        self._connection_slots = threading.BoundedSemaphore(config.service_max_connections)
        self._stopping = threading.Event()
        super().__init__(address, _Handler)
        metrics.CATALOGUE.watch(
            lambda: catalogue_counts(backfill.database_url),
            config.catalogue_metrics_ttl,
            (psycopg2.Error,),
        )

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"

    def process_request(self, request: Any, client_address: Any) -> None:
        """A thread per connection while a slot is free; otherwise a 503 at once."""
        if not self._connection_slots.acquire(blocking=False):
            _refuse(request)
            self.close_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._connection_slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._connection_slots.release()

    def shutdown_request(self, request: Any) -> None:
        """Close after reading what the client still sends (briefly, boundedly).

        A refused request leaves its body unread; closing on unread data resets the connection,
        and the client can lose the answer it was sent.
        """
        with suppress(OSError):
            request.shutdown(socket.SHUT_WR)
            request.settimeout(LINGER_SECONDS)
            drained = 0
            while drained < LINGER_BYTES and (chunk := request.recv(65536)):
                drained += len(chunk)
        self.close_request(request)

    def server_close(self) -> None:
        self._stopping.set()
        super().server_close()

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
        try:
            counts = self._run_exclusive(max_tracks, force_refresh)
        except psycopg2.Error as error:
            logger.error("Enrichment batch failed: %s", error)
            return HTTPStatus.SERVICE_UNAVAILABLE, {"error": "database unavailable"}
        if counts is None:
            return HTTPStatus.CONFLICT, {"error": "an enrichment batch is already running"}
        return HTTPStatus.OK, {
            "force_refresh": force_refresh,
            "max_tracks": max_tracks,
            **counts.as_dict(),
        }

    def start_schedule(self, every: float, max_tracks: int) -> threading.Thread:
        """Run a batch of ``max_tracks`` now and then every ``every`` seconds until closed.

        A scheduled batch that finds one already running in this process is skipped; one that
        fails (database down) is logged and tried again at the next tick.
        """
        thread = threading.Thread(
            target=self._schedule, args=(every, max_tracks), name="schedule", daemon=True
        )
        thread.start()
        return thread

    def _schedule(self, every: float, max_tracks: int) -> None:
        while not self._stopping.is_set():
            started = time.monotonic()
            try:
                counts = self._run_exclusive(max_tracks, force_refresh=False)
            except psycopg2.Error as error:
                logger.error("Scheduled enrichment batch failed: %s", error)
            else:
                if counts is None:
                    logger.info("Scheduled enrichment batch skipped: one is already running")
            self._stopping.wait(max(0.0, every - (time.monotonic() - started)))

    def _run_exclusive(self, max_tracks: int, force_refresh: bool) -> BatchCounts | None:
        """One batch, or None when this process already runs one."""
        if not self.batch_lock.acquire(blocking=False):
            return None
        try:
            return self.backfill.run(max_tracks=max_tracks, force_refresh=force_refresh)
        finally:
            self.batch_lock.release()


def _refuse(request: socket.socket) -> None:
    """Answer 503 without reading the request: every connection slot is taken."""
    body = json.dumps({"error": "too many connections; retry shortly"}).encode() + b"\n"
    head = (
        "HTTP/1.0 503 Service Unavailable\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nRetry-After: 1\r\nConnection: close\r\n\r\n"
    )
    with suppress(OSError):
        request.settimeout(1.0)
        request.sendall(head.encode() + body)
        request.shutdown(socket.SHUT_WR)
        # Only what already arrived: the accepting thread must not wait on this client.
        request.setblocking(False)
        while request.recv(65536):
            pass


class _DeadlineReader(io.RawIOBase):
    """Reads from a socket until a deadline: a client sending a byte a second is cut off."""

    def __init__(self, connection: socket.socket, deadline: float) -> None:
        self._connection = connection
        self._deadline = deadline

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        remaining = self._deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("the request was not received in time")
        self._connection.settimeout(remaining)
        return self._connection.recv_into(buffer)


class _Handler(BaseHTTPRequestHandler):
    server: EnrichmentService
    server_version = "tracklists-enrichment/0.1"

    def setup(self) -> None:
        super().setup()
        self.rfile.close()
        deadline = time.monotonic() + self.server.request_timeout
        self.rfile = io.BufferedReader(_DeadlineReader(self.connection, deadline))

    @property
    def route(self) -> str:
        """The path without its query string."""
        return self.path.partition("?")[0]

    def do_GET(self) -> None:
        if self.route == "/health":
            self._json(*self.server.health())
        elif self.route == "/metrics":
            self._send(HTTPStatus.OK, CONTENT_TYPE_LATEST, generate_latest(REGISTRY))
        else:
            self._not_allowed()

    def do_POST(self) -> None:
        if self.route != "/enrich/batch":
            self._not_allowed()
            return
        body = self._read_body()
        if body is None:
            return
        content_type = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if body.strip() and content_type != "application/json":
            self._json(
                HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
                {"error": "send the body as Content-Type: application/json"},
            )
            return
        self._json(*self.server.run_batch(body))

    def _not_allowed(self) -> None:
        """405 with ``Allow`` on a known path, 404 elsewhere."""
        allowed = ALLOWED_METHODS.get(self.route)
        if allowed is not None and allowed != self.command:
            self._json(HTTPStatus.METHOD_NOT_ALLOWED, {"error": f"use {allowed}"}, allow=allowed)
        else:
            self._json(HTTPStatus.NOT_FOUND, {"error": f"no such endpoint: {self.path[:100]}"})

    do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _not_allowed

    def _read_body(self) -> bytes | None:
        """The body by its one ``Content-Length``, or None once the refusal is sent."""
        self.close_connection = True
        if self.headers.get("Transfer-Encoding") is not None:
            self._json(
                HTTPStatus.LENGTH_REQUIRED,
                {"error": "send the body with a Content-Length; chunked bodies are refused"},
            )
            return None
        lengths = self.headers.get_all("Content-Length") or []
        if not lengths:
            return b""
        if len(lengths) > 1 or not (lengths[0].isascii() and lengths[0].isdigit()):
            self._json(
                HTTPStatus.BAD_REQUEST,
                {"error": "Content-Length must be one non-negative integer"},
            )
            return None
        length = int(lengths[0])
        if length > MAX_BODY_BYTES:
            self._json(
                HTTPStatus.BAD_REQUEST, {"error": f"body must be at most {MAX_BODY_BYTES} bytes"}
            )
            return None
        try:
            body = self.rfile.read(length)
        except TimeoutError:
            self._json(HTTPStatus.REQUEST_TIMEOUT, {"error": "the body was not received in time"})
            return None
        if len(body) < length:
            self._json(HTTPStatus.BAD_REQUEST, {"error": "the body is shorter than its length"})
            return None
        return body

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """The server's own refusals (bad request line, unknown method) in JSON too."""
        self.close_connection = True
        try:
            phrase = HTTPStatus(code).phrase
        except ValueError:
            phrase = ""
        self._json(code, {"error": message or phrase})

    def log_message(self, format: str, *args: Any) -> None:
        logger.info("%s %s", self.address_string(), format % args)

    def _json(self, status: int, payload: dict[str, Any], *, allow: str | None = None) -> None:
        body = json.dumps(payload).encode() + b"\n"
        self._send(status, "application/json", body, allow=allow)

    def _send(
        self, status: int, content_type: str, body: bytes, *, allow: str | None = None
    ) -> None:
        # Reading set the socket's timeout to what was left of the deadline; writing gets its own.
        self.connection.settimeout(self.server.request_timeout)
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        if allow:
            self.send_header("Allow", allow)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
