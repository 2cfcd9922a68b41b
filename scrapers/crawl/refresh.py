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
import logging
import threading
from collections.abc import Iterable, Mapping
from contextlib import suppress
from dataclasses import dataclass
from typing import Any

import psycopg2
import psycopg2.extensions

from scrapers.db.connection import connect, redacted
from scrapers.db.locks import OnLockWait, wait_for_locks
from scrapers.metrics import SkipReason
from scrapers.settings_check import InvalidSetting, number

logger = logging.getLogger(__name__)

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
class StoredSetlist:
    """What the catalogue knows of one tracklist, as the policy needs it."""

    source_id: str
    content_hash: str | None
    checked_at: dt.datetime
    set_date: dt.date | None
    created_at: dt.datetime
    has_id_rows: bool


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


# The stored, wholly read setlists among some source ids, with the database's time.
_KNOWN_SETLISTS = """
    SELECT n.now, s.source_id, s.content_hash, s.checked_at, s.set_date, s.created_at,
           EXISTS (SELECT 1 FROM setlist_tracks t
                   WHERE t.setlist_id = s.id AND (t.is_unknown OR t.is_partial_id))
    FROM (SELECT now()) AS n (now)
    LEFT JOIN setlists s ON s.source = %s AND s.source_id = ANY(%s) AND s.checked_at IS NOT NULL
"""


class KnownSetlists:
    """Looks up which tracklists the catalogue holds, one query per listing page.

    psycopg2 blocks: call ``lookup`` from a worker thread, never the reactor's. A lost database
    makes the lookup answer "none known" after logging it: fetching a page again is safe. A
    lookup behind a bulk import's locks waits for them, telling ``on_lock_wait`` each second
    (``locks.wait_for_locks``).
    """

    def __init__(self, url: str, on_lock_wait: OnLockWait | None = None) -> None:
        self.url = url
        self.on_lock_wait = on_lock_wait
        self._connection: psycopg2.extensions.connection | None = None
        self._lock = threading.Lock()

    def lookup(
        self, source: str, source_ids: list[str]
    ) -> tuple[dict[str, StoredSetlist], dt.datetime]:
        """The stored, wholly read setlists among ``source_ids``, and the database's time."""
        with self._lock:
            try:
                return self._query(source, source_ids)
            except (psycopg2.OperationalError, psycopg2.InterfaceError) as error:
                self.close()
                logger.warning(
                    "Could not look up known tracklists on %s (%s); fetching them all",
                    redacted(self.url),
                    str(error).strip(),
                )
                return {}, dt.datetime.now(dt.UTC)

    def _query(
        self, source: str, source_ids: list[str]
    ) -> tuple[dict[str, StoredSetlist], dt.datetime]:
        if self._connection is None or self._connection.closed:
            self._connection = connect(self.url, autocommit=True)
        with self._connection.cursor() as cursor:
            query = (_KNOWN_SETLISTS, (source, source_ids))
            wait_for_locks(cursor, lambda reading: reading.execute(*query), self.on_lock_wait)
            rows = cursor.fetchall()
        now = rows[0][0]
        found = {row[1]: StoredSetlist(*row[1:]) for row in rows if row[1] is not None}
        return found, now

    def close(self) -> None:
        if self._connection is not None:
            with suppress(psycopg2.Error):
                self._connection.close()
            self._connection = None
