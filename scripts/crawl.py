"""``tracklists-crawl [scrapy crawl options]``: the 1001tracklists crawl from any folder.

``scrapy crawl 1001tracklists`` finds the project through ``scrapy.cfg`` in a checkout; an
installed package has no ``scrapy.cfg``, so this command names the settings module itself and
runs the project's ``crawl`` command (same options, same exit status).
"""

from __future__ import annotations

import os
import sys

from scrapy.cmdline import execute


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("SCRAPY_SETTINGS_MODULE", "scrapers.settings")
    arguments = sys.argv[1:] if argv is None else argv
    execute(["scrapy", "crawl", "1001tracklists", *arguments])
    return 0


if __name__ == "__main__":
    sys.exit(main())
