"""``python scripts/explore.py`` (``tracklists-explore``): read the catalogue from a terminal.

search, track, dj, top, path and setlist; ``--json`` for scripts, ``--format jspf|m3u|csv`` for
playlists. Exit status: 0 found, 1 nothing found, 2 bad arguments or no database. The command
lives in ``scrapers.explorer.cli`` (see its docstring).
"""

from __future__ import annotations

import sys

from scrapers.explorer.cli import main

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
