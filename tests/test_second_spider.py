"""A second tracklist site needs one new module: ``tests/second_site.py``'s spider, crawled
through Scrapy with the project's settings, is stored and crawled incrementally like the
1001tracklists spider, with no edit in ``scrapers/crawl/``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.second_site import SOURCE, SecondSite
from tests.test_incremental_crawl import crawl_settings, finish, start_crawl

SETS = 3


@pytest.fixture
def second_site() -> Iterator[SecondSite]:
    site = SecondSite(SETS)
    yield site
    site.stop()


def crawl_second_site(db_url: str, site: SecondSite, tmp_path: Path) -> dict[str, Any]:
    settings = crawl_settings(tmp_path, SPIDER_MODULES=["tests.second_site"])
    stats, _ = finish(start_crawl(db_url, settings, {"start_urls": site.url}, spider="second-site"))
    return stats


def test_a_second_sites_spider_is_stored_then_crawled_incrementally(
    second_site: SecondSite, db_url: str, db: Any, tmp_path: Path
) -> None:
    first = crawl_second_site(db_url, second_site, tmp_path)
    assert second_site.set_fetches() == SETS
    assert first["database/items_stored"] == SETS * 3  # a setlist and two rows each
    with db.cursor() as cursor:
        cursor.execute("SELECT source, source_id, row_count FROM setlists ORDER BY source_id")
        assert cursor.fetchall() == [(SOURCE, str(n), 2) for n in range(SETS)]

    second = crawl_second_site(db_url, second_site, tmp_path)
    assert second_site.set_fetches() == SETS  # every set was known: none fetched again
    assert second["tracklists/skipped/complete"] == SETS
    assert "database/items_stored" not in second
