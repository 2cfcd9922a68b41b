"""New row ids: UUIDs of version 7, made in this process without asking the database.

Pure (no database): the resolution of a batch names its new tracks with them.
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections.abc import Iterator

# The random part of new ids. ``os.urandom`` per id is a system call that releases the GIL;
# winning it back from a busy thread (the importer reading the next batch) made an id cost
# 17 us in an import instead of 3, and up to 0.45 ms. Seeded from the system's entropy, and
# again in a forked child, so that two processes never draw the same sequence.
_id_bits = random.Random()
_RANDOM_BITS = 74
# The random bits below the variant: the low half of the id.
_LOW_BITS = 62
# The last id made (milliseconds, random part): ids of the same millisecond count up from it.
_last_id = [0, 0]
_id_lock = threading.Lock()


def _after_fork() -> None:
    _id_bits.seed()
    _last_id[:] = [0, 0]


os.register_at_fork(after_in_child=_after_fork)


def new_id() -> str:
    """A UUID in RFC 9562's version 7 layout: milliseconds since 1970, then random bits.

    Ids created together sort together, so the primary-key and foreign-key indexes on them grow
    at their right edge instead of touching a random page of a large index for every row. They
    sort in the order they are made, within a millisecond too (RFC 9562's monotonic random
    method: the random part counts up from the last id's): a batch's tracks share one
    ``created_at``, and the title tier's "oldest track" falls back to the id.
    """
    return new_ids(1)[0]


def new_ids(count: int) -> list[str]:
    """``count`` ids made at once, in the order made: what ``new_id`` gives ``count`` times, for
    a quarter of its cost (one lock and clock read, the part they share formatted once), which a
    writer creating a hundred thousand tracks and artists pays per id."""
    with _id_lock:
        milliseconds = time.time_ns() // 1_000_000
        last_milliseconds, last_random = _last_id
        if milliseconds <= last_milliseconds:
            milliseconds, first = last_milliseconds, last_random + 1
        else:
            first = _id_bits.getrandbits(_RANDOM_BITS - 1)  # room left to count up
        _last_id[:] = [milliseconds, first + count - 1]
    ids: list[str] = []
    end = first + count
    while first < end:
        # Version 7 in bits 76-79, variant 0b10 in bits 62-63, the random part around them: the
        # high half is the same for every id until the low 62 random bits carry over.
        high = first >> _LOW_BITS
        stop = min(end, (high + 1) << _LOW_BITS)
        digits = f"{milliseconds << 16 | 0x7 << 12 | high:016x}"
        prefix = f"{digits[:8]}-{digits[8:12]}-{digits[12:]}-"
        variant = (0x2 - high) << _LOW_BITS  # replaces the high part's bits by the variant's
        ids += [
            f"{prefix}{low[:4]}-{low[4:]}"
            for low in map("{:016x}".format, range(first + variant, stop + variant))
        ]
        first = stop
    return ids


def id_stream(block: int = 256) -> Iterator[str]:
    """New ids one at a time for a caller that makes many, made ``block`` at a time
    (``new_ids``); an id is made when its block is, so a stream's ids sort in the order drawn."""
    while True:
        yield from new_ids(block)
