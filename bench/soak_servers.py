"""The soak's private Redis and PostgreSQL: started, crashed and restarted at will.

Never the shared servers: each listens on 127.0.0.1 on a port of its own, kept across restarts
so that the crawl workers' URLs stay valid while the server under them goes away and comes back.
"""

from __future__ import annotations

from pathlib import Path

import redis

from scrapers.db.server.embedded import EmbeddedPostgres
from tests.redis_process import RedisProcess, free_port


class PrivateRedis:
    """``tests.redis_process``'s server, restarted two ways: ``start()`` from its append-only
    file (fsynced on every write: an acknowledged write survives ``crash()``, a ``kill -9``), or
    ``start(persisted=False)`` with its data files deleted and no persistence, as a server
    configured without AOF comes back empty (AOF, fsynced on every write, is switched on again
    once it answers: else the workers' next restart would count as one that may lose writes)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.server = RedisProcess(folder, persistent=True)
        self.url = self.server.url

    def start(self, persisted: bool = True) -> None:
        if not persisted:
            for data in self.folder.glob("*.aof"):
                data.unlink()
            (self.folder / "dump.rdb").unlink(missing_ok=True)
        self.server.persistent = persisted
        self.server.start(timeout=60)
        if not persisted:
            client = redis.Redis.from_url(self.url)
            client.config_set("appendfsync", "always")
            client.config_set("appendonly", "yes")
            client.close()
            self.server.persistent = True

    def crash(self) -> None:
        self.server.kill()

    def stop(self) -> None:
        self.server.kill()


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
