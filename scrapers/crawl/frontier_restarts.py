"""Restarts of the shared frontier's Redis, and whether one may have lost what Redis acknowledged.

A worker counts a request queued, taken or seen once Redis answers. Only an append-only file
written and fsynced before each reply (``appendonly yes``, ``appendfsync always``) brings all of
that back after a crash of Redis or of its machine: RDB snapshots come back older, and
``appendfsync everysec`` (or ``no``) may lose the last second or more. Such a restart can drop a
request pushed by a page already taken, and nobody would find it again: a worker that saw one
ends its run non-zero (``RESTARTED_STAT``), and the next run completes the crawl. A Redis whose
run id (new at every start) did not change did not restart; one that refuses ``CONFIG GET`` (a
managed Redis) counts as not keeping its acknowledged writes.
"""

from __future__ import annotations

import logging
import threading

import redis

logger = logging.getLogger(__name__)

# Restarts of a Redis that may have lost acknowledged writes, seen by this worker.
RESTARTED_STAT = "frontier/redis_restarted_unsafely"


def _text(value: bytes | str | None) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def unkept_writes(server: redis.Redis) -> str | None:
    """None when Redis keeps every write it acknowledged through a crash, else why not."""
    try:
        config = {_text(k): _text(v) for k, v in server.config_get("append*").items()}
    except redis.ResponseError:
        return "its configuration cannot be read (CONFIG GET refused)"
    aof, fsync = config.get("appendonly"), config.get("appendfsync")
    if aof == "yes" and fsync == "always":
        return None
    return f"appendonly {aof}, appendfsync {fsync}"


class RedisRestarts:
    """The run id of the Redis a worker talks to, checked by ``check`` (the heartbeat, the
    join, the close). Thread-safe; Redis errors are the caller's (an outage)."""

    def __init__(self, server: redis.Redis, run_again: str) -> None:
        self.server = server
        self.run_again = run_again
        self.run_id: str | None = None
        self.unsafe = 0  # restarts that may have lost acknowledged writes
        self._lock = threading.Lock()

    def check(self) -> None:
        run_id = _text(self.server.info("server")["run_id"])
        with self._lock:
            first, restarted = self.run_id is None, run_id != self.run_id
            self.run_id = run_id
        if not restarted:
            return
        unkept = unkept_writes(self.server)
        if first:
            if unkept:
                logger.warning(
                    "The shared frontier's Redis does not keep every write it acknowledged"
                    " through a crash (%s; needs appendonly yes, appendfsync always): if it"
                    " restarts, this run ends non-zero",
                    unkept,
                )
            return
        if unkept is None:
            logger.warning(
                "The shared frontier's Redis restarted; it keeps every write it acknowledged"
                " (appendonly yes, appendfsync always): nothing was lost"
            )
            return
        with self._lock:
            self.unsafe += 1
        logger.error(
            "The shared frontier's Redis restarted, and it does not keep every write it"
            " acknowledged (%s): requests queued before the restart may be lost; %s",
            unkept, self.run_again,
        )  # fmt: skip
