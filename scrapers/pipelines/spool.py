"""Spool files: items the database pipeline could not store, kept for the importer to replay.

One JSON object per line, the shape ``scrapy crawl -O items.jsonl`` writes, so
``python scripts/import_tracks.py --format jsonl FILE`` replays a spool file. A file is opened
once, appended to batch by batch, and flushed and fsync'd after every batch: a ``kill -9`` (or
a power cut) after ``append`` returns loses nothing of what it wrote. A kill during an append
can leave one partial last line, which the importer rejects as not JSON; its items had not
been acknowledged as saved.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from scrapers.db.write.payload import payload_text


class Spool:
    """An append-only spool file ``<directory>/<name>-<UTC time><suffix>.jsonl``, created on
    the first append. Appends from several threads are serialised."""

    def __init__(self, directory: Path, name: str, suffix: str = "") -> None:
        self.directory = directory
        self.name = name
        self.suffix = suffix
        self.path: Path | None = None
        self.count = 0
        self._file: IO[str] | None = None
        self._lock = threading.Lock()

    def append(self, items: Iterable[Any]) -> int:
        """Write ``items`` durably; returns how many were written."""
        text = "".join(payload_text(item) + "\n" for item in items)
        if not text:
            return 0
        written = text.count("\n")
        with self._lock:
            if self._file is None:
                self._open()
            assert self._file is not None
            self._file.write(text)
            self._file.flush()
            os.fsync(self._file.fileno())
            self.count += written
        return written

    def close(self) -> bool:
        """Close the file; whether it was open."""
        with self._lock:
            if self._file is None:
                return False
            self._file.close()
            self._file = None
            return True

    def _open(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        path = (self.directory / f"{self.name}-{stamp}{self.suffix}.jsonl").resolve()
        self._file = path.open("a", encoding="utf-8")
        # The file's name must survive a crash too, not only its contents.
        directory = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
        self.path = path
