"""Write a synthetic catalogue for the import benchmark: mixed identifiers, a share of repeats.

Rows are distinct tracks except for ``--repeat-share`` of them, which name a track written
earlier: half as an identical row, half spelled differently (hyphenated ISRC, Spotify URI instead
of a bare id, other letter case), as exports from different tools would. Of the distinct tracks,
40% carry an ISRC, 30% only a Spotify ID and 30% neither (title tier). Deterministic per seed.
``--variant`` N > 0 writes the same rows (the same tracks, spellings, identifiers and repeats)
with other descriptive values (duration, BPM, label, release date): an export of tracks the
catalogue holds, whose values changed since.

    python -m bench.generate_import_file catalogue.csv --rows 1000000
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import random
import string
import sys
from pathlib import Path

HEADER = ["artist", "title", "isrc", "spotify_id", "duration_ms", "bpm", "label", "release_date"]
WORDS = ("night", "drive", "echo", "summer", "deep", "signal", "ghost", "pulse", "neon", "wave")
VERSIONS = ("", "", "", " (Extended Mix)", " (Radio Edit)", " (Dub)", " (VIP)")
_BASE62 = string.ascii_letters + string.digits


def track(number: int, seed: int, variant: int = 0) -> list[str]:
    """Distinct track ``number``: its identifiers derive from the number, so they never clash;
    ``variant`` draws its descriptive values anew (its name and identifiers stay)."""
    rng = random.Random(seed * 1_000_003 + number)
    kind = number % 10
    letters = f"{chr(65 + number % 26)}{chr(65 + number // 26 % 26)}"
    isrc = f"QZ{letters}{number // 10_000_000 % 10}{number % 10_000_000:07d}" if kind < 4 else ""
    spotify = _spotify_id(number) if 4 <= kind < 7 or (kind < 4 and number % 3 == 0) else ""
    artist = f"{rng.choice(WORDS).title()} {rng.choice(WORDS).title()} {number % 50_000}"
    title = f"{rng.choice(WORDS).title()} {rng.choice(WORDS)} {number}{rng.choice(VERSIONS)}"
    if variant:
        rng = random.Random((seed * 1_000_003 + number) * 1_009 + variant)
    return [
        artist,
        title,
        isrc,
        spotify,
        str(rng.randint(120_000, 480_000)),
        str(rng.randint(90, 175)),
        f"{rng.choice(WORDS).title()} Records",
        f"{rng.randint(1990, 2025)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
    ]


def respelled(row: list[str]) -> list[str]:
    """The same track as another tool would write it."""
    artist, title, isrc, spotify, *rest = row
    if isrc:
        isrc = f"{isrc[:2]}-{isrc[2:5]}-{isrc[5:7]}-{isrc[7:]}"
    if spotify:
        spotify = f"spotify:track:{spotify}"
    if not isrc and not spotify:
        artist, title = artist.upper(), title.lower()
    return [artist, title, isrc, spotify, *rest]


def _spotify_id(number: int) -> str:
    value = int.from_bytes(hashlib.blake2b(b"%d" % number, digest_size=16).digest(), "big")
    digits = []
    for _ in range(22):
        value, digit = divmod(value, 62)
        digits.append(_BASE62[digit])
    return "".join(digits)


def generate(path: Path, rows: int, repeat_share: float, seed: int, variant: int = 0) -> None:
    rng = random.Random(seed)
    distinct = 0
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(HEADER)
        for _ in range(rows):
            if distinct and rng.random() < repeat_share:
                earlier = track(rng.randrange(distinct), seed, variant)
                writer.writerow(earlier if rng.random() < 0.5 else respelled(earlier))
                continue
            writer.writerow(track(distinct, seed, variant))
            distinct += 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", type=Path)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat-share", type=float, default=0.3)
    parser.add_argument("--seed", type=int, default=6)
    parser.add_argument("--variant", type=int, default=0, help="other descriptive values")
    args = parser.parse_args(argv)
    generate(args.path, args.rows, args.repeat_share, args.seed, args.variant)
    return 0


if __name__ == "__main__":
    sys.exit(main())
