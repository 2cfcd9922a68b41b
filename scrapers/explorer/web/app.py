"""The web explorer's FastAPI app: pages, ``/api/``, its OpenAPI document, ``/metrics``.

Offline by construction: the pages load only ``/static/`` (the graph library is vendored, fonts
are the system's), and FastAPI's own docs pages, which fetch Swagger UI from a CDN, are off;
``/api/docs`` lists the API from ``/api/openapi.json`` as a plain page instead.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import psycopg2
import psycopg2.errors
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from starlette.exceptions import HTTPException
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from scrapers import metrics
from scrapers.explorer.web import api, pages
from scrapers.explorer.web.catalogue import CatalogueBusyError, ReadOnlyCatalogue
from scrapers.explorer.web.config import WebConfig
from scrapers.serving import KNOWN_METHODS, KnownMethodsOnly

logger = logging.getLogger(__name__)

STATIC = Path(__file__).parent / "static"


def create_app(config: WebConfig, catalogue: ReadOnlyCatalogue | None = None) -> FastAPI:
    """The explorer reading ``config.database_url`` (or ``catalogue``, already made)."""
    app = FastAPI(
        title="tracklists explorer",
        summary="What DJs play, what they play next, and paths between tracks.",
        docs_url=None,
        redoc_url=None,
        openapi_url="/api/openapi.json",
    )
    app.state.catalogue = catalogue or ReadOnlyCatalogue(
        config.database_url,
        size=config.database_connections,
        statement_timeout_ms=config.statement_timeout_ms,
    )
    app.state.config = config
    app.add_middleware(KnownMethodsOnly)
    app.add_middleware(RequestLatency, routes=app.router.routes)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.include_router(pages.router)
    app.include_router(api.router)

    @app.get("/metrics", include_in_schema=False)
    def prometheus_metrics() -> Response:
        return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)

    @app.get("/api/docs", include_in_schema=False, response_class=HTMLResponse)
    def api_docs(request: Request) -> HTMLResponse:
        return pages.page(request, "api_docs.html", operations=_operations(app.openapi()))

    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _invalid_request)
    app.add_exception_handler(psycopg2.errors.QueryCanceled, _too_slow)
    app.add_exception_handler(psycopg2.OperationalError, _unavailable)
    app.add_exception_handler(CatalogueBusyError, _unavailable)
    return app


class RequestLatency:
    """ASGI middleware: each request's time into ``explorer_request_duration_seconds``, labelled
    by its route's template (bounded: one per route), method and status class.

    FastAPI's own routes leave their route in the scope; for the others (the static files, the
    OpenAPI document) the template is found by matching ``routes`` again.
    """

    def __init__(self, app: ASGIApp, routes: list[BaseRoute]) -> None:
        self.app = app
        self.routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500
        asked = dict(scope)  # as it came: routing rewrites the scope's paths below a mount

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            route = getattr(scope.get("route"), "path", None) or self._template(asked)
            method = scope["method"] if scope["method"] in KNOWN_METHODS else "other"
            metrics.EXPLORER_REQUEST_SECONDS.labels(route, method, f"{status // 100}xx").observe(
                time.perf_counter() - started
            )

    def _template(self, scope: Scope) -> str:
        for route in self.routes:
            if route.matches(scope)[0] is Match.FULL:
                return getattr(route, "path", "unmatched")
        return "unmatched"


def _operations(document: dict[str, Any]) -> list[dict[str, Any]]:
    """The API's operations from its OpenAPI document, for ``/api/docs``."""
    found = []
    for path, methods in document.get("paths", {}).items():
        for method, operation in methods.items():
            found.append(
                {
                    "method": method.upper(),
                    "path": path,
                    "summary": operation.get("summary", ""),
                    "parameters": [
                        {
                            "name": p["name"],
                            "where": p["in"],
                            "required": p.get("required", False),
                            "description": p.get("description", ""),
                        }
                        for p in operation.get("parameters", [])
                    ],
                }
            )
    return found


def _wants_json(request: Request) -> bool:
    return request.url.path.startswith("/api/")


def _error(request: Request, status: int, message: str, headers: Any = None) -> Response:
    """An error as the client reads it: JSON under ``/api/``, else a page."""
    if _wants_json(request):
        return JSONResponse({"error": message}, status, headers=headers)
    response = pages.page(request, "error.html", status=status, message=message)
    response.status_code = status
    if headers:
        response.headers.update(headers)
    return response


async def _http_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, HTTPException)
    return _error(request, error.status_code, str(error.detail), error.headers)


async def _invalid_request(request: Request, error: Exception) -> Response:
    assert isinstance(error, RequestValidationError)
    problems = [
        f"{'.'.join(str(part) for part in problem['loc'][1:])}: {problem['msg']}"
        for problem in error.errors()
    ]
    return _error(request, 400, "; ".join(problems)[:500])


async def _too_slow(request: Request, error: Exception) -> Response:
    logger.warning("A query of %s ran past its statement timeout", request.url.path)
    return _error(request, 503, "the catalogue took too long to answer; try a narrower question")


async def _unavailable(request: Request, error: Exception) -> Response:
    logger.error("The catalogue cannot be read: %s", " ".join(str(error).split()))
    return _error(request, 503, "the catalogue cannot be read right now; try again shortly")
