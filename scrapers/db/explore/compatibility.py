"""When two tracks mix: a BPM window and the Camelot wheel, written once.

Camelot keys: 1A–12A are minor, 1B–12B major. A key is compatible with itself, with the same
number in the other letter (relative major / minor), and with one step round the wheel in the
same letter: 8A mixes with 8A, 8B, 7A and 9A. Musical keys map onto the wheel one to one
("Am" is 8A, "C" is 8B, "F#m" and "Gbm" are 11A). A rule applies only where both tracks have the
value: an unknown BPM or key never blocks a step.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

WHEEL = 12
# The major key at each Camelot number (B), and the minor key (A), as pitch classes 0 = C.
_MAJOR_AT = {1: 11, 2: 6, 3: 1, 4: 8, 5: 3, 6: 10, 7: 5, 8: 0, 9: 7, 10: 2, 11: 9, 12: 4}
_MINOR_AT = {number: (pitch + 9) % 12 for number, pitch in _MAJOR_AT.items()}
_CAMELOT_OF = {("B", pitch): number for number, pitch in _MAJOR_AT.items()} | {
    ("A", pitch): number for number, pitch in _MINOR_AT.items()
}
_NOTES = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}
_ACCIDENTALS = {"#": 1, "♯": 1, "b": -1, "♭": -1, "": 0}
_CAMELOT = re.compile(r"^0?(1[0-2]|[1-9])\s*([ABab])$")
_MUSICAL = re.compile(
    r"^([A-Ga-g])\s*([#♯b♭]?)\s*(m|min|minor|maj|major|M)?$",
)
MAX_BPM_WINDOW = 50.0  # percent


@dataclass(frozen=True, order=True)
class CamelotKey:
    number: int  # 1..12
    letter: str  # "A" minor, "B" major

    def __str__(self) -> str:
        return f"{self.number}{self.letter}"


def camelot(key: str | None) -> CamelotKey | None:
    """``key`` ("8A", "08a", "Am", "A minor", "F#m", "Db", "C major") on the wheel; None if not
    a key."""
    if not key:
        return None
    text = " ".join(key.strip().split())
    match = _CAMELOT.match(text)
    if match:
        return CamelotKey(int(match.group(1)), match.group(2).upper())
    match = _MUSICAL.match(text.replace(" ", ""))
    if not match:
        return None
    note, accidental, mode = match.groups()
    pitch = (_NOTES[note.upper()] + _ACCIDENTALS[accidental]) % 12
    letter = "A" if mode in ("m", "min", "minor") else "B"
    return CamelotKey(_CAMELOT_OF[(letter, pitch)], letter)


def harmonic(first: CamelotKey, second: CamelotKey) -> bool:
    """True when ``second`` mixes harmonically after ``first`` (Camelot neighbours)."""
    if first.number == second.number:
        return True
    if first.letter != second.letter:
        return False
    step = (second.number - first.number) % WHEEL
    return step in (1, WHEEL - 1)


@dataclass(frozen=True)
class MixRules:
    """The set builder's optional rules for each step: BPM within ±``bpm_window`` percent of the
    track before, and a harmonic key. Both skip a step where either track lacks the value."""

    bpm_window: float | None = None
    harmonic_keys: bool = False

    def __post_init__(self) -> None:
        if self.bpm_window is not None and not 0 <= self.bpm_window <= MAX_BPM_WINDOW:
            raise ValueError(
                f"the BPM window must be between 0 and {MAX_BPM_WINDOW:g} %, got {self.bpm_window}"
            )

    @property
    def active(self) -> bool:
        return self.bpm_window is not None or self.harmonic_keys

    def allows(
        self, bpm: float | None, key: str | None, next_bpm: float | None, next_key: str | None
    ) -> bool:
        """True when a track (``bpm``, ``key``) may be followed by (``next_bpm``, ``next_key``)."""
        window = self.bpm_window
        if window is not None and bpm and next_bpm and abs(next_bpm - bpm) > bpm * window / 100:
            return False
        if self.harmonic_keys:
            first, second = camelot(key), camelot(next_key)
            if first and second and not harmonic(first, second):
                return False
        return True
