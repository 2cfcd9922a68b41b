"""Which stored tracklists a crawl fetches again, and how it recognises an unchanged page.

A tracklist is "known" when its setlist was stored from a whole page (``setlists.checked_at``
is set: the spider's setlist item comes after its rows, so a crash half-way leaves it unknown).
A known tracklist is fetched again only when the policy says it is due:

- a recent set (its date, else the day it was first stored, within ``recent_days``) every
  ``recent_every_days``: the site's community identifies "ID" rows in a set's first weeks;
- an older set that still holds "ID" rows every ``id_rows_every_days``, until it is
  ``id_rows_max_age_days`` old;
- any other set never.

``mode`` ("due", "all", "none": the ``refresh`` spider argument, else ``CRAWL_REFRESH``) can
fetch every known tracklist again or none of them.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from scrapers.db.known_setlists import StoredSetlist
from scrapers.metrics import SkipReason
from scrapers.settings_check import InvalidSetting, number

MODES = ("due", "all", "none")


DAY = dt.timedelta(days=1)
# The settings of the policy's periods, in the order of its fields.
DAY_SETTINGS = (
    "CRAWL_REFRESH_RECENT_DAYS",
    "CRAWL_REFRESH_RECENT_EVERY_DAYS",
    "CRAWL_REFRESH_ID_ROWS_EVERY_DAYS",
    "CRAWL_REFRESH_ID_ROWS_MAX_AGE_DAYS",
)


@dataclass(frozen=True)
class RefreshPolicy:
    mode: str
    recent_days: float
    recent_every_days: float
    id_rows_every_days: float
    id_rows_max_age_days: float

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any], mode: str | None) -> RefreshPolicy:
        """The policy of ``settings``; ``mode`` (the spider argument) overrides CRAWL_REFRESH.

        Raises ``InvalidSetting`` when a setting is not usable, ValueError for a bad ``mode``.
        """
        configured = settings.get("CRAWL_REFRESH")
        try:
            setting_mode = refresh_mode(configured)
            if setting_mode is None:
                raise ValueError(configured)
        except ValueError:
            raise InvalidSetting(
                "CRAWL_REFRESH", f"one of {', '.join(MODES)}", configured
            ) from None
        chosen = refresh_mode(mode) or setting_mode  # a bad argument: ValueError, as every -a
        days = [
            number(name, settings.get(name), maximum=36500, what="a number of days")
            for name in DAY_SETTINGS
        ]
        return cls(chosen, *days)

    def skip_reason(self, stored: StoredSetlist, now: dt.datetime) -> SkipReason | None:
        """None when the tracklist is due (fetch it), else why it is skipped (a metric label)."""
        if self.mode == "all":
            return None
        if self.mode == "none":
            return SkipReason.REFRESH_NONE
        born = (
            dt.datetime.combine(stored.set_date, dt.time(), tzinfo=dt.UTC)
            if stored.set_date
            else stored.created_at
        )
        age = (now - born) / DAY
        since_check = (now - stored.checked_at) / DAY
        if age < self.recent_days:
            return None if since_check >= self.recent_every_days else SkipReason.RECENT_CHECKED
        if stored.has_id_rows and age < self.id_rows_max_age_days:
            return None if since_check >= self.id_rows_every_days else SkipReason.ID_ROWS_CHECKED
        return SkipReason.COMPLETE if not stored.has_id_rows else SkipReason.ID_ROWS_TOO_OLD


def refresh_mode(value: str | None) -> str | None:
    """The ``refresh`` argument checked: one of MODES, or None when not given."""
    mode = (value or "").strip().lower()
    if mode and mode not in MODES:
        raise ValueError(f"refresh: one of {', '.join(MODES)}, not {value!r}")
    return mode or None


def content_hash(setlist: Mapping[str, Any], rows: Iterable[Mapping[str, Any]]) -> str:
    """A digest of a page as parsed: equal digests mean nothing to write."""
    digest = hashlib.sha256()
    # Not the page's content: what the crawl adds (its digest and size, when it was fetched).
    ignored = ("content_hash", "row_count", "fetched_at")
    for part in (setlist, *rows):
        fields = {key: value for key, value in part.items() if key not in ignored}
        digest.update(json.dumps(fields, sort_keys=True, default=str).encode())
        digest.update(b"\n")
    return digest.hexdigest()
