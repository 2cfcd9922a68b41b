"""A per-source rate limiter shared by every thread that talks to that source.

Each caller reserves the next free slot under a lock and then sleeps outside it, so the slots
handed out are spaced exactly ``1 / rate`` apart however many threads wait. A throttling answer
from the source (503, 429, Deezer's quota error) pushes every later slot back with ``hold``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class RateLimiter:
    def __init__(
        self,
        rate: float,
        *,
        burst: int = 1,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be > 0 and burst >= 1")
        self.interval = 1.0 / rate
        self._tolerance = (burst - 1) * self.interval
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        # Theoretical arrival time of the next request (GCRA); starts "now" so the first call
        # never waits.
        self._next_slot = float("-inf")
        self._held_until = float("-inf")
        self.waited_seconds = 0.0
        self.acquired = 0

    def acquire(self) -> float:
        """Block until this caller may send one request; returns the seconds waited."""
        with self._lock:
            now = self._clock()
            start = max(now, self._next_slot - self._tolerance, self._held_until)
            self._next_slot = max(self._next_slot, start) + self.interval
            wait = start - now
            self.waited_seconds += wait
            self.acquired += 1
        if wait > 0:
            self._sleep(wait)
        return wait

    def hold(self, seconds: float) -> None:
        """No slot starts within ``seconds`` from now (the source asked us to back off)."""
        with self._lock:
            self._held_until = max(self._held_until, self._clock() + seconds)
