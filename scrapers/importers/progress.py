"""Import progress: a redrawn bar on a terminal, plain periodic log lines otherwise.

The fraction done is measured in bytes of input (known up front from the file sizes), so the ETA
needs no counting pass over a file of millions of rows; the rate is in rows.
"""

from __future__ import annotations

import logging
import shutil
import sys
import time
from collections.abc import Callable
from typing import TextIO

logger = logging.getLogger("scrapers.importers")

BAR_REDRAW_SECONDS = 0.2


def format_duration(seconds: float) -> str:
    seconds = max(0, int(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}"


class Progress:
    """Call ``update`` as often as convenient; output is throttled to the chosen cadence."""

    def __init__(
        self,
        total_bytes: int,
        *,
        stream: TextIO | None = None,
        interactive: bool | None = None,
        log_every: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.total_bytes = max(total_bytes, 1)
        self.stream = stream or sys.stderr
        self.interactive = self.stream.isatty() if interactive is None else interactive
        self.every = BAR_REDRAW_SECONDS if self.interactive else log_every
        self.clock = clock
        self.started = clock()
        self.last_shown = self.started
        self.rows = 0
        self.bytes_done = 0
        self._waited = False

    def update(self, rows: int, bytes_done: int) -> None:
        self.rows, self.bytes_done = rows, min(bytes_done, self.total_bytes)
        now = self.clock()
        if now - self.last_shown >= self.every:
            self.last_shown = now
            self._show(now)

    def waiting(self, seconds: float, holders: int) -> None:
        """A bulk load waiting for the catalogue's tables: said at once, then at the cadence."""
        self._say_waiting(
            f"bulk load waiting for the catalogue's tables: {holders} other session(s) hold"
            f" them, waited {format_duration(seconds)}"
        )

    def writes_waiting(self, seconds: float, holders: int) -> None:
        """A batch waiting for other writers' locks (say, behind a bulk import): the same."""
        self._say_waiting(
            f"writes waiting for the catalogue's locks: {holders} other session(s) hold them"
            f" (an import with --bulk holds them until it commits), waited"
            f" {format_duration(seconds)}"
        )

    def step(self, text: str) -> None:
        """The step a bulk load is at (``bulk.OnStep``): said at once, each step being one or a
        few statements that may run for minutes with nothing else to show (after the last row
        is read the bar stays at 100%)."""
        self.last_shown = self.clock()
        self._say(
            f"bulk load: {text} ({self.rows:,} rows read,"
            f" {format_duration(self.last_shown - self.started)} in)"
        )

    def _say_waiting(self, text: str) -> None:
        now = self.clock()
        if self._waited and now - self.last_shown < self.every:
            return
        self._waited, self.last_shown = True, now
        self._say(text)

    def _say(self, text: str) -> None:
        """``text`` as a log line, or on a terminal in place of the bar."""
        if not self.interactive:
            logger.info("import progress: %s", text)
            return
        width = shutil.get_terminal_size((80, 20)).columns
        self.stream.write("\r" + text[: width - 1].ljust(width - 1))
        self.stream.flush()

    def close(self) -> None:
        """Show the final state; on a terminal, end the bar's line."""
        if self.interactive:
            self._show(self.clock())
            self.stream.write("\n")
            self.stream.flush()

    def line(self, now: float) -> str:
        elapsed = max(now - self.started, 1e-9)
        fraction = self.bytes_done / self.total_bytes
        rate = self.rows / elapsed
        eta = elapsed * (1 - fraction) / fraction if fraction > 0 else None
        eta_text = format_duration(eta) if eta is not None else "?"
        return f"{fraction:4.0%}  {self.rows:,} rows  {rate:,.0f} rows/s  ETA {eta_text}"

    def _show(self, now: float) -> None:
        text = self.line(now)
        if not self.interactive:
            logger.info("import progress: %s", text)
            return
        width = shutil.get_terminal_size((80, 20)).columns
        bar_width = max(10, min(40, width - len(text) - 5))
        filled = round(bar_width * self.bytes_done / self.total_bytes)
        bar = "#" * filled + "-" * (bar_width - filled)
        self.stream.write("\r" + f"[{bar}] {text}"[: width - 1].ljust(width - 1))
        self.stream.flush()
