"""How the scripts fail: a bad ``DATABASE_URL`` or no database is exit 2 with one clear line, and
never shows the URL's password (libpq echoes the URL it cannot parse)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from scrapers.db.server.connection import (
    DatabaseUrlError,
    connect,
    redacted,
    resolve_database_url,
    without_password,
)

REPO = Path(__file__).resolve().parents[1]
CATALOGUE = REPO / "tests" / "fixtures" / "import" / "catalogue.csv"
DEMO_PAGE = REPO / "tests" / "fixtures" / "1001tracklists" / "demo_tracklist.html"
MALFORMED_URL = "postgresql://u:secret@[::1:5432/db"
# Each form libpq refuses while quoting the password (whole URL or a single token) back.
MALFORMED_URLS = [
    MALFORMED_URL,
    "postgresql://u:se%ZZsecret@db.example/catalogue",
    "postgresql://u@db.example/catalogue?password=se%ZZsecret",
    "postgresql://u@db.example/catalogue?password=secret&frobnicate=1",
    "host=db.example password=my secret dbname=catalogue",
    "host=db.example password='secret",
]
COMMANDS = {
    "import_tracks": ["scripts/import_tracks.py", str(CATALOGUE)],
    "migrate status": ["scripts/migrate.py", "status"],
    "migrate up": ["scripts/migrate.py", "up"],
    "restore_duplicates": ["scripts/restore_duplicates.py", "--list"],
    "verify_isrc_uniqueness": ["scripts/verify_isrc_uniqueness.py"],
    "embedded_db url": ["scripts/embedded_db.py", "url"],
    "enrichment_service": ["scripts/enrichment_service.py", "--port", "0"],
    "explore search": ["scripts/explore.py", "search", "glue"],
}


def run(command: list[str], url: str) -> subprocess.CompletedProcess[str]:
    if command[0].endswith(".py"):
        command = [sys.executable, *command]
    return subprocess.run(
        command,
        cwd=REPO,
        capture_output=True,
        text=True,
        env={**os.environ, "DATABASE_URL": url},
        check=False,
        timeout=120,
    )


def unused_port_url() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"postgresql://nobody@127.0.0.1:{port}/nothing"


@pytest.mark.parametrize("url", MALFORMED_URLS)
def test_connection_errors_never_hold_the_password(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", url)
    with pytest.raises(DatabaseUrlError) as resolved:
        resolve_database_url()
    with pytest.raises(DatabaseUrlError) as connected:
        connect(url)
    for error in (resolved.value, connected.value):
        assert "secret" not in str(error)
        assert str(error).startswith("DATABASE_URL is not a valid PostgreSQL connection string")
        assert error.__context__ is None  # a traceback shows no original error either
    assert "secret" not in redacted(url)


def test_password_removal_keeps_the_rest_of_the_message() -> None:
    assert (
        without_password(f'in URI: "{MALFORMED_URL}"', MALFORMED_URL)
        == 'in URI: "postgresql://u:***@[::1:5432/db"'
    )
    # A short password is removed where it stands alone, not inside other words.
    assert without_password("pw for pwned", "postgresql://u:pw@h/db") == "*** for pwned"


@pytest.mark.parametrize("name", COMMANDS)
def test_malformed_database_url_is_exit_2_without_the_password(name: str) -> None:
    result = run(COMMANDS[name], MALFORMED_URL)
    output = result.stdout + result.stderr
    assert result.returncode == 2, output
    assert "secret" not in output
    assert "Traceback" not in output
    assert "not a valid PostgreSQL connection string" in output


def test_run_migration_sh_with_malformed_url() -> None:
    result = run(["./run_migration.sh", "002_add_isrc_unique_constraints"], MALFORMED_URL)
    assert result.returncode == 2
    assert "secret" not in result.stdout + result.stderr


def test_crawl_log_never_shows_the_password() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "scrapy", "crawl", "1001tracklists",
         "-a", f"start_urls={DEMO_PAGE.as_uri()}",
         "-s", "EXTENSIONS={}", "-s", "TELNETCONSOLE_ENABLED=False"],
        cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO), "DATABASE_URL": MALFORMED_URL},
        capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip
    log = result.stdout + result.stderr
    # Refused before anything starts: a usage error, one line, no traceback.
    assert result.returncode == 2, log
    assert "secret" not in log
    assert "Traceback" not in log
    assert "scrapy crawl: DATABASE_URL is not a valid PostgreSQL connection string" in log


@pytest.mark.parametrize(
    "command",
    [["scripts/migrate.py", "up"], ["./run_migration.sh", "002_add_isrc_unique_constraints"]],
)
def test_migrate_without_a_database_is_exit_2_with_a_message(command: list[str]) -> None:
    result = run(command, unused_port_url())
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: cannot use the database:")
    assert "Connection refused" in lines[0]


def test_verify_with_malformed_url_names_the_problem() -> None:
    result = run(COMMANDS["verify_isrc_uniqueness"], MALFORMED_URL)
    assert result.returncode == 2
    assert "None" not in result.stderr
    assert result.stderr.startswith("error: cannot check the database: DATABASE_URL is not")


@pytest.mark.parametrize("port", ["70000", "-5", "eighty"])
def test_an_invalid_service_port_is_exit_2_with_one_line(db_url: str, port: str) -> None:
    """``--port`` is checked as ``ENRICHMENT_SERVICE_PORT`` is: one line, exit 2."""
    done = run(["scripts/enrichment_service.py", "--port", port], db_url)
    assert done.returncode == 2, done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines() == [
        "Cannot start: ENRICHMENT_SERVICE_PORT must be a whole number of at least 0 and at most"
        f" 65535, got {port!r}"
    ]


@pytest.mark.parametrize("host", ["", " "])
def test_an_empty_service_host_is_exit_2_not_every_interface(db_url: str, host: str) -> None:
    """asyncio binds an empty host on every interface: the service served on 0.0.0.0."""
    done = run(["scripts/enrichment_service.py", "--host", host, "--port", "0"], db_url)
    assert done.returncode == 2, done.stderr[-3000:]
    assert done.stderr.strip().splitlines() == [
        "Cannot start: ENRICHMENT_SERVICE_HOST must be an address to listen on (0.0.0.0 for"
        f" every interface, on purpose), got {host!r}"
    ]


def test_a_setting_without_a_value_is_refused(db_url: str) -> None:
    """``-s NAME`` alone set NAME to the empty text (an empty host: every interface)."""
    done = run(["scripts/enrichment_service.py", "--port", "0", "-s", "LOG_LEVEL"], db_url)
    assert done.returncode == 2, done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    assert (
        done.stderr.strip()
        .splitlines()[-1]
        .endswith("argument -s: use -s NAME=VALUE, got 'LOG_LEVEL'")
    )


def test_a_service_port_in_use_is_exit_2_with_one_line(db_url: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = run(["scripts/enrichment_service.py", "--port", str(port)], db_url)
    assert done.returncode == 2, done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith(f"Cannot start: cannot listen on 127.0.0.1:{port}: "), last


@pytest.fixture(scope="module")
def schema_before_011(make_database) -> str:
    return make_database("010_setlist_fetched_at")


@pytest.mark.parametrize(
    ("command", "prefix"),
    [
        (COMMANDS["enrichment_service"], "Cannot start: "),
        (["scripts/web.py", "--port", "0"], "Cannot start: "),
        (COMMANDS["explore search"], "error: "),
    ],
)
def test_a_schema_older_than_the_code_is_exit_2_naming_the_migration(
    schema_before_011: str, command: list[str], prefix: str
) -> None:
    """Every process asks ``require_current_schema`` the one same way, and says the same."""
    done = run(command, schema_before_011)
    assert done.returncode == 2, done.stderr[-3000:]
    assert done.stderr.strip().splitlines() == [
        f"{prefix}the catalogue's schema is older than this code (not applied:"
        " 011_explore_indexes): run `python scripts/migrate.py up`"
    ]
