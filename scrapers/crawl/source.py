"""What the crawl layer needs to know of a spider: whose tracklists it reads, and which set a
URL is.

``crawl/`` imports no spider. A spider that implements ``TracklistSource`` (two attributes of
its class) gets the incremental crawl (``scrapers.crawl.incremental``) with no edit here: the
middleware reads them from the running spider.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable


@runtime_checkable
class TracklistSource(Protocol):
    """A spider of one tracklist site."""

    #: The ``source`` of the setlist items it yields (``setlists.source``).
    source: str

    def tracklist_id(self, url: str) -> str | None:
        """The set's id (``setlists.source_id``) that ``url`` leads to, or ``None`` when it
        leads to no set (a listing, a DJ's page)."""
        ...
