"""Undo single merges of migration 002 from its audit trail, without rolling back the rest.

A merge group is every duplicate migration 002 merged into one keeper. Restoring it calls
``restore_merged_tracks`` (created by the migration, shared with its rollback): the keeper gets
back the columns the merge changed, the duplicates come back with their ids, and references go
back to them. The unique indexes stay, so an identifier that another track holds stays there;
the restored track is stored without it and identifier_conflicts records it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

import psycopg2.extensions

from scrapers.identity import normalize_isrc, normalize_spotify_id

RESTORE_ORIGIN = "restore_duplicates"


class RestoreError(RuntimeError):
    """The audit trail cannot be used (migration 002 not applied); nothing was changed."""


@dataclass(frozen=True)
class MergeGroup:
    keeper_id: str
    duplicate_ids: list[str]
    identifiers: list[str]
    merged_at: datetime


@dataclass(frozen=True)
class LostIdentifier:
    track_id: str
    identifier_type: str
    value: str
    held_by: str | None


def find_groups(
    connection: psycopg2.extensions.connection,
    *,
    track_id: UUID | None = None,
    identifier: str | None = None,
) -> list[MergeGroup]:
    """Unrestored groups holding ``track_id`` (duplicate or keeper) or involving ``identifier``.

    Without either, every unrestored group. An identifier matches in any spelling the identity
    module accepts, on the duplicates and on the keeper before and after the merge.
    """
    _require_audit_trail(connection)
    spellings = sorted(
        {
            value
            for value in (identifier, normalize_isrc(identifier), normalize_spotify_id(identifier))
            if value
        }
    )
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT merged_into_id::text, array_agg(original_id::text ORDER BY original_id),
                   array_agg(DISTINCT identifier), min(deleted_at)
            FROM deleted_duplicate_tracks
            WHERE restored_at IS NULL AND merged_into_id IN (
                SELECT merged_into_id FROM deleted_duplicate_tracks
                WHERE restored_at IS NULL AND (
                    (%(everything)s)
                    OR %(track_id)s::uuid IN (original_id, merged_into_id)
                    OR identifier = ANY(%(spellings)s)
                    OR original_data #>> '{track,isrc}' = ANY(%(spellings)s)
                    OR original_data #>> '{track,spotify_id}' = ANY(%(spellings)s)
                    OR original_data #>> '{keeper_after,isrc}' = ANY(%(spellings)s)
                    OR original_data #>> '{keeper_after,spotify_id}' = ANY(%(spellings)s)))
            GROUP BY merged_into_id
            ORDER BY min(deleted_at), merged_into_id
            """,
            {
                "everything": track_id is None and identifier is None,
                "track_id": str(track_id) if track_id else None,
                "spellings": spellings,
            },
        )
        return [MergeGroup(*row) for row in cursor.fetchall()]


def restore_groups(
    connection: psycopg2.extensions.connection, groups: list[MergeGroup]
) -> tuple[int, list[LostIdentifier]]:
    """Restore ``groups`` in one transaction; returns tracks restored and identifiers left out."""
    _require_audit_trail(connection)
    duplicate_ids = [duplicate for group in groups for duplicate in group.duplicate_ids]
    with connection, connection.cursor() as cursor:
        # Writers wait: no one may take a restored track's identifier mid-restore.
        cursor.execute("LOCK TABLE tracks IN SHARE ROW EXCLUSIVE MODE")
        cursor.execute("SELECT restore_merged_tracks(%s::uuid[], true)", (duplicate_ids,))
        restored = cursor.fetchone()[0]
        cursor.execute(
            "SELECT track_id::text, identifier_type, incoming_value, other_track_id::text "
            "FROM identifier_conflicts WHERE origin = %s AND track_id = ANY(%s::uuid[]) "
            "ORDER BY track_id, identifier_type",
            (RESTORE_ORIGIN, duplicate_ids),
        )
        lost = [LostIdentifier(*row) for row in cursor.fetchall()]
    return restored, lost


def _require_audit_trail(connection: psycopg2.extensions.connection) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT to_regclass('deleted_duplicate_tracks') IS NOT NULL "
            "AND to_regproc('restore_merged_tracks') IS NOT NULL"
        )
        present = cursor.fetchone()[0]
    connection.rollback()
    if not present:
        raise RestoreError(
            "no audit trail: migration 002_add_isrc_unique_constraints is not applied"
        )
