"""Readers of one item field each: the value in the column's type, or ``Rejected`` saying why.

An item's values are untrusted: text where a number belongs, a list where text belongs, text
longer than its column. Each reader takes the item (a plain dict) and a field's name and either
returns a value PostgreSQL accepts or raises ``Rejected``, so that one bad item is refused alone.
A reader given ``invalid`` treats an unusable value (an identifier that is not one, a number out
of range) as missing instead, and notes the raw value there for the track's metadata.
"""

from __future__ import annotations

import datetime as dt
import uuid as uuid_module
from collections.abc import Callable, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from scrapers import identity
from scrapers.statuses import RejectionCode

MAX_NAME_CHARS = 500
MAX_SHORT_CHARS = 200
MAX_URL_CHARS = 2048
MAX_LIST_ENTRIES = 100
MAX_METADATA_CHARS = 20_000
MAX_INT = 2**31 - 1
# A track's values, one rule for every path (the writer's validation, its columnar fast path,
# enrichment's reading of a source's answer): a BPM strictly between 0 and the column's bound,
# a duration of less than a day (longer is a typo or a whole set, not a recording).
MAX_BPM = 1000
MAX_DURATION_MS = 24 * 3600 * 1000

# How exports spell a flag; an empty cell is "not given".
_FLAG_TEXT = {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}
# Tuples, not unions: isinstance() checks a tuple faster, and these run for every field.
_TEXT_LIKE = (str, int, float)
_NUMBER_LIKE = (str, int, float, Decimal)


class Rejected(ValueError):
    """The item cannot be stored. ``code`` labels the metric; ``str()`` is the stored reason."""

    def __init__(self, code: RejectionCode, detail: str) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code


def text(fields: Mapping[str, Any], name: str, limit: int) -> str | None:
    """Stripped text of at most ``limit`` characters, None when empty; numbers become text."""
    value = fields.get(name)
    if value is None:
        return None
    if type(value) is not str:
        if isinstance(value, bool) or not isinstance(value, _TEXT_LIKE):
            raise Rejected(
                RejectionCode.WRONG_TYPE, f"{name} must be text, got {type(value).__name__}"
            )
        value = str(value)
    stripped = value.strip()
    if len(stripped) > limit:
        raise Rejected(
            RejectionCode.FIELD_TOO_LONG, f"{name} has {len(stripped)} characters (limit {limit})"
        )
    return stripped or None


def text_list(fields: Mapping[str, Any], name: str) -> list[str]:
    """Non-empty texts of a list (a lone text is a list of one), at most ``MAX_LIST_ENTRIES``."""
    value = fields.get(name)
    if value is None:
        return []
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list | tuple):
        raise Rejected(RejectionCode.WRONG_TYPE, f"{name} must be a list of text")
    if len(value) > MAX_LIST_ENTRIES:
        raise Rejected(RejectionCode.FIELD_TOO_LONG, f"{name} has {len(value)} entries")
    texts = [text({name: entry}, name, MAX_NAME_CHARS) for entry in value]
    return [entry for entry in texts if entry]


def integer(fields: Mapping[str, Any], name: str) -> int | None:
    """An integer PostgreSQL's ``integer`` holds; None when missing or empty."""
    value = fields.get(name)
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise Rejected(RejectionCode.WRONG_TYPE, f"{name} must be an integer, got bool")
    try:
        number = int(value)
    except (TypeError, ValueError) as error:
        raise Rejected(
            RejectionCode.WRONG_TYPE, f"{name} must be an integer, got {value!r:.40}"
        ) from error
    if abs(number) > MAX_INT:
        raise Rejected(RejectionCode.WRONG_VALUE, f"{name} {number} is out of range")
    return number


def boolean(fields: Mapping[str, Any], name: str) -> bool:
    """A flag the spider sets (a bool or 0/1); missing is False."""
    value = fields.get(name)
    if value is None:
        return False
    if not isinstance(value, (bool, int)):
        raise Rejected(RejectionCode.WRONG_TYPE, f"{name} must be true or false")
    return bool(value)


def flag(fields: Mapping[str, Any], name: str) -> bool | None:
    """True, false, or None when not given; exports write it as text ("true", "0", "no")."""
    value = fields.get(name)
    if value is None or isinstance(value, bool):
        return value
    if value == "":
        return None
    if isinstance(value, str) and value.strip().casefold() in _FLAG_TEXT:
        return _FLAG_TEXT[value.strip().casefold()]
    if type(value) is int and value in (0, 1):
        return bool(value)
    raise Rejected(RejectionCode.WRONG_TYPE, f"{name} must be true or false, got {value!r:.40}")


# Longer digit strings are parsed as decimals (and are out of every range anyway).
_WHOLE_NUMBER_DIGITS = 18


