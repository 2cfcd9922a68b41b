"""The response cache table (migration 004) and its connection pool."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from scrapers.db.server import migrations
from scrapers.enrichment.cache import CachedAnswer, ResponseCache


def test_migration_004_rolls_back_and_reapplies(db_url: str, db) -> None:
    def cache_table() -> bool:
        with db.cursor() as cursor:
            cursor.execute("SELECT to_regclass('enrichment_cache') IS NOT NULL")
            return cursor.fetchone()[0]

    assert cache_table()
    later = [name for name in migrations.applied(db) if name > "004_enrichment_cache"]
    for name in sorted(later, reverse=True):
        migrations.downgrade(db_url, name)
    migrations.downgrade(db_url, "004_enrichment_cache")
    assert not cache_table()
    assert "004_enrichment_cache" not in migrations.applied(db)
    assert "004_enrichment_cache" in migrations.upgrade(db_url)
    assert cache_table()
    assert migrations.upgrade(db_url) == [], "applying again changes nothing"


def test_cache_serves_more_threads_than_connections(db_url: str) -> None:
    """Lookup threads outnumbering the pool's connections wait for one instead of failing."""
    cache = ResponseCache(db_url, max_connections=1)
    try:
        with ThreadPoolExecutor(8) as pool:
            list(
                pool.map(
                    lambda n: cache.put("deezer", f"/track/{n}", CachedAnswer(200, {"n": n}), 60),
                    range(200),
                )
            )
            answers = list(pool.map(lambda n: cache.get("deezer", f"/track/{n}"), range(200)))
    finally:
        cache.close()
    assert [answer.body["n"] for answer in answers] == list(range(200))
