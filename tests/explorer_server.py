"""The web explorer for tests: the scene of ``tests.web_catalogue`` in a database of its own,
served by uvicorn (``scrapers.serving``) on a free port of 127.0.0.1 in a thread."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any

from scrapers.explorer.web.app import create_app
from scrapers.explorer.web.catalogue import ReadOnlyCatalogue
from scrapers.explorer.web.config import WebConfig
from scrapers.serving import Server
from scrapers.settings_check import project_settings
from tests.serving import serving as in_background


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode()

    def json(self) -> Any:
        assert self.headers["content-type"] == "application/json", self.headers
        return json.loads(self.body)


@contextmanager
def serving(database_url: str, catalogue: ReadOnlyCatalogue | None = None) -> Iterator[Server]:
    """The explorer on ``database_url`` (or ``catalogue``), until the block ends."""
    app = create_app(
        replace(WebConfig.from_settings(project_settings()), database_url=database_url), catalogue
    )
    server = Server(app, ("127.0.0.1", 0), request_timeout=10.0, max_connections=64)
    try:
        with in_background(server):
            yield server
    finally:
        app.state.catalogue.close()


def get(url: str, *, method: str = "GET") -> Answer:
    request = urllib.request.Request(url, method=method)
    try:
        with urllib.request.urlopen(request, timeout=30) as reply:
            return Answer(reply.status, _headers(reply.headers), reply.read())
    except urllib.error.HTTPError as error:
        return Answer(error.code, _headers(error.headers), error.read())


def _headers(headers: Any) -> dict[str, str]:
    return {name.lower(): value for name, value in headers.items()}
