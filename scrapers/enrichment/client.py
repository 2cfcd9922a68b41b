"""What every source client shares: cache, rate limit, retries with backoff, circuit breaker.

Clients are synchronous and run in worker threads (the pipeline hands them to a thread pool, the
service runs them in its own). One ``get_json`` call is one logical request: it is answered
from the cache when fresh, otherwise sent under the source's rate limiter, retried on 429, 503,
other 5xx and network errors (honouring ``Retry-After``), never retried on other 4xx, and
counted by the circuit breaker as one success or one failure.
"""

from __future__ import annotations

import json
import logging
import time
import urllib.error
import urllib.parse
import urllib.request
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from enum import Enum
from typing import Any

from scrapers import metrics
from scrapers.enrichment.breaker import CircuitBreaker, CircuitOpenError
from scrapers.enrichment.cache import CachedAnswer, ResponseCache
from scrapers.enrichment.config import EnrichmentConfig
from scrapers.enrichment.matching import Candidate
from scrapers.enrichment.ratelimit import RateLimiter, SlotLimiter

logger = logging.getLogger(__name__)

# An answer larger than this is not a track lookup; refuse it rather than parse it.
MAX_RESPONSE_BYTES = 2 * 1024 * 1024


class SourceError(RuntimeError):
    """A source could not answer this request."""


class SourceUnavailableError(SourceError):
    """Throttled, failing or unreachable after every retry, or its circuit is open."""


class SourceRequestError(SourceError):
    """The source refused the request itself (a 4xx other than "not found"); not retried."""


class Outcome(Enum):
    FOUND = "found"
    NOT_FOUND = "not_found"
    THROTTLED = "throttled"  # retry after a pause that holds every thread
    RETRY = "retry"  # server trouble: retry after a backoff
    UNAUTHORISED = "unauthorised"  # token expired: refresh, then retry at once
    REFUSED = "refused"


@dataclass(frozen=True)
class Answer:
    status: int
    body: Any
    from_cache: bool = False

    @property
    def found(self) -> bool:
        return self.status == 200


@dataclass(frozen=True)
class RawResponse:
    status: int
    headers: Any  # email.message.Message: case-insensitive .get()
    body: Any  # parsed JSON, or None when the body was not JSON


