"""Local servers of the tests, served from a daemon thread and stopped quickly.

``socketserver``'s ``serve_forever`` checks for ``shutdown()`` every 0.5 s by default, so each
server a test stopped cost it up to half a second: 1.5 s for every test of the three fake music
sources, two minutes of the suite. A short poll makes ``shutdown()`` return at once; the idle
thread wakes 20 times a second, which costs nothing measurable. The project's own uvicorn
servers (``scrapers.serving.Server``: the enrichment service, the web explorer) stop within
uvicorn's 0.1 s tick and take no poll interval.
"""

from __future__ import annotations

import socketserver
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TypeVar

from scrapers import serving as uvicorn_serving

Server = TypeVar("Server", socketserver.BaseServer, uvicorn_serving.Server)
SHUTDOWN_POLL_SECONDS = 0.05


def serve_in_background(server: socketserver.BaseServer | uvicorn_serving.Server) -> None:
    """Serve ``server`` from a daemon thread until ``server.shutdown()``."""
    poll = (SHUTDOWN_POLL_SECONDS,) if isinstance(server, socketserver.BaseServer) else ()
    threading.Thread(target=server.serve_forever, args=poll, daemon=True).start()


@contextmanager
def serving(server: Server) -> Iterator[Server]:
    """``server`` served in the background for the ``with`` block, then shut down and closed."""
    serve_in_background(server)
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
