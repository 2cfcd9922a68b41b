"""The connection layer: embedded server lifecycle, URL resolution, the migration runner."""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import psycopg2
import pytest

from scrapers.db.server import connection, migrations
from scrapers.db.server.connection import connect, resolve_database_url
from scrapers.db.server.embedded import EmbeddedPostgres
from scrapers.settings_check import project_settings

REPO_ROOT = Path(__file__).resolve().parents[1]


def throwaway_state_dir(name: str) -> Path:
    """A state folder the embedded server's service user can enter, also when run as root."""
    base = Path("/tmp") / "tracklists-test-servers"
    base.mkdir(mode=0o755, exist_ok=True)
    base.chmod(0o755)
    path = base / f"{name}-{os.getpid()}"
    path.mkdir(exist_ok=True)
    return path


def test_database_url_s_wins_over_the_environment_which_wins_over_embedded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url = "postgresql://someone@db.example:5999/catalogue"
    monkeypatch.setenv("DATABASE_URL", "postgresql://env@127.0.0.1/x")
    assert resolve_database_url() == "postgresql://env@127.0.0.1/x"
    assert resolve_database_url(project_settings({"DATABASE_URL": url})) == url
    assert resolve_database_url({"DATABASE_URL": url}) == url


def test_embedded_server_starts_persists_and_is_shared(tmp_path: Path) -> None:
    state = throwaway_state_dir("lifecycle")
    server = EmbeddedPostgres(state)
    try:
        first = server.ensure_running()
        with closing(connect(first.url("postgres"))) as conn, conn, conn.cursor() as cursor:
            cursor.execute("CREATE TABLE kept (value int); INSERT INTO kept VALUES (42)")
        # A second process sees the same running server instead of starting another.
        probe = (
            "from pathlib import Path; from scrapers.db.server.embedded import EmbeddedPostgres;"
            f"print(EmbeddedPostgres(Path({str(state)!r})).ensure_running().port)"
        )
        other = subprocess.run(
            [sys.executable, "-c", probe],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            check=True,
        )
        assert int(other.stdout.strip()) == first.port
        # Data survives a stop and a start.
        assert server.stop() is True
        assert server.status() is None
        again = server.ensure_running()
        with closing(connect(again.url("postgres"))) as conn, conn.cursor() as cursor:
            cursor.execute("SELECT value FROM kept")
            assert cursor.fetchall() == [(42,)]
        with closing(connect(again.url("postgres"))) as conn, conn.cursor() as cursor:
            cursor.execute("SHOW listen_addresses")
            assert cursor.fetchone() == ("127.0.0.1",)
    finally:
        server.stop()


def test_migrate_up_status_down(make_database) -> None:
    url = make_database("")
    names = [migration.name for migration in migrations.discover()]
    assert migrations.upgrade(url) == names
    assert migrations.upgrade(url) == []
    assert all(applied_at is not None for _, applied_at in migrations.status(url))
    if len(names) > 1:
        with pytest.raises(migrations.MigrationError, match="roll back"):
            migrations.downgrade(url, names[0])
    for name in reversed(names):
        migrations.downgrade(url, name)
    with closing(connect(url)) as conn, conn.cursor() as cursor:
        cursor.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        assert cursor.fetchall() == [("schema_migrations",)]
        cursor.execute("SELECT count(*) FROM schema_migrations")
        assert cursor.fetchone() == (0,)


def test_require_current_schema_names_every_migration_not_applied(make_database) -> None:
    names = [migration.name for migration in migrations.discover()]
    for upto, pending in (("", names), (names[1], names[2:]), (None, [])):
        with closing(connect(make_database(upto), autocommit=True)) as conn:
            if not pending:
                migrations.require_current_schema(conn)
                continue
            with pytest.raises(migrations.SchemaTooOld) as raised:
                migrations.require_current_schema(conn)
            assert raised.value.pending == pending
            assert "migrate.py up" in str(raised.value)


def test_failed_migration_is_rolled_back_and_unrecorded(make_database, tmp_path: Path) -> None:
    url = make_database("")
    broken = tmp_path / "900_broken.sql"
    broken.write_text("BEGIN; CREATE TABLE half_done (id int); SELECT 1/0; COMMIT;")
    with closing(connect(url, autocommit=True)) as conn:
        with pytest.raises(migrations.MigrationError, match="rolled back"):
            migrations.run_sql_file(conn, broken)
        with conn.cursor() as cursor:
            cursor.execute("SELECT to_regclass('half_done')")
            assert cursor.fetchone() == (None,)


def test_migration_005_bounds_and_hashes_stored_payloads(make_database) -> None:
    url = make_database("004_enrichment_cache")
    big, small = "é" * 70_000, "{broken json"
    with closing(connect(url, autocommit=True)) as conn, conn.cursor() as cursor:
        cursor.execute(
            "INSERT INTO rejected_items (origin, location, reason, payload)"
            " VALUES ('o', 'f:1', 'r', %s), ('o', 'f:2', 'r', %s)",
            (big, small),
        )
    assert migrations.upgrade(url, "005_rejected_items_payload_bounds") == [
        "005_rejected_items_payload_bounds"
    ]
    with closing(connect(url)) as conn, conn.cursor() as cursor:
        cursor.execute(
            "SELECT char_length(payload), payload_bytes, payload_sha256 FROM rejected_items"
            " ORDER BY location"
        )
        assert cursor.fetchall() == [
            (65_536, 140_000, hashlib.sha256(big.encode()).hexdigest()),
            (len(small), len(small), hashlib.sha256(small.encode()).hexdigest()),
        ]
    migrations.downgrade(url, "005_rejected_items_payload_bounds")
    with closing(connect(url)) as conn, conn.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM information_schema.columns"
            " WHERE table_name = 'rejected_items' AND column_name LIKE 'payload_%'"
        )
        assert cursor.fetchone() == (0,)


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A TCP port that accepts connections and never answers, as a hung server does."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        yield listener.getsockname()[1]


@pytest.mark.parametrize(
    ("default_seconds", "url_option"),
    [(2, ""), (600, "?connect_timeout=2")],
    ids=["project default", "the URL's own timeout wins"],
)
def test_a_server_that_never_answers_is_an_outage_not_a_hang(
    silent_server: int, monkeypatch: pytest.MonkeyPatch, default_seconds: int, url_option: str
) -> None:
    monkeypatch.delenv("PGCONNECT_TIMEOUT", raising=False)
    monkeypatch.setitem(connection.LIVENESS_DEFAULTS, "connect_timeout", default_seconds)
    started = time.monotonic()
    with pytest.raises(psycopg2.OperationalError):
        connect(f"postgresql://postgres@127.0.0.1:{silent_server}/db{url_option}")
    assert time.monotonic() - started < 8
