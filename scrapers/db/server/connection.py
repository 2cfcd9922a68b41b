"""Where the catalogue lives: the one place that answers it.

The ``DATABASE_URL`` setting (``-s`` > the environment > none: ``scrapers/settings.py``) names a
libpq URL. Without one, the embedded server (``scrapers.db.server.embedded``) is started or reused
and the ``tracklists`` database on it is used. Scripts, the spider, tests and benchmarks all come
here.

It is also where a connection string's password is kept out of every message: libpq echoes the
whole URL (or a piece of it) when it cannot parse one, so errors leave here with it removed.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping
from contextlib import closing, suppress
from typing import Any
from urllib.parse import unquote

import psycopg2
import psycopg2.errors
import psycopg2.extensions
from psycopg2 import sql

from scrapers.db.server.embedded import EmbeddedDatabaseError, EmbeddedPostgres
from scrapers.settings_check import project_settings

EMBEDDED_DATABASE = "tracklists"
APPLICATION_NAME = "tracklists-catalogue"
# Give up on a connection attempt after this many seconds, and let TCP keepalives notice a
# server that vanished under an open connection within about a minute.
LIVENESS_DEFAULTS = {
    "connect_timeout": 10,
    "keepalives": 1,
    "keepalives_idle": 30,
    "keepalives_interval": 10,
    "keepalives_count": 3,
}
_LIBPQ_ENVIRONMENT = {"connect_timeout": "PGCONNECT_TIMEOUT"}
REDACTED = "***"
# Passwords shorter than this are removed only where they stand alone, so that a one-letter
# password does not turn every such letter of the message into asterisks.
_SHORT_SECRET = 4
_QUERY_PASSWORD = re.compile(r"[?&]password=([^&#]*)")
_KEYWORD_PASSWORD = re.compile(
    r"(?:^|\s)password\s*=\s*(?:'((?:[^'\\]|\\.)*)'?|(\S*)((?:\s+(?!\w+\s*=)\S+)*))"
)


class DatabaseUrlError(RuntimeError):
    """``DATABASE_URL`` is not a connection string libpq accepts; the message holds no password."""


# "No database": a bad DATABASE_URL, an embedded server that cannot start, a server that cannot
# be reached. The scripts answer these with exit status 2 and ``one_line(error)``.
NO_DATABASE_ERRORS = (DatabaseUrlError, EmbeddedDatabaseError, psycopg2.OperationalError)


def resolve_database_url(settings: Mapping[str, Any] | None = None) -> str:
    """``DATABASE_URL`` of ``settings`` (``None``: the project's), else the embedded server's URL.

    A configured URL that libpq cannot parse raises ``DatabaseUrlError`` here, before anything
    tries to connect with it (or logs it).
    """
    configured = configured_database_url(settings)
    if configured:
        return configured
    server = EmbeddedPostgres().ensure_running()
    ensure_database(server.url("postgres"), EMBEDDED_DATABASE)
    return server.url(EMBEDDED_DATABASE)


def configured_database_url(settings: Mapping[str, Any] | None = None) -> str | None:
    """The ``DATABASE_URL`` of ``settings`` (``None``: the project's, so ``-s`` > the environment
    > the default, as everywhere), checked; None for "embedded".

    Cheap and offline, so a component can refuse a bad URL before anything starts.
    """
    if settings is None:
        settings = project_settings()
    configured = settings.get("DATABASE_URL")
    if not configured:
        return None
    url = str(configured)
    check_database_url(url)
    return url


def check_database_url(url: str) -> None:
    """Raise ``DatabaseUrlError`` (password removed) when libpq cannot parse ``url``."""
    try:
        psycopg2.extensions.parse_dsn(url)
    except psycopg2.ProgrammingError as error:
        message = str(error)
    else:
        return
    # Raised outside the handler: the original error, password and all, is not its context.
    raise DatabaseUrlError(_invalid_url_message(message, url))


def connect(url: str, *, autocommit: bool = False) -> psycopg2.extensions.connection:
    """A psycopg2 connection tagged with our application name (visible in pg_stat_activity).

    Raises ``DatabaseUrlError`` for an unparseable ``url``; other errors keep their psycopg2
    class (callers tell an outage from a bug by it), with any password removed from the message.
    """
    try:
        connection = psycopg2.connect(
            url, application_name=APPLICATION_NAME, **_liveness_defaults(url)
        )
    except psycopg2.ProgrammingError as error:
        failure: Exception = DatabaseUrlError(_invalid_url_message(str(error), url))
    except psycopg2.Error as error:
        message = without_password(str(error), url)
        if message == str(error):
            raise
        failure = type(error)(message)
    else:
        connection.autocommit = autocommit
        return connection
    raise failure


def _liveness_defaults(url: str) -> dict[str, int]:
    """Timeouts that make a server which accepts connections but never answers an outage.

    Without them libpq waits forever, and a crawl or import hangs instead of retrying and
    spooling. Whatever the URL or the ``PG*`` environment variables set is left alone.
    """
    given = psycopg2.extensions.parse_dsn(url)
    return {
        key: value
        for key, value in LIVENESS_DEFAULTS.items()
        if key not in given and _LIBPQ_ENVIRONMENT.get(key, "") not in os.environ
    }


def ensure_database(admin_url: str, name: str) -> None:
    """Create database ``name`` on the server of ``admin_url`` unless it exists."""
    # Not ``with connection``: psycopg2 2.9 opens a transaction there even in autocommit mode.
    with closing(connect(admin_url, autocommit=True)) as admin, admin.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
        if cursor.fetchone() is None:
            # Another process may create it between our check and our CREATE.
            with suppress(psycopg2.errors.DuplicateDatabase):
                cursor.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def redacted(url: str) -> str:
    """The URL with any password removed, for logs."""
    try:
        parameters = psycopg2.extensions.parse_dsn(url)
    except psycopg2.ProgrammingError:
        return without_password(url, url)
    parameters.pop("password", None)
    text = " ".join(f"{key}={value}" for key, value in sorted(parameters.items()))
    # A password holding "@" can spill into the host as libpq splits the URL.
    return without_password(text, url)


def one_line(error: BaseException) -> str:
    """An error's message on one line (libpq's span several), or its class name when empty."""
    return " ".join(str(error).split()) or type(error).__name__


def without_password(text: str, url: str) -> str:
    """``text`` with every spelling of ``url``'s password replaced by ``***``.

    Works on strings libpq refuses too, where nothing can be parsed: the password is looked for
    as URI user info (``user:password@``, up to any of its ``@``), a ``?password=`` or
    ``&password=`` query value, and a ``password=`` keyword value (quoted, or up to the next
    keyword), raw and percent-decoded, whole and word by word (libpq quotes single words).
    """
    for secret in sorted(set(_password_spellings(url)), key=len, reverse=True):
        if len(secret) >= _SHORT_SECRET:
            text = text.replace(secret, REDACTED)
        else:
            alone = rf"(?<![^\W_]){re.escape(secret)}(?![^\W_])"
            text = re.sub(alone, REDACTED, text)
    return text


def _invalid_url_message(libpq_message: str, url: str) -> str:
    reason = " ".join(without_password(libpq_message, url).split())
    return f"DATABASE_URL is not a valid PostgreSQL connection string: {reason}"


def _password_spellings(url: str) -> Iterator[str]:
    for candidate in _password_candidates(url):
        for spelling in (candidate, unquote(candidate)):
            spelling = spelling.strip()
            if spelling:
                yield spelling
                yield from spelling.split()


def _password_candidates(url: str) -> Iterator[str]:
    scheme_end = url.find("://")
    if scheme_end >= 0:
        authority = url[scheme_end + 3 :]
        colon = authority.find(":")
        if colon >= 0 and not re.search("[@/]", authority[:colon]):
            # The user name ends at the first ":"; the password at one of the "@" after it.
            for at in (match.start() for match in re.finditer("@", authority)):
                if at > colon:
                    yield authority[colon + 1 : at]
        for match in _QUERY_PASSWORD.finditer(url):
            yield match.group(1)
    for match in _KEYWORD_PASSWORD.finditer(url):
        quoted, first_word, more_words = match.groups()
        if quoted is not None:
            yield quoted
            yield re.sub(r"\\(.)", r"\1", quoted)
        else:
            yield first_word
            yield first_word + (more_words or "")
