"""The command-line tools. Run from a checkout as ``python scripts/NAME.py``; installed
(``pip install .``) they are the package ``scrapers.cli`` and the ``tracklists-*`` commands
of pyproject.toml."""
