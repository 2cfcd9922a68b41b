"""New row ids: UUIDs of version 7, made in this process without asking the database.

Pure (no database): the resolution of a batch names its new tracks with them.
"""

from __future__ import annotations

import os
import random
import threading
import time

# The random part of new ids. ``os.urandom`` per id is a system call that releases the GIL;
# winning it back from a busy thread (the importer reading the next batch) made an id cost
# 17 us in an import instead of 3, and up to 0.45 ms. Seeded from the system's entropy, and
# again in a forked child, so that two processes never draw the same sequence.
_id_bits = random.Random()
_RANDOM_BITS = 74
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
    with _id_lock:
        milliseconds = time.time_ns() // 1_000_000
        last_milliseconds, last_random = _last_id
        if milliseconds <= last_milliseconds:
            milliseconds, bits = last_milliseconds, last_random + 1
        else:
            bits = _id_bits.getrandbits(_RANDOM_BITS - 1)  # room left to count up
        _last_id[:] = [milliseconds, bits]
    # Version 7 in bits 76-79, variant 0b10 in bits 62-63, the random part around them.
    value = milliseconds << 80 | 0x7 << 76 | (bits >> 62) << 64 | 0x2 << 62 | bits & (1 << 62) - 1
    digits = f"{value:032x}"
    return f"{digits[:8]}-{digits[8:12]}-{digits[12:16]}-{digits[16:20]}-{digits[20:]}"
