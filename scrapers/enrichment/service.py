"""The enrichment service: a FastAPI app in front of the backfill, served by uvicorn.

* ``POST /enrich/batch`` with ``{"force_refresh": false, "max_tracks": 10}`` (both optional; an
  empty body means the defaults) runs one batch and answers its counts. A second batch in the
  same process while one runs gets 409; other service processes run theirs at the same time,
  on tracks of their own (see ``backfill``).
* ``GET /health``: the database and each source's circuit.
* ``GET /metrics``: every Prometheus metric of the process, and the catalogue's size.
* ``start_schedule``: a batch on its own every so many seconds, besides the ones asked for.

The request is untrusted. uvicorn bounds the connections served at once
(``ENRICHMENT_SERVICE_MAX_CONNECTIONS``, more get 503), the size of a request's head, and the time
to send it (``ENRICHMENT_SERVICE_REQUEST_TIMEOUT``; see ``scrapers.serving``). The batch endpoint
bounds the body: a ``Content-Length`` of at most ``MAX_BODY_BYTES`` (chunked bodies get 411),
received within the same timeout (else 408), JSON validated by the pydantic model
``BatchRequest`` (strict types, known fields only, its parser's nesting limit); anything else is
a 400 that says what was wrong. Errors are JSON. Binds 127.0.0.1 unless told otherwise. The
batch and the database calls block, so they run in the threadpool, never on the event loop.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from contextlib import closing
from http import HTTPStatus
from typing import Any

import psycopg2
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from scrapers import metrics
from scrapers.db.enrichment_queue import catalogue_counts
from scrapers.db.server.connection import connect
from scrapers.enrichment.backfill import Backfill, BatchCounts
from scrapers.serving import KnownMethodsOnly, Server

logger = logging.getLogger(__name__)

DEFAULT_MAX_TRACKS = 100
MAX_TRACKS_LIMIT = 10_000
MAX_BODY_BYTES = 16 * 1024


class BadRequestError(ValueError):
    """The client's request cannot be run; the message tells it why."""


class BatchRequest(BaseModel):
    """The body of ``POST /enrich/batch``: JSON types as they are (``true`` is no count)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    force_refresh: bool = False
    max_tracks: int = Field(DEFAULT_MAX_TRACKS, ge=1, le=MAX_TRACKS_LIMIT)


# pydantic's error types, said the way the service's documentation says them.
_FIELD_ERRORS = {
    "int_type": "{field} must be a JSON integer",
    "bool_type": "{field} must be a JSON boolean",
    "greater_than_equal": f"{{field}} must be between 1 and {MAX_TRACKS_LIMIT}",
    "less_than_equal": f"{{field}} must be between 1 and {MAX_TRACKS_LIMIT}",
}


def parse_batch_request(body: bytes) -> BatchRequest:
    """The batch asked for in ``body``, or ``BadRequestError`` saying what is wrong."""
    if not body.strip():
        return BatchRequest()
    try:
        return BatchRequest.model_validate_json(body)
    except ValidationError as error:
        raise BadRequestError(_explain(error)) from error


def _explain(error: ValidationError) -> str:
    problems = error.errors(include_url=False)
    unknown = [str(p["loc"][0]) for p in problems if p["type"] == "extra_forbidden"]
    if unknown:
        allowed = ", ".join(BatchRequest.model_fields)
        return f"unknown field(s): {', '.join(unknown)[:200]}; allowed: {allowed}"
    first = problems[0]
    if first["type"] == "json_invalid":
        return f"body is not valid JSON: {first['msg'].removeprefix('Invalid JSON: ')}"
    if not first["loc"]:
        return "body must be a JSON object"
    field = str(first["loc"][0])
    return _FIELD_ERRORS.get(first["type"], "{field}: " + first["msg"]).format(field=field)


class EnrichmentService(Server):
    """The service's app, bound to ``address`` when built (``OSError`` if it cannot be)."""

    def __init__(self, address: tuple[str, int], backfill: Backfill) -> None:
        config = backfill.config
        self.backfill = backfill
        self.batch_lock = threading.Lock()
        self.request_timeout = config.service_request_timeout
        self._stopping = threading.Event()
        super().__init__(
            build_app(self),
            address,
            request_timeout=config.service_request_timeout,
            max_connections=config.service_max_connections,
        )
        metrics.CATALOGUE.watch(
            lambda: catalogue_counts(backfill.database_url),
            config.catalogue_metrics_ttl,
            (psycopg2.Error,),
        )

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

    def run_batch(self, batch: BatchRequest) -> tuple[int, dict[str, Any]]:
        try:
            counts = self._run_exclusive(batch.max_tracks, batch.force_refresh)
        except psycopg2.Error as error:
            logger.error("Enrichment batch failed: %s", error)
            return HTTPStatus.SERVICE_UNAVAILABLE, {"error": "database unavailable"}
        if counts is None:
            return HTTPStatus.CONFLICT, {"error": "an enrichment batch is already running"}
        return HTTPStatus.OK, {
            "force_refresh": batch.force_refresh,
            "max_tracks": batch.max_tracks,
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


def build_app(service: EnrichmentService) -> FastAPI:
    """The service's routes; no docs pages (the service is an API for scripts and Prometheus)."""
    app = FastAPI(
        title="tracklists enrichment service", docs_url=None, redoc_url=None, openapi_url=None
    )
    app.add_middleware(KnownMethodsOnly)

    @app.exception_handler(HTTPException)
    async def json_error(request: Request, error: HTTPException) -> JSONResponse:
        """Starlette's own 404 and 405 (with ``Allow``), as JSON like every other error."""
        allow = (error.headers or {}).get("Allow")
        if error.status_code == HTTPStatus.NOT_FOUND:
            message = f"no such endpoint: {request.url.path[:100]}"
        else:
            message = f"use {allow}" if allow else str(error.detail)
        return JSONResponse({"error": message}, error.status_code, headers=error.headers)

    @app.post("/enrich/batch")
    async def enrich_batch(request: Request) -> JSONResponse:
        # Every refusal closes the connection: its body may be left unread.
        close = {"Connection": "close"}
        if "transfer-encoding" in request.headers:
            return JSONResponse(
                {"error": "send the body with a Content-Length; chunked bodies are refused"},
                HTTPStatus.LENGTH_REQUIRED,
                headers=close,
            )
        # h11 has checked that the Content-Length is one non-negative integer.
        if int(request.headers.get("content-length", "0")) > MAX_BODY_BYTES:
            return JSONResponse(
                {"error": f"body must be at most {MAX_BODY_BYTES} bytes"},
                HTTPStatus.BAD_REQUEST,
                headers=close,
            )
        try:
            async with asyncio.timeout(service.request_timeout):
                body = await request.body()
        except TimeoutError:
            return JSONResponse(
                {"error": "the body was not received in time"},
                HTTPStatus.REQUEST_TIMEOUT,
                headers=close,
            )
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if body.strip() and content_type != "application/json":
            return JSONResponse(
                {"error": "send the body as Content-Type: application/json"},
                HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
            )
        try:
            batch = parse_batch_request(body)
        except BadRequestError as error:
            return JSONResponse({"error": str(error)}, HTTPStatus.BAD_REQUEST)
        status, answer = await run_in_threadpool(service.run_batch, batch)
        return JSONResponse(answer, status)

    @app.get("/health")
    def health() -> JSONResponse:
        status, answer = service.health()
        return JSONResponse(answer, status)

    @app.get("/metrics")
    def prometheus_metrics() -> Response:
        return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)

    return app
