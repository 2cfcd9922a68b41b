"""The soak's site: ``tests.sitegen``'s generated site, misbehaving as the real one does.

Each answer to a listing or tracklist page may be, instead of the page:

- ``5xx``: a 500, 502, 503 or 504 with a short body;
- ``block``: one of the site's non-content pages the spider recognises (the "please wait"
  interstitial, "IP limited due to overuse", a captcha), with status 200;
- ``slow``: the page, after 0.5 to 3 s;
- ``truncated``: half the page: either its headers announce the whole length and the
  connection closes after half of it (a reset mid-transfer), or the half is all there is and
  its length says so (an origin that died mid-render behind a buffering proxy).

The choice is a function of the seed, the path and how many times that path was asked for,
so a run with the same seed meets the same faults at the same step of each page's history,
whichever worker asks. A page never fails (5xx, block, truncated) more than
``max_faults_in_row`` times in a row: Scrapy's default retry budget (2 retries) then always
gets it through, so a page lost is the crawler's doing, not the site's.
"""

from __future__ import annotations

import hashlib
import sys
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

from tests.sitegen import GeneratedSite, Tracklist

FIXTURES = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "1001tracklists"
BLOCK_PAGES = ("blocked_interstitial.html", "blocked_ip_limit.html", "blocked_captcha.html")
# Share of page answers given each fault, in this order (the rest are served normally).
FAULT_RATES = {"5xx": 0.04, "block": 0.03, "slow": 0.03, "truncated": 0.03}
FAILURES = frozenset({"5xx", "block", "truncated"})


class ChaosSite(GeneratedSite):
    """``faults_on`` switches the misbehaviour (off for the clean reference crawl);
    ``faults_served`` counts what was served."""

    def __init__(
        self, tracklists: list[Tracklist], seed: int, per_page: int = 20,
        max_faults_in_row: int = 2,
    ) -> None:  # fmt: skip
        super().__init__(tracklists, per_page)
        self.seed = seed
        self.max_faults_in_row = max_faults_in_row
        self.faults_on = False
        self.faults_served: Counter[str] = Counter()
        self._asked: Counter[str] = Counter()
        self._failed_in_row: Counter[str] = Counter()
        self._fault_lock = threading.Lock()
        self._block_bodies = [(FIXTURES / name).read_bytes() for name in BLOCK_PAGES]
        self._report_error = self.server.handle_error
        self.server.handle_error = self._handle_error  # type: ignore[method-assign]

    def _handle_error(self, request: Any, client_address: Any) -> None:
        """A worker killed while its answer was on the way is the soak working, not an error."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            self._report_error(request, client_address)

    def fault_for(self, path: str) -> tuple[str, float]:
        """The fault this request of ``path`` gets ("" for none) and a uniform draw in [0, 1)
        that picks its details."""
        if not self.faults_on or not path.startswith(("/tracklist/", "/tracklists/")):
            return "", 0.0
        with self._fault_lock:
            attempt = self._asked[path]
            self._asked[path] += 1
            digest = hashlib.sha256(f"{self.seed}:{path}:{attempt}".encode()).digest()
            draw = int.from_bytes(digest[:8], "big") / 2**64
            detail = int.from_bytes(digest[8:16], "big") / 2**64
            fault, edge = "", 0.0
            for kind, rate in FAULT_RATES.items():
                edge += rate
                if draw < edge:
                    fault = kind
                    break
            if fault in FAILURES:
                if self._failed_in_row[path] >= self.max_faults_in_row:
                    fault = ""
                else:
                    self._failed_in_row[path] += 1
            if fault not in FAILURES:
                self._failed_in_row[path] = 0
            if fault:
                self.faults_served[fault] += 1
            return fault, detail

    def respond(self, handler: BaseHTTPRequestHandler) -> None:
        fault, detail = self.fault_for(handler.path)
        if fault == "5xx":
            self.send(
                handler,
                b"<html><body>Server error</body></html>",
                (500, 502, 503, 504)[int(detail * 4)],
            )
            return
        if fault == "block":
            self.send(handler, self._block_bodies[int(detail * len(self._block_bodies))])
            return
        if fault == "slow":
            time.sleep(0.5 + 2.5 * detail)
        body = self.answer(handler.path)
        if fault != "truncated" or body is None:
            self.send(handler, body)
            return
        half = body[: len(body) // 2]
        if detail >= 0.5:
            self.send(handler, half)
            return
        handler.send_response(200)
        handler.send_header("Content-Type", "text/html; charset=utf-8")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(half)
        handler.wfile.flush()
        handler.close_connection = True
