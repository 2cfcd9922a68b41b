"""Undo one merge of migration 002 from the audit trail, keeping every other merge.

``python scripts/restore_duplicates.py --id UUID`` (a merged duplicate's id, or its keeper's)
``python scripts/restore_duplicates.py --identifier USRC12345678`` (an ISRC or Spotify ID)
``python scripts/restore_duplicates.py --list``

Add ``--dry-run`` to see the group without changing anything. Exit status: 0 restored (or
listed), 1 nothing matched (stderr says what was looked for) or the restore failed (and was
rolled back), 2 misuse, no database, or migration 002 not applied.
"""

from __future__ import annotations

import argparse
import sys
from contextlib import closing
from uuid import UUID

import psycopg2

from scrapers.db.maintenance.merge_audit import (
    MergeGroup,
    RestoreError,
    find_groups,
    restore_groups,
)
from scrapers.db.server.connection import (
    NO_DATABASE_ERRORS,
    connect,
    one_line,
    resolve_database_url,
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--id", type=UUID, help="id of a merged duplicate or of its keeper")
    target.add_argument("--identifier", help="an ISRC or Spotify ID of the group, any spelling")
    target.add_argument("--list", action="store_true", help="list the groups still merged")
    parser.add_argument("--dry-run", action="store_true", help="show the group, change nothing")
    args = parser.parse_args(argv)

    try:
        with closing(connect(resolve_database_url())) as connection:
            groups = find_groups(connection, track_id=args.id, identifier=args.identifier)
            for group in groups:
                print(describe(group))
            if args.list:
                return 0
            if not groups:
                print(f"{not_found(args)}; nothing restored.", file=sys.stderr)
                return 1
            if args.dry_run:
                return 0
            restored, lost = restore_groups(connection, groups)
    except (*NO_DATABASE_ERRORS, RestoreError) as error:
        print(f"error: {one_line(error)}", file=sys.stderr)
        return 2
    except psycopg2.Error as error:
        print(
            f"error: restore failed, nothing changed: {error.diag.message_primary or error}",
            file=sys.stderr,
        )
        return 1

    print(f"Restored {restored} tracks in {len(groups)} group(s).")
    for item in lost:
        holder = f"held by {item.held_by}" if item.held_by else "held by another track"
        print(
            f"⚠ {item.track_id} restored without {item.identifier_type} {item.value} ({holder}); "
            "recorded in identifier_conflicts"
        )
    return 0


def not_found(args: argparse.Namespace) -> str:
    """What was looked for and not found, for the "nothing matched" message."""
    if args.id is not None:
        return (
            f"No unrestored merge group holds track {args.id} "
            "(neither a merged duplicate nor a keeper)"
        )
    return (
        f"No unrestored merge group involves identifier {args.identifier!r} "
        "(as an ISRC or Spotify ID, in any spelling)"
    )


def describe(group: MergeGroup) -> str:
    return (
        f"keeper {group.keeper_id} <- {', '.join(group.duplicate_ids)} "
        f"[{', '.join(group.identifiers)}] merged {group.merged_at:%Y-%m-%d %H:%M:%S}"
    )


if __name__ == "__main__":
    sys.exit(main())
