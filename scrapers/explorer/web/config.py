"""The web explorer's settings, read once and checked: a value that cannot be used stops it.

``EXPLORER_DATABASE_URL`` may name a connection of its own (a read-only role, a replica); without
it the explorer reads where everything else writes (``DATABASE_URL``, else the embedded server).
Every request runs in a read-only transaction either way (``catalogue``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from scrapers.db.server.connection import DatabaseUrlError, check_database_url, resolve_database_url
from scrapers.settings_check import listen_address, number, whole_number


@dataclass(frozen=True)
class WebConfig:
    """Built by ``from_settings`` from the project's settings: the defaults are
    ``scrapers/settings.py``'s."""

    host: str
    port: int
    statement_timeout_ms: int
    database_connections: int
    max_connections: int
    request_timeout: float
    database_url: str = field(default="", repr=False)  # set by ``with_database``

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> WebConfig:
        """Checked settings (``InvalidSetting`` names the bad one); the database URL is left
        for ``with_database`` (resolving it may start the embedded server)."""

        def get(name: str) -> Any:
            return settings.get(name)

        def count(name: str, minimum: int, maximum: int) -> int:
            return whole_number(name, get(name), minimum=minimum, maximum=maximum)

        return cls(
            host=listen_address("EXPLORER_HOST", get("EXPLORER_HOST")),
            port=count("EXPLORER_PORT", 0, 65535),
            statement_timeout_ms=count("EXPLORER_STATEMENT_TIMEOUT_MS", 1, 3_600_000),
            database_connections=count("EXPLORER_DATABASE_CONNECTIONS", 1, 1000),
            max_connections=count("EXPLORER_MAX_CONNECTIONS", 1, 10_000),
            request_timeout=number(
                "EXPLORER_REQUEST_TIMEOUT",
                get("EXPLORER_REQUEST_TIMEOUT"),
                allow_minimum=False,
                maximum=3600,
                what="a number of seconds",
            ),
        )

    def with_database(self, settings: Mapping[str, Any]) -> WebConfig:
        """This config reading ``EXPLORER_DATABASE_URL``, else ``DATABASE_URL`` or embedded."""
        own = str(settings.get("EXPLORER_DATABASE_URL") or "").strip()
        if not own:
            url = resolve_database_url(settings)
        else:
            try:
                check_database_url(own)
            except DatabaseUrlError as error:
                raise DatabaseUrlError(f"EXPLORER_{error}") from None
            url = own
        return replace(self, database_url=url)
