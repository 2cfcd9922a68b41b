"""Checks that migration 002's guarantees hold: the findings behind verify_isrc_uniqueness.py.

Each check reads the catalog or the data (never writes) and yields findings with a status:
``pass``, ``warn`` (worth a look, not a failure) or ``fail``. Indexes are checked by what they
are (unique, partial, valid, on the right column), not by name alone.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import psycopg2.extensions
from psycopg2 import sql

MIGRATION = "002_add_isrc_unique_constraints"
ISRC_REGEX = "^[A-Z]{2}[A-Z0-9]{3}[0-9]{7}$"
DEFAULT_COVERAGE_WARNING = 50.0
UNIQUE_INDEXES = (
    ("idx_tracks_isrc_unique", "isrc"),
    ("idx_tracks_spotify_id_unique", "spotify_id"),
)
# What the matching tiers read besides the unique indexes: the title tier's key and the
# enrichment backfill's queue.
LOOKUP_INDEXES = ("idx_tracks_title_key", "idx_tracks_enrichment_queue")

Status = Literal["pass", "warn", "fail"]
Cursor = psycopg2.extensions.cursor


@dataclass(frozen=True)
class Finding:
    section: str
    status: Status
    message: str
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Report:
    findings: list[Finding]

    @property
    def failures(self) -> list[Finding]:
        return [finding for finding in self.findings if finding.status == "fail"]

    @property
    def passed(self) -> bool:
        return not self.failures

    def as_dict(self) -> dict[str, Any]:
        return {
            "migration": MIGRATION,
            "passed": self.passed,
            "failures": len(self.failures),
            "warnings": sum(finding.status == "warn" for finding in self.findings),
            "findings": [asdict(finding) for finding in self.findings],
        }


def verify(
    connection: psycopg2.extensions.connection, min_isrc_coverage: float | None = None
) -> Report:
    """Run every check in one read-only transaction."""
    findings: list[Finding] = []
    connection.set_session(readonly=True, autocommit=False)
    try:
        with connection.cursor() as cursor:
            findings += _migration_status(cursor)
            if not _exists(cursor, "tracks"):
                findings.append(
                    Finding("UNIQUE INDEXES", "fail", "table tracks does not exist: run migrations")
                )
                return Report(findings)
            findings += _unique_indexes(cursor)
            findings += _duplicates(cursor)
            findings += _isrc_format(cursor)
            findings += _coverage(cursor, min_isrc_coverage)
            findings += _audit_trail(cursor)
            findings += _lookup_indexes(cursor)
    finally:
        connection.rollback()
    return Report(findings)


def _exists(cursor: Cursor, relation: str) -> bool:
    cursor.execute("SELECT to_regclass(%s) IS NOT NULL", (relation,))
    return bool(cursor.fetchone()[0])


def _migration_status(cursor: Cursor) -> list[Finding]:
    section = "MIGRATION STATUS"
    if not _exists(cursor, "schema_migrations"):
        return [Finding(section, "fail", "schema_migrations does not exist: run migrations")]
    cursor.execute(
        "SELECT applied_at FROM schema_migrations WHERE migration_name = %s", (MIGRATION,)
    )
    row = cursor.fetchone()
    if row is None:
        return [Finding(section, "fail", f"Migration {MIGRATION} is not applied")]
    applied_at = row[0]
    return [
        Finding(
            section,
            "pass",
            f"Migration applied on: {applied_at:%Y-%m-%d %H:%M:%S %Z}".strip(),
            {"applied_at": applied_at.isoformat()},
        )
    ]


def _unique_indexes(cursor: Cursor) -> list[Finding]:
    findings = []
    for name, column in UNIQUE_INDEXES:
        cursor.execute(
            """
            SELECT i.indisunique, i.indisvalid, i.indisready, i.indpred IS NOT NULL,
                   pg_get_expr(i.indpred, i.indrelid), i.indnkeyatts,
                   (SELECT a.attname FROM pg_attribute a
                    WHERE a.attrelid = i.indrelid AND a.attnum = i.indkey[0]),
                   i.indrelid = 'tracks'::regclass
            FROM pg_index i WHERE i.indexrelid = to_regclass(%s)
            """,
            (name,),
        )
        row = cursor.fetchone()
        if row is None:
            findings.append(Finding("UNIQUE INDEXES", "fail", f"{name} does not exist"))
            continue
        unique, valid, ready, partial, predicate, key_count, key_column, on_tracks = row
        problems = []
        if not on_tracks:
            problems.append("is not on table tracks")
        if not unique:
            problems.append("is not unique")
        if not (valid and ready):
            problems.append("is not valid (a failed or unfinished build)")
        if key_count != 1 or key_column != column:
            problems.append(f"is not on the column {column} alone")
        if not partial or predicate != f"({column} IS NOT NULL)":
            problems.append(f"is not partial WHERE {column} IS NOT NULL")
        details = {"index": name, "column": key_column, "predicate": predicate}
        if problems:
            findings.append(
                Finding("UNIQUE INDEXES", "fail", f"{name} {'; '.join(problems)}", details)
            )
        else:
            findings.append(
                Finding(
                    "UNIQUE INDEXES",
                    "pass",
                    f"{name}: unique, partial (WHERE {column} IS NOT NULL), valid, "
                    f"on tracks.{column}",
                    details,
                )
            )
    return findings


def _duplicates(cursor: Cursor) -> list[Finding]:
    findings = []
    for label, column in (("ISRC", "isrc"), ("Spotify ID", "spotify_id")):
        cursor.execute(
            sql.SQL(
                "SELECT {0}, count(*) FROM tracks WHERE {0} IS NOT NULL "
                "GROUP BY {0} HAVING count(*) > 1 ORDER BY count(*) DESC, {0}"
            ).format(sql.Identifier(column))
        )
        groups = cursor.fetchall()
        if groups:
            sample = ", ".join(f"{value} ({count}x)" for value, count in groups[:5])
            findings.append(
                Finding(
                    "DUPLICATES",
                    "fail",
                    f"{len(groups)} duplicate {label} groups, e.g. {sample}",
                    {"identifier": column, "groups": len(groups)},
                )
            )
        else:
            findings.append(
                Finding(
                    "DUPLICATES",
                    "pass",
                    f"No duplicate {label}s",
                    {"identifier": column, "groups": 0},
                )
            )
    return findings


def _isrc_format(cursor: Cursor) -> list[Finding]:
    cursor.execute(
        "SELECT count(*), (array_agg(isrc ORDER BY isrc))[1:5] FROM tracks "
        "WHERE isrc IS NOT NULL AND (isrc !~ %s OR isrc LIKE 'TC%%')",
        (ISRC_REGEX,),
    )
    count, sample = cursor.fetchone()
    if count:
        return [
            Finding(
                "ISRC FORMAT",
                "fail",
                f"{count} stored ISRCs are not valid ISRCs, e.g. {', '.join(sample)}",
                {"invalid": count},
            )
        ]
    return [Finding("ISRC FORMAT", "pass", "Every stored ISRC is a valid ISRC", {"invalid": 0})]


def _coverage(cursor: Cursor, min_isrc_coverage: float | None) -> list[Finding]:
    cursor.execute("SELECT count(*), count(isrc), count(spotify_id) FROM tracks")
    total, with_isrc, with_spotify = cursor.fetchone()
    details: dict[str, Any] = {
        "tracks": total,
        "with_isrc": with_isrc,
        "with_spotify_id": with_spotify,
        "isrc_coverage_pct": None,
        "spotify_coverage_pct": None,
    }
    if total == 0:
        return [Finding("COVERAGE", "pass", "No tracks yet: coverage does not apply", details)]
    isrc_pct = round(100.0 * with_isrc / total, 2)
    spotify_pct = round(100.0 * with_spotify / total, 2)
    details.update(isrc_coverage_pct=isrc_pct, spotify_coverage_pct=spotify_pct)
    message = (
        f"ISRC coverage {isrc_pct:.1f}% ({with_isrc:,} of {total:,} tracks); "
        f"Spotify ID coverage {spotify_pct:.1f}% ({with_spotify:,})"
    )
    if min_isrc_coverage is not None:
        status: Status = "pass" if isrc_pct >= min_isrc_coverage else "fail"
        details["threshold_pct"] = min_isrc_coverage
        message += f"; required at least {min_isrc_coverage:g}%"
    else:
        status = "pass" if isrc_pct >= DEFAULT_COVERAGE_WARNING else "warn"
        details["threshold_pct"] = DEFAULT_COVERAGE_WARNING
        if status == "warn":
            message += f"; below {DEFAULT_COVERAGE_WARNING:g}% (run the enrichment backfill)"
    return [Finding("COVERAGE", status, message, details)]


def _audit_trail(cursor: Cursor) -> list[Finding]:
    if not _exists(cursor, "deleted_duplicate_tracks"):
        return [Finding("AUDIT TRAIL", "fail", "deleted_duplicate_tracks does not exist")]
    cursor.execute(
        "SELECT duplicate_type, count(*), count(restored_at), min(deleted_at), max(deleted_at) "
        "FROM deleted_duplicate_tracks GROUP BY duplicate_type ORDER BY duplicate_type"
    )
    rows = cursor.fetchall()
    if not rows:
        return [Finding("AUDIT TRAIL", "pass", "No tracks were merged", {"merged": 0})]
    findings = []
    for duplicate_type, merged, restored, first, last in rows:
        findings.append(
            Finding(
                "AUDIT TRAIL",
                "pass",
                f"{duplicate_type}: {merged} tracks merged ({restored} restored since), "
                f"{first:%Y-%m-%d %H:%M:%S} to {last:%Y-%m-%d %H:%M:%S}",
                {"duplicate_type": duplicate_type, "merged": merged, "restored": restored},
            )
        )
    return findings


def _lookup_indexes(cursor: Cursor) -> list[Finding]:
    findings = []
    for name in LOOKUP_INDEXES:
        cursor.execute(
            "SELECT i.indisvalid AND i.indisready FROM pg_index i "
            "WHERE i.indexrelid = to_regclass(%s) AND i.indrelid = 'tracks'::regclass",
            (name,),
        )
        row = cursor.fetchone()
        if row is None:
            findings.append(Finding("LOOKUP INDEXES", "fail", f"{name} does not exist"))
        elif not row[0]:
            findings.append(Finding("LOOKUP INDEXES", "fail", f"{name} is not valid"))
        else:
            findings.append(Finding("LOOKUP INDEXES", "pass", f"{name} exists and is valid"))
    return findings