def number(
    fields: Mapping[str, Any], name: str, low: float, high: float, invalid: dict[str, Any]
) -> Decimal | None:
    """A number strictly between ``low`` and ``high``, to two decimals; else noted invalid."""
    value = fields.get(name)
    if type(value) is str and _whole_number_text(value):
        # Exports write whole numbers as text ("128", "215000"): no Decimal parse needed.
        value = int(value)
    elif value is None or value == "":
        return None
    elif isinstance(value, bool) or not isinstance(value, _NUMBER_LIKE):
        raise Rejected(
            RejectionCode.WRONG_TYPE, f"{name} must be a number, got {type(value).__name__}"
        )
    if type(value) is int and low < value < high:
        return Decimal(value)
    try:
        parsed = Decimal(str(value).strip())
    except InvalidOperation as error:
        raise Rejected(
            RejectionCode.WRONG_TYPE, f"{name} must be a number, got {value!r:.40}"
        ) from error
    if not parsed.is_finite() or not low < parsed < high:
        invalid[name] = value[:MAX_SHORT_CHARS] if isinstance(value, str) else value
        return None
    return round(parsed, 2)


def bounded_integer(
    fields: Mapping[str, Any], name: str, high: int, invalid: dict[str, Any]
) -> int | None:
    """A whole number strictly between 0 and ``high`` (a fraction is cut); else noted invalid."""
    value = fields.get(name)
    if type(value) is str and _whole_number_text(value):
        whole = int(value)
        if 0 < whole < high:
            return whole  # what ``number`` gives, without the Decimal
    parsed = number(fields, name, 0, high, invalid)
    return None if parsed is None else int(parsed)


def _whole_number_text(value: str) -> bool:
    """Digits only, and few enough for ``int`` (which refuses more than 4,300 of them)."""
    return len(value) <= _WHOLE_NUMBER_DIGITS and value.isdigit() and value.isascii()


def date(fields: Mapping[str, Any], name: str, invalid: dict[str, Any]) -> dt.date | None:
    """A date from ISO text (its first ten characters); a coarser one is noted invalid."""
    value = fields.get(name)
    if value is None or value == "":
        return None
    if isinstance(value, dt.date):
        return value
    if not isinstance(value, str):
        raise Rejected(
            RejectionCode.WRONG_TYPE, f"{name} must be an ISO date, got {type(value).__name__}"
        )
    try:
        return dt.date.fromisoformat(value.strip()[:10])
    except ValueError:
        # "2019" or "2019-05" (Spotify's coarse precision) or garbage: keep the raw text.
        invalid[name] = value[:MAX_SHORT_CHARS]
        return None


def timestamp(fields: Mapping[str, Any], name: str) -> dt.datetime | None:
    """A moment from ISO 8601 text that names its UTC offset; anything else is refused, since
    an ambiguous time would decide wrongly which of two fetches of a page is the newer."""
    value = fields.get(name)
    if value is None or value == "":
        return None
    if not isinstance(value, str | dt.datetime):
        raise Rejected(
            RejectionCode.WRONG_TYPE, f"{name} must be an ISO 8601 time, got {type(value).__name__}"
        )
    try:
        moment = value if isinstance(value, dt.datetime) else dt.datetime.fromisoformat(value[:64])
    except ValueError:
        raise Rejected(
            RejectionCode.WRONG_VALUE, f"{name} is not an ISO 8601 time: {value[:64]!r}"
        ) from None
    if moment.utcoffset() is None:
        raise Rejected(RejectionCode.WRONG_VALUE, f"{name} has no UTC offset: {str(value)[:64]!r}")
    return moment


def uuid(fields: Mapping[str, Any], name: str, invalid: dict[str, Any]) -> str | None:
    """A UUID in its canonical text; else noted invalid."""
    value = fields.get(name)
    if value is None or value == "":
        return None
    try:
        return str(uuid_module.UUID(str(value)))
    except ValueError:
        invalid[name] = str(value)[:MAX_SHORT_CHARS]
        return None


def identifier(
    fields: Mapping[str, Any],
    name: str,
    parse: Callable[[object], str | None],
    invalid: dict[str, Any],
) -> str | None:
    """An identifier as ``parse`` (``identity.parse_isrc``, …) normalises it; else noted invalid."""
    try:
        return parse(fields.get(name))
    except identity.InvalidIdentifier:
        invalid[name] = str(fields.get(name))[:MAX_SHORT_CHARS]
        return None


def choice(fields: Mapping[str, Any], name: str, allowed: tuple[str, ...]) -> str | None:
    """One of ``allowed``, or None when missing."""
    value = fields.get(name)
    if value is None:
        return None
    if value not in allowed:
        raise Rejected(RejectionCode.WRONG_VALUE, f"{name} must be one of {', '.join(allowed)}")
    return str(value)
