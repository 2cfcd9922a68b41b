"""The shared frontier's queue: every call safe to send again when its reply was lost.

redis-py sends a command again when its connection fails (10 times by default), and a worker
tries again after an outage. When Redis had done the command and only its reply was lost (Redis
killed after writing its append-only file and before replying, a network cut, a reply slower
than the socket timeout), scrapy-redis lost the request, and the run ended complete in
appearance: its MULTI/EXEC pop, sent again, popped a second request and the first was never
crawled; its duplicate filter's ``SADD``, sent again, answered "seen" and the request was dropped
as a duplicate of itself.

- ``add`` marks the fingerprint in the duplicate filter and queues the request in one script:
  both or neither, so a second try that finds the mark finds the request queued;
- ``pop`` moves the first request into the worker's slot of ``<frontier>:taken`` under a token
  and returns it. The token is kept until an answer came, so a second try (redis-py's, or the
  scheduler's after an outage) gets the same request back. The worker's next pop overwrites its
  slot; a worker leaving, and a new run, delete them.

A Lua script rather than a "processing" list acknowledged once the page is stored: a request
can only be lost between Redis and the worker here, and a worker that dies holding requests is
already told by its heartbeat (``frontier_workers_lost``); the script adds no round trip.
"""

from __future__ import annotations

import uuid
from typing import Any

from scrapy import Request
from scrapy_redis.queue import PriorityQueue

QUEUE_CLASS = "scrapers.crawl.frontier_queue.FrontierQueue"

# KEYS: requests, dupefilter. ARGV: the request, its score, its fingerprint ('' when the request
# is not filtered). Returns 1 when queued, 0 when the fingerprint was seen (queued then).
_ADD = """
if ARGV[3] ~= '' and redis.call('SADD', KEYS[2], ARGV[3]) == 0 then return 0 end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
return 1
"""
# KEYS: requests, taken. ARGV: worker, token. The request popped under this token, else the
# first queued one (moved into the worker's slot), else nothing.
_POP = """
local slot = redis.call('HMGET', KEYS[2], ARGV[1], ARGV[1] .. ':request')
if slot[1] == ARGV[2] then return slot[2] end
local first = redis.call('ZRANGE', KEYS[1], 0, 0)
if #first == 0 then return false end
redis.call('ZREM', KEYS[1], first[1])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2], ARGV[1] .. ':request', first[1])
return first[1]
"""


def slot_fields(worker: str) -> list[str]:
    """A worker's fields in ``<frontier>:taken``: its last pop's token and request."""
    return [worker, f"{worker}:request"]


class FrontierQueue(PriorityQueue):
    """scrapy-redis's priority queue (same key, same order), with ``add`` and ``pop`` scripts."""

    def __init__(self, server: Any, spider: Any, key: str, serializer: Any = None) -> None:
        super().__init__(server, spider, key, serializer)
        self.frontier_keys = spider.frontier_keys
        self.worker = spider.worker_id
        self._token: str | None = None  # the pop whose answer has not come yet
        self._add = server.register_script(_ADD)
        self._pop = server.register_script(_POP)

    def add(self, request: Request, fingerprint: str) -> bool:
        """Queue ``request`` unless its ``fingerprint`` was seen ('' for a request not
        filtered); False when seen."""
        data = self._encode_request(request)
        keys = [self.key, self.frontier_keys["dupefilter"]]
        return bool(self._add(keys=keys, args=[data, -request.priority, fingerprint]))

    @property
    def pop_unanswered(self) -> bool:
        """A pop went unanswered: Redis may have moved a request into this worker's slot, which
        the next pop returns. The worker is not idle until then."""
        return self._token is not None

    def push(self, request: Request) -> None:
        self.add(request, "")

    def pop(self, timeout: int = 0) -> Request | None:
        """The first request; after a call that raised, the one that call popped, if it did."""
        if self._token is None:
            self._token = uuid.uuid4().hex
        keys = [self.key, self.frontier_keys["taken"]]
        data = self._pop(keys=keys, args=[self.worker, self._token])
        self._token = None
        return self._decode_request(data) if data else None
