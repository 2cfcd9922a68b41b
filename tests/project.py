"""The project's settings for tests, as ``scrapy crawl`` has them: components read their settings
with no fallback of their own, so a test builds them from the real defaults."""

from __future__ import annotations

from typing import Any

from scrapy.crawler import Crawler
from scrapy.spiders import Spider
from scrapy.utils.test import get_crawler, get_reactor_settings

from scrapers.settings_check import project_settings


def project_crawler(spider: type[Spider] | None = None, **overrides: Any) -> Crawler:
    """A crawler with ``scrapers/settings.py`` (and the environment), ``overrides`` as ``-s``."""
    settings = project_settings(overrides).copy_to_dict()
    settings.update(get_reactor_settings())  # this process's reactor, as get_crawler does
    return get_crawler(spider, settings)
