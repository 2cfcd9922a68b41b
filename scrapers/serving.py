"""HTTP serving for the project's ASGI apps (the enrichment service, the web explorer): uvicorn.

``Server`` binds its socket when built (a port in use fails there, before anything starts), then
runs uvicorn on it from any thread until ``shutdown()``. The limits are uvicorn's own settings:

* ``limit_concurrency``: connections (and requests) served at once; more get uvicorn's 503;
* ``timeout_keep_alive``: how long a connection may sit idle between requests;
* ``h11_max_incomplete_event_size``: the largest request line and headers accepted.

uvicorn times out only an idle connection, not one whose client trickles its request line and
headers a byte at a time: that client would hold a ``limit_concurrency`` slot forever.
``HeadDeadlineProtocol`` (uvicorn's h11 protocol, subclassed) gives the head of every request the
same ``timeout_keep_alive`` seconds, and answers a request h11 cannot parse with a JSON 400 that
names the problem. The body is the app's to bound (its size, and a deadline to read it).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import socket
import threading
from typing import Any

import h11
import uvicorn
from scrapy.settings import Settings
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol

from scrapers.settings_check import project_settings

MAX_HEAD_BYTES = 16 * 1024
# The methods HTTP defines; any other gets 501, as the standard library's server answered.
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE"})


class _ErrorKeepingConnection(h11.Connection):
    """h11's connection, keeping the last parse error so the 400 can say what it was."""

    parse_error: h11.RemoteProtocolError | None = None

    def next_event(self) -> Any:
        try:
            return super().next_event()
        except h11.RemoteProtocolError as error:
            self.parse_error = error
            raise


class HeadDeadlineProtocol(H11Protocol):
    """uvicorn's h11 protocol; each request's head must arrive within ``timeout_keep_alive``."""

    def __init__(self, config: uvicorn.Config, *args: Any, **kwargs: Any) -> None:
        super().__init__(config, *args, **kwargs)
        self.conn = _ErrorKeepingConnection(h11.SERVER, config.h11_max_incomplete_event_size)
        self._head_deadline: asyncio.TimerHandle | None = None
        self._awaiting_after: object = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._await_head()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._head_deadline is not None and self.cycle is not self._awaiting_after:
            self._cancel_head_deadline()  # a new request's head arrived

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing() and (self.cycle is None or self.cycle.response_complete):
            self._await_head()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_deadline()
        super().connection_lost(exc)

    def _await_head(self) -> None:
        self._cancel_head_deadline()
        self._awaiting_after = self.cycle
        self._head_deadline = self.loop.call_later(self.timeout_keep_alive, self._head_too_late)

    def _head_too_late(self) -> None:
        self._head_deadline = None
        if self.cycle is self._awaiting_after:
            self.logger.info("Closing a connection: its request was not received in time")
            self.transport.close()

    def _cancel_head_deadline(self) -> None:
        if self._head_deadline is not None:
            self._head_deadline.cancel()
            self._head_deadline = None

    def send_400_response(self, msg: str) -> None:
        """uvicorn's plain "Invalid HTTP request received.", as JSON naming what h11 found."""
        if self.conn.our_state not in (h11.IDLE, h11.SEND_RESPONSE):
            self.transport.close()  # the app has answered already: nothing more can be sent
            return
        reason = self.conn.parse_error or msg
        body = json.dumps({"error": f"invalid HTTP request: {reason}"[:300]}).encode() + b"\n"
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),
        ]
        for event in (
            h11.Response(status_code=400, headers=headers, reason=b"Bad Request"),
            h11.Data(data=body),
            h11.EndOfMessage(),
        ):
            self.transport.write(self.conn.send(event))
        self.transport.close()


class KnownMethodsOnly:
    """ASGI middleware: a method HTTP does not define gets a JSON 501, not a route's 405."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] not in KNOWN_METHODS:
            method = scope["method"][:20]
            answer = JSONResponse({"error": f"Unsupported method ({method!r})"}, status_code=501)
            await answer(scope, receive, send)
            return
        await self.app(scope, receive, send)


class Server:
    """``app`` served by uvicorn on ``address``, bound now; ``serve_forever`` runs it."""

    def __init__(
        self,
        app: ASGIApp,
        address: tuple[str, int],
        *,
        request_timeout: float,
        max_connections: int,
        graceful_shutdown: float = 5.0,
    ) -> None:
        self.socket = socket.create_server(address, backlog=128)
        self.server_address = self.socket.getsockname()[:2]
        config = uvicorn.Config(
            app,
            http=HeadDeadlineProtocol,
            limit_concurrency=max_connections,
            timeout_keep_alive=request_timeout,  # type: ignore[arg-type]  (seconds, float)
            timeout_graceful_shutdown=round(graceful_shutdown),
            h11_max_incomplete_event_size=MAX_HEAD_BYTES,
            lifespan="off",
            log_config=None,
            server_header=False,
        )
        self._server = uvicorn.Server(config)
        self._stopped = threading.Event()

    @property
    def url(self) -> str:
        host, port = self.server_address
        return f"http://{host}:{port}"

    def serve_forever(self) -> None:
        """Serve until ``shutdown()`` (or, in the main thread, SIGINT/SIGTERM)."""
        try:
            self._server.run(sockets=[self.socket])
        finally:
            self._stopped.set()

    def shutdown(self, timeout: float = 30.0) -> None:
        """Stop serving and wait (at most ``timeout`` seconds) for ``serve_forever`` to end."""
        self._server.should_exit = True
        self._stopped.wait(timeout)

    def server_close(self) -> None:
        self.socket.close()


def add_settings_option(parser: argparse.ArgumentParser) -> None:
    """``-s NAME=VALUE`` (repeatable), as ``scrapy crawl`` takes it."""
    parser.add_argument(
        "-s",
        dest="overrides",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        type=_override,
        help="override a setting",
    )


def _override(text: str) -> str:
    """``-s NAME=VALUE``; ``-s NAME`` alone is refused (argparse: usage line, exit 2), as
    ``scrapy crawl`` refuses it, rather than setting NAME to the empty text."""
    name, equals, _ = text.partition("=")
    if not equals or not name.strip():
        raise argparse.ArgumentTypeError(f"use -s NAME=VALUE, got {text!r}")
    return text


def command_settings(overrides: list[str], **given: str | None) -> Settings:
    """The project's settings with ``-s`` ``overrides`` and the options ``given`` (``None``:
    not given) on top, and logging set up at their ``LOG_LEVEL``."""
    options = {name: value for name, value in given.items() if value is not None}
    settings = project_settings(
        {**dict(override.partition("=")[::2] for override in overrides), **options}
    )
    logging.basicConfig(
        level=settings.get("LOG_LEVEL"),
        format="%(asctime)s [%(name)s] %(levelname)s: %(message)s",
    )
    return settings


def serve_until_stopped(server: Server, logger: logging.Logger) -> None:
    """Serve until Ctrl-C or SIGTERM (systemd, docker stop), then close the socket.

    uvicorn catches both, stops serving (requests in flight get a few seconds), then raises the
    signal again: SIGTERM then ends here as Ctrl-C does, with exit status 0.
    """
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        logger.info("Stopping")
    finally:
        server.server_close()


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt
