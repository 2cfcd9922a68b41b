"""The catalogue in PostgreSQL: every statement on its tables is under this package.

* ``server/``: the server and its schema (connections, the embedded server, migrations and
  ``require_current_schema``);
* ``write/``: the write path, the batch writer and its parts (records, resolution, the merge rule,
  the conflict policy, COPY, locks, ``--bulk``'s staging, ``rejected_items``);
* ``explore/``: the explorer's read-only queries;
* ``maintenance/``: migration 002's tools (verification, undoing single merges);
* ``known_setlists.py``: the crawl's lookup of stored tracklists; ``enrichment_queue.py``: the
  backfill's claims on tracks without an ISRC.
"""
