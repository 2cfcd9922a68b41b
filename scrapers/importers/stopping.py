"""Hearing SIGINT and SIGTERM while PostgreSQL runs a statement of the import.

The import's handler raises ``KeyboardInterrupt``, but Python runs a handler only between
bytecodes: while psycopg2 waits in C for a statement (``--bulk``'s INSERT of a whole file can run
for minutes, a trigger or a slow disk can stretch any statement), the interrupt waits with it,
and a supervisor's ``kill -9`` comes first. psycopg2's wait callbacks
(``psycopg2.extras.wait_select``, which cancels on ``KeyboardInterrupt``) are no way out: they put
every connection of the process in asynchronous mode, where COPY, the writer's main tool, is
refused, and they act only in the thread that received the signal, not the writer's.

So this thread watches the signals through Python's wakeup file descriptor, which the C-level
handler writes at once whatever the main thread is doing, and calls ``on_signal`` from here; the
importer answers with ``connection.cancel()`` (``Importer.interrupt``). The ``KeyboardInterrupt``
still reaches the main thread, as soon as the cancelled statement returns.
"""

from __future__ import annotations

import os
import select
import signal
import threading
import time
from collections.abc import Callable

# After a signal, ``on_signal`` is called again this often until the run ends: a cancel that
# reaches the server between two statements is lost, the next call cancels the next statement.
REPEAT_SECONDS = 0.5


class SignalWatcher:
    """While the ``with`` block runs, calls ``on_signal(seconds since the first signal, signals
    so far)`` from a thread of its own: at once on each SIGINT or SIGTERM, then every
    ``REPEAT_SECONDS``.

    The signals' handlers are the caller's; this only listens. Enter it in the main thread
    (``signal.set_wakeup_fd`` must be called there).
    """

    def __init__(self, on_signal: Callable[[float, int], None]) -> None:
        self.on_signal = on_signal
        self._wakeup = os.pipe()
        self._stop = os.pipe()
        self._previous_fd = -1
        self._thread = threading.Thread(target=self._watch, name="signal-watcher", daemon=True)

    def __enter__(self) -> SignalWatcher:
        os.set_blocking(self._wakeup[1], False)
        self._previous_fd = signal.set_wakeup_fd(self._wakeup[1], warn_on_full_buffer=False)
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        signal.set_wakeup_fd(self._previous_fd)
        os.write(self._stop[1], b"x")
        self._thread.join()
        for fd in (*self._wakeup, *self._stop):
            os.close(fd)

    def _watch(self) -> None:
        first: float | None = None
        signals = 0
        while True:
            timeout = None if first is None else REPEAT_SECONDS
            ready, _, _ = select.select([self._wakeup[0], self._stop[0]], [], [], timeout)
            if self._stop[0] in ready:
                return
            if self._wakeup[0] in ready:
                received = os.read(self._wakeup[0], 64)
                signals += sum(number in (signal.SIGINT, signal.SIGTERM) for number in received)
                if not signals:
                    continue
                first = time.monotonic() if first is None else first
            if first is not None:
                self.on_signal(time.monotonic() - first, signals)
