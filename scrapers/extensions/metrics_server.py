"""Serve the Prometheus metrics while a crawl runs, and push them when it ends.

``PROMETHEUS_PORT`` on ``PROMETHEUS_HOST`` (127.0.0.1 by default: metrics are not for the whole
network unless you say so) serves ``/metrics`` from the default registry, where every metric of
``scrapers.metrics`` lives. A port already in use is logged and the crawl goes on without it.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urlparse

from prometheus_client import start_http_server
from scrapy import signals
from scrapy.crawler import Crawler
from scrapy.exceptions import NotConfigured

from scrapers import metrics
from scrapers.settings_check import InvalidSetting, switch, whole_number

logger = logging.getLogger(__name__)


class MetricsServer:
    def __init__(self, host: str, port: int, pushgateway_url: str, job: str) -> None:
        self.host = host
        self.port = port
        self.pushgateway_url = pushgateway_url
        self.job = job
        self.server: Any = None

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> MetricsServer:
        """Off on purpose is ``NotConfigured``; a value that cannot be used is
        ``InvalidSetting``, which stops the crawl."""
        settings = crawler.settings
        if not switch("PROMETHEUS_ENABLED", settings.get("PROMETHEUS_ENABLED")):
            raise NotConfigured("PROMETHEUS_ENABLED is off")
        host = str(settings.get("PROMETHEUS_HOST") or "").strip()
        if not host:
            raise InvalidSetting("PROMETHEUS_HOST", "an address to listen on", host)
        pushgateway_url = str(settings.get("PROMETHEUS_PUSHGATEWAY_URL") or "").strip()
        if pushgateway_url and urlparse(pushgateway_url).scheme not in ("http", "https"):
            # Only the scheme is shown: the URL may carry credentials.
            shown = f"{urlparse(pushgateway_url).scheme}:…"
            raise InvalidSetting("PROMETHEUS_PUSHGATEWAY_URL", "empty or an http(s) URL", shown)
        job = str(settings.get("PROMETHEUS_JOB") or "").strip()
        if not job:
            raise InvalidSetting("PROMETHEUS_JOB", "a job name", job)
        extension = cls(
            host=host,
            port=whole_number(
                "PROMETHEUS_PORT",
                settings.get("PROMETHEUS_PORT"),
                minimum=0,
                maximum=65535,
            ),
            pushgateway_url=pushgateway_url,
            job=job,
        )
        crawler.signals.connect(extension.spider_opened, signal=signals.spider_opened)
        crawler.signals.connect(extension.spider_closed, signal=signals.spider_closed)
        return extension

    @property
    def url(self) -> str | None:
        if self.server is None:
            return None
        return f"http://{self.host}:{self.server.server_port}/metrics"

    def spider_opened(self, spider: Any) -> None:
        try:
            self.server, _ = start_http_server(self.port, addr=self.host)
        except OSError as error:
            logger.error("Prometheus metrics not served on %s:%s: %s", self.host, self.port, error)
            return
        logger.info("Prometheus metrics at %s", self.url)

    def spider_closed(self, spider: Any) -> None:
        # Runs after the pipelines' close_spider: the final flush is already counted.
        if self.pushgateway_url:
            try:
                metrics.push(self.pushgateway_url, self.job)
                logger.info("Pushed metrics to the Pushgateway as job %s", self.job)
            except OSError as error:
                logger.error("Could not push metrics to the Pushgateway: %s", error)
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None
