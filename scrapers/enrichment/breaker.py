"""A circuit breaker per source: a dead source costs one fast failure, not a stalled crawl.

After ``failure_threshold`` consecutive failed calls the circuit opens and every call fails at
once for ``reset_timeout`` seconds. Then one trial call is let through (half-open): success
closes the circuit, failure opens it for another period.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"


class CircuitOpenError(RuntimeError):
    """The source failed repeatedly; calls are refused until the reset timeout passes."""


class CircuitBreaker:
    def __init__(
        self,
        name: str,
        *,
        failure_threshold: int = 5,
        reset_timeout: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self.failure_threshold = failure_threshold
        self.reset_timeout = reset_timeout
        self._clock = clock
        self._lock = threading.Lock()
        self._state = CLOSED
        self._failures = 0
        self._opened_at = 0.0
        self._trial_in_flight = False

    @property
    def state(self) -> str:
        with self._lock:
            return self._current_state()

    def before_call(self) -> None:
        """Raise ``CircuitOpenError`` unless this call may go to the source."""
        with self._lock:
            state = self._current_state()
            if state == OPEN or (state == HALF_OPEN and self._trial_in_flight):
                raise CircuitOpenError(f"{self.name} circuit is open after repeated failures")
            if state == HALF_OPEN:
                self._trial_in_flight = True

    def record_success(self) -> None:
        with self._lock:
            self._state, self._failures, self._trial_in_flight = CLOSED, 0, False

    def record_failure(self) -> None:
        with self._lock:
            self._failures += 1
            if self._trial_in_flight or self._failures >= self.failure_threshold:
                self._state, self._opened_at = OPEN, self._clock()
            self._trial_in_flight = False

    def _current_state(self) -> str:
        if self._state == OPEN and self._clock() - self._opened_at >= self.reset_timeout:
            self._state = HALF_OPEN
        return self._state
