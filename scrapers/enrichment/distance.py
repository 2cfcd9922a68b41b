"""How much a source's recording resembles a track: pure functions, no I/O, tested by tables.

A score is title similarity x artist similarity x a duration factor, each in 0..1. Two rules are
decisive rather than graded, because a near miss on them is a different recording with another
ISRC: the version (a live take, an edit, a remix, a video) must be the same on both sides, and a
recording the source marks as a video or disambiguates as live, demo, single version... names
that version even when its title does not. Names are compared through ``scrapers.identity``.

Similarity is rapidfuzz's token-sort ratio: word order and punctuation do not move it, every
word counts (a missing or a repeated word costs), and it runs in C.
"""

from __future__ import annotations

from rapidfuzz import fuzz

from scrapers.identity import credited_names, described_version, fold_text, split_version

# Durations within this many ms count as the same recording; beyond the outer bound the
# candidate is worthless, and in between its score falls linearly.
DURATION_SAME_MS = 3_000
DURATION_DIFFERENT_MS = 30_000
# Each credited artist on one side only (a featured guest the other side lacks) costs this
# much, so "A ft. B" and A's solo recording of the same title never tie.
UNSHARED_ARTIST_COST = 0.1
MIN_CREDIT_FACTOR = 0.5


def similarity(left: str, right: str) -> float:
    """0..1 resemblance of two names or titles, word order ignored."""
    left, right = fold_text(left), fold_text(right)
    if not left or not right:
        return 0.0
    return fuzz.token_sort_ratio(left, right) / 100


def stated_version(disambiguation: str = "", video: bool = False) -> frozenset[str]:
    """The version a source states outside a recording's title: its description, "video"."""
    words = described_version(disambiguation)
    return words | {"video"} if video else words


def title_similarity(
    wanted: str, offered: str, offered_extra: frozenset[str] = frozenset()
) -> float:
    """0 when the versions differ, else the resemblance of the titles less their version words.

    ``offered_extra``: version words the source states outside the title (``stated_version``).
    "(Original Mix)" names no version, so "Strobe (Original Mix)" equals "Strobe".
    """
    wanted_core, wanted_version = split_version(wanted)
    offered_core, version = split_version(offered)
    if wanted_version != version | offered_extra:
        return 0.0
    return similarity(wanted_core, offered_core)


def artist_similarity(
    wanted: str, offered: str, wanted_title: str = "", offered_title: str = ""
) -> float:
    """Resemblance of two credits, every credited artist counted.

    The base is the share of wanted primary artists the offer credits (sources write "A & B",
    "A, B" or "A feat. B" for the same pair) or the whole credits' resemblance (spellings),
    whichever is higher. Each artist credited on one side only, featured guests included (from
    the credit or a "(feat. X)" in the title), then costs ``UNSHARED_ARTIST_COST``.
    """
    wanted_primary, wanted_featured = credited_names(wanted, wanted_title)
    offered_primary, offered_featured = credited_names(offered, offered_title)
    wanted_all, offered_all = wanted_primary | wanted_featured, offered_primary | offered_featured
    shared = len(wanted_primary & offered_all) / len(wanted_primary) if wanted_primary else 0.0
    base = max(similarity(wanted, offered), shared)
    unshared = (wanted_all ^ offered_all) - wanted_primary
    return base * max(MIN_CREDIT_FACTOR, 1 - UNSHARED_ARTIST_COST * len(unshared))


def duration_factor(wanted_ms: int | None, offered_ms: int | None) -> float:
    if not wanted_ms or not offered_ms:
        return 1.0
    gap = abs(wanted_ms - offered_ms)
    if gap <= DURATION_SAME_MS:
        return 1.0
    return max(0.0, 1 - (gap - DURATION_SAME_MS) / (DURATION_DIFFERENT_MS - DURATION_SAME_MS))
