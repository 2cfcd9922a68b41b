"""``scrapy frontier show|clear``: a shared frontier's state in Redis, read or deleted.

``show`` prints the queued requests, the duplicate filter's size, the live workers and each
site's next free moment. ``clear`` deletes every key of the crawl; it refuses while a worker's
heartbeat is fresh, unless ``--force``. The crawl is named by ``FRONTIER_NAME`` (default: the
spider's name) and Redis by ``REDIS_URL`` (the environment, or ``-s REDIS_URL=…``). Exit
status: 0 done, 1 Redis unreachable or workers alive, 2 usage error or a ``REDIS_URL`` that is
not a Redis URL (one line, no password).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any, ClassVar

import redis
from scrapy.commands import ScrapyCommand
from scrapy.exceptions import UsageError

from scrapers.crawl.frontier import DEFAULTS, enabled, frontier_name, keys, live_workers
from scrapers.redis_url import RedisUrlError, check_redis_url, redis_error

SPIDER = "1001tracklists"


class Command(ScrapyCommand):
    requires_project = True
    default_settings: ClassVar[dict[str, Any]] = {"LOG_ENABLED": False}

    def syntax(self) -> str:
        return "show|clear [--force]"

    def short_desc(self) -> str:
        return "Show or clear a shared crawl frontier in Redis (REDIS_URL)"

    def add_options(self, parser: argparse.ArgumentParser) -> None:
        super().add_options(parser)
        parser.add_argument("--force", action="store_true", help="clear even with live workers")

    def run(self, args: list[str], opts: argparse.Namespace) -> None:
        if len(args) != 1 or args[0] not in ("show", "clear"):
            raise UsageError("give show or clear")
        assert self.settings is not None
        if not enabled(self.settings):
            raise UsageError(
                "set the shared frontier's Redis: REDIS_URL=redis://host:6379/0 in the"
                " environment, or -s REDIS_URL=…"
            )
        try:
            name = frontier_name(self.settings, SPIDER)
        except ValueError as error:
            raise UsageError(str(error)) from None
        url = self.settings["REDIS_URL"]
        try:
            check_redis_url(url)
        except RedisUrlError as error:
            print(f"scrapy frontier: {error}", file=sys.stderr)
            self.exitcode = 2
            return
        names = keys(name)
        timeout = self.settings.getfloat(
            "FRONTIER_WORKER_TIMEOUT", DEFAULTS["FRONTIER_WORKER_TIMEOUT"]
        )
        client = redis.Redis.from_url(url, socket_connect_timeout=5, socket_timeout=5)
        try:
            workers = live_workers(client, names["workers"], timeout)
            if args[0] == "show":
                self._show(client, name, names, workers)
            elif workers and not opts.force:
                print(f"{len(workers)} workers of {name} are alive; stop them or use --force")
                self.exitcode = 1
            else:
                deleted = sum(client.delete(key) for key in client.scan_iter(match=f"{name}:*"))
                print(f"frontier {name}: {deleted} keys deleted")
        except redis.RedisError as error:
            print(f"Redis unreachable: {redis_error(error, url)}")
            self.exitcode = 1
        finally:
            client.close()

    @staticmethod
    def _show(
        client: redis.Redis, name: str, names: dict[str, str], workers: dict[str, float]
    ) -> None:
        print(f"frontier: {name}")
        print(f"queued requests: {client.zcard(names['requests'])}")
        print(f"seen requests (duplicate filter): {client.scard(names['dupefilter'])}")
        print(f"live workers: {len(workers)}")
        idle = {name.decode() for name in client.hkeys(names["idle"])}
        for worker, age in sorted(workers.items()):
            print(f"  {worker}  heartbeat {age:.1f} s ago{'  (idle)' if worker in idle else ''}")
        seconds, microseconds = client.time()  # the limiter's clock
        now = seconds + microseconds / 1e6
        for key in sorted(client.scan_iter(match=f"{names['politeness']}:*")):
            host = key.decode().removeprefix(f"{names['politeness']}:")
            if host.endswith((":turn", ":last")):
                continue
            free = float(client.get(key) or 0)
            print(f"site {host}: next request in {max(0.0, free - now):.1f} s")
