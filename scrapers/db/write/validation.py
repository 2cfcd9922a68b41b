"""Validation of a batch's items, in this process or in a pool process (bulk loads).

Only records and refusals travel back from the pool; the items stay with the caller, which keeps
them to reject one later by bisection.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.connection
import os
import signal
import threading
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any, NamedTuple

from scrapers.db.write import records
from scrapers.db.write.fields import Rejected
from scrapers.db.write.garbage import collect_rarely
from scrapers.db.write.payload import Payload, payload_text


class Entry(NamedTuple):
    """A validated item with where it came from, kept for a rejection after a split."""

    record: records.Record
    location: str | None
    item: Any


@dataclass
class Rejection:
    location: str | None
    code: str
    reason: str
    payload: Payload


Validated = tuple[list[tuple[int, records.Record]], list[Rejection]]


def validate(
    items: Sequence[Any],
    locations: Sequence[str | None] | None,
    validated: Sequence[records.TrackRecord | None] | None = None,
) -> Validated:
    """Every item's record with its index in ``items``, and the refusals with their reasons;
    ``validated`` holds the records already made (in columns: ``importers.columnar``).

    A module-level function of plain data, so that ``validation_pool`` can run it in another
    process; only the records travel back, the items stay with the caller.
    """
    valid: list[tuple[int, records.Record]] = []
    rejections: list[Rejection] = []
    for index, item in enumerate(items):
        if validated is not None and (record := validated[index]) is not None:
            valid.append((index, record))
            continue
        try:
            valid.append((index, records.to_record(item)))
        except Rejected as error:
            location = locations[index] if locations else None
            rejections.append(Rejection(location, error.code, str(error), payload_of(item)))
    return valid, rejections


def payload_of(item: Any) -> Payload:
    return Payload.of(payload_text(item))


def validation_pool() -> ProcessPoolExecutor:
    """One process that validates batches while this one reads and writes (bulk loads).

    Validation is about a third of an import's Python time, and one process holds one core's
    worth of Python. The worker ignores Ctrl-C and SIGTERM: the importer decides when to stop,
    and batches already handed over must still be validated to be committed. It exits when its
    parent does, however that ends (a killed importer would otherwise leave it waiting).
    The caller's main module must be importable without side effects (multiprocessing's
    "spawn": ``if __name__ == "__main__":``), as ``scripts/import_tracks.py`` is.
    """
    return ProcessPoolExecutor(
        max_workers=1,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_start_validation_worker,
    )


def _start_validation_worker() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    collect_rarely()
    parent = multiprocessing.parent_process()
    if parent is not None:
        threading.Thread(target=_exit_with, args=(parent.sentinel,), daemon=True).start()


def _exit_with(parent_sentinel: int) -> None:
    """Wait for the parent process to end, then end this one at once."""
    multiprocessing.connection.wait([parent_sentinel])
    os._exit(1)


def entries(
    validated: Validated, items: Sequence[Any], locations: Sequence[str | None] | None
) -> tuple[list[Entry], list[Rejection]]:
    valid, rejections = validated
    entries = [
        Entry(record, locations[index] if locations else None, items[index])
        for index, record in valid
    ]
    return entries, rejections
