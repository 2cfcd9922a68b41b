"""Presenting the catalogue: playlist exports and the ``tracklists-explore`` command, shared by
the CLI and the web explorer. The queries themselves are in ``scrapers.db.explore``."""
