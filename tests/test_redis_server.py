"""Redis is found the way PostgreSQL is: REDIS_URL, else a local server, else an embedded one."""

from __future__ import annotations

import pytest
import redis

from scrapers.crawl import redis_server


def test_without_a_configured_or_local_server_an_embedded_one_is_started(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("REDIS_URL", raising=False)
    # Nothing listens on the discard port: as on a laptop with no Redis installed.
    monkeypatch.setattr(redis_server, "LOCAL_URL", "redis://127.0.0.1:9/0")
    url = redis_server.resolve_redis_url()
    assert url.startswith("unix://")
    client = redis.Redis.from_url(url)
    client.set("tracklists-test", "real")
    assert client.get("tracklists-test") == b"real"
    assert client.info("server")["redis_version"]
    client.close()


def test_redis_url_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_URL", "redis://example.invalid:6379/3")
    assert redis_server.resolve_redis_url() == "redis://example.invalid:6379/3"
