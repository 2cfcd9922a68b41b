"""The identifier conflict policy, in one place for every writer. Pure (no database): the
batch's resolution (``resolution.py``) and ``conflicts.assign_identifiers`` decide by it.

Policy (README "Conflict policy"):

* An identifier is never overwritten by a different value. A track that already has an ISRC
  (or Spotify ID) keeps it; the contradicting value is recorded with resolution ``kept_stored``.
* An identifier already owned by another track stays on that track; the claim is recorded with
  resolution ``kept_on_other_track`` and both track ids. Nothing is merged automatically: two
  tracks that may be one recording are listed in ``identifier_conflicts`` for a person (or a
  later merge migration, which keeps an audit trail) to decide.
* Otherwise the track gains the identifier (``assigned``).

So with an item whose ISRC belongs to track A and whose Spotify ID belongs to track B, A wins
(ISRC is the stronger identifier), the item's other values update A, the Spotify ID stays on B,
and one conflict row names A and B. No unique violation escapes, and nothing is lost.
"""

from __future__ import annotations

from dataclasses import dataclass

from scrapers.statuses import ConflictResolution, IdentifierType


@dataclass(frozen=True)
class Conflict:
    """One row of ``identifier_conflicts``."""

    identifier_type: IdentifierType
    track_id: str
    other_track_id: str | None
    stored_value: str | None
    incoming_value: str
    resolution: ConflictResolution


def decide(
    identifier_type: IdentifierType,
    track_id: str,
    incoming: str | None,
    stored: str | None,
    owner_id: str | None,
) -> tuple[bool, Conflict | None]:
    """Whether ``track_id`` gains ``incoming``, and the conflict to record if it does not.

    ``stored`` is the track's current value, ``owner_id`` the other track holding ``incoming``.
    """
    if incoming is None or stored == incoming:
        return False, None
    if owner_id is not None and owner_id != track_id:
        conflict = Conflict(
            identifier_type,
            track_id,
            owner_id,
            stored,
            incoming,
            ConflictResolution.KEPT_ON_OTHER_TRACK,
        )
        return False, conflict
    if stored is not None:
        return False, Conflict(
            identifier_type, track_id, None, stored, incoming, ConflictResolution.KEPT_STORED
        )
    return True, None