class SourceClient(ABC):
    """Base class; subclasses set ``name`` and may override ``classify`` and ``auth_headers``."""

    name = ""

    def __init__(
        self,
        config: EnrichmentConfig,
        *,
        cache: ResponseCache | None = None,
        limiter: SlotLimiter | None = None,
        breaker: CircuitBreaker | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        source = config.sources[self.name]
        self.config = config
        self.base_url = source.base_url
        self.cache_ttl = source.cache_ttl
        self.cache = cache
        self.limiter: SlotLimiter = limiter or RateLimiter(source.rate, sleep=sleep)
        self.breaker = breaker or CircuitBreaker(
            self.name,
            failure_threshold=config.breaker_failures,
            reset_timeout=config.breaker_reset,
        )
        self._sleep = sleep

    def get_json(self, path: str, params: Mapping[str, str], *, refresh: bool = False) -> Answer:
        """GET ``base_url + path``; a fresh cached answer unless ``refresh``."""
        request_key = f"{path}?{urllib.parse.urlencode(sorted(params.items()))}"
        if self.cache is not None and not refresh:
            cached = self.cache.get(self.name, request_key)
            if cached is not None:
                metrics.ENRICHMENT_CACHE_HITS.labels(self.name).inc()
                return Answer(cached.status, cached.body, from_cache=True)
        answer = self._call(self.base_url + request_key)
        if self.cache is not None:
            ttl = (
                self.cache_ttl
                if answer.found
                else min(self.cache_ttl, self.config.negative_cache_ttl)
            )
            self.cache.put(self.name, request_key, CachedAnswer(answer.status, answer.body), ttl)
        return answer

    @abstractmethod
    def lookup_isrc(self, isrc: str, *, refresh: bool = False) -> list[Candidate]:
        """Recordings the source files under this (valid, normalised) ISRC."""

    @abstractmethod
    def search(self, artist: str, title: str, *, refresh: bool = False) -> list[Candidate]:
        """Recordings the source finds for this artist and title, unranked."""

    def details(self, candidate: Candidate, *, refresh: bool = False) -> Candidate | None:
        """The complete record of a search result; most sources return it complete already."""
        return candidate

    def classify(self, response: RawResponse) -> Outcome:
        """Map a response to what to do with it; sources with odd error shapes override this."""
        status = response.status
        if status == 200 and response.body is not None:
            return Outcome.FOUND
        if status == 404:
            return Outcome.NOT_FOUND
        if status in (429, 503):
            return Outcome.THROTTLED
        if status >= 500 or status == 200:  # 200 without JSON: a proxy page, not the API
            return Outcome.RETRY
        if status == 401:
            return Outcome.UNAUTHORISED
        return Outcome.REFUSED

    def status_label(self, response: RawResponse) -> str:
        """The ``status`` label of ``enrichment_requests_total`` for this response."""
        return str(response.status)

    def auth_headers(self, *, renew: bool = False) -> dict[str, str]:
        """Headers that authorise a request; ``renew`` after a 401. None by default."""
        return {}

    def _call(self, url: str) -> Answer:
        try:
            self.breaker.before_call()
        except CircuitOpenError as error:
            metrics.ENRICHMENT_CIRCUIT_OPEN.labels(self.name).inc()
            raise SourceUnavailableError(str(error)) from error
        try:
            answer = self._call_with_retries(url)
        except SourceUnavailableError:
            self.breaker.record_failure()
            raise
        except SourceRequestError:
            self.breaker.record_success()  # it answered: alive, just not willing
            raise
        self.breaker.record_success()
        return answer

    def _call_with_retries(self, url: str) -> Answer:
        renewed = renew_now = False
        attempt = 0
        while True:
            attempt += 1
            waited = self.limiter.acquire()
            if waited:
                metrics.ENRICHMENT_RATE_LIMIT_WAIT.labels(self.name).inc(waited)
            try:
                response = self.send("GET", url, headers=self.auth_headers(renew=renew_now))
                renew_now = False
            except (urllib.error.URLError, OSError) as error:
                metrics.ENRICHMENT_REQUESTS.labels(self.name, "network_error").inc()
                outcome, response, reason = Outcome.RETRY, None, f"network error: {error}"
            else:
                metrics.ENRICHMENT_REQUESTS.labels(self.name, self.status_label(response)).inc()
                outcome, reason = self.classify(response), f"HTTP {response.status}"
            if outcome in (Outcome.FOUND, Outcome.NOT_FOUND):
                assert response is not None
                return Answer(200 if outcome is Outcome.FOUND else 404, response.body)
            if outcome is Outcome.REFUSED:
                raise SourceRequestError(f"{self.name} refused the request ({reason})")
            if outcome is Outcome.UNAUTHORISED:
                if renewed:
                    raise SourceRequestError(f"{self.name} refused our credentials ({reason})")
                renewed = renew_now = True
                continue
            if attempt >= self.config.max_attempts:
                raise SourceUnavailableError(
                    f"{self.name} still failing after {attempt} attempts ({reason})"
                )
            delay = self._retry_delay(attempt, response)
            logger.info("%s: %s, retrying in %.1fs", self.name, reason, delay)
            if outcome is Outcome.THROTTLED:
                self.limiter.hold(delay)
            else:
                self._sleep(delay)

    def _retry_delay(self, attempt: int, response: RawResponse | None) -> float:
        """``Retry-After`` when the source sent one, else exponential backoff; both capped."""
        retry_after = parse_retry_after(response.headers.get("Retry-After")) if response else None
        delay = (
            retry_after
            if retry_after is not None
            else self.config.backoff_base * 2 ** (attempt - 1)
        )
        return min(delay, self.config.max_retry_after)

    def send(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        data: bytes | None = None,
    ) -> RawResponse:
        """One HTTP exchange; HTTP errors come back as responses, network errors raise."""
        request = urllib.request.Request(url, data=data, method=method)
        request.add_header("User-Agent", self.config.user_agent)
        request.add_header("Accept", "application/json")
        for header, value in (headers or {}).items():
            request.add_header(header, value)
        try:
            with urllib.request.urlopen(request, timeout=self.config.timeout) as reply:
                return _raw_response(reply.status, reply.headers, reply)
        except urllib.error.HTTPError as error:
            with error:
                return _raw_response(error.code, error.headers, error)


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header: delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, moment.timestamp() - time.time())


def _raw_response(status: int, headers: Any, stream: Any) -> RawResponse:
    payload = stream.read(MAX_RESPONSE_BYTES + 1)
    if len(payload) > MAX_RESPONSE_BYTES:
        return RawResponse(status, headers, None)
    try:
        body = json.loads(payload) if payload else None
    except (UnicodeDecodeError, json.JSONDecodeError):
        body = None
    return RawResponse(status, headers, body)
