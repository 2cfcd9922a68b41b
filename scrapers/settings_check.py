"""Reading the user's settings strictly: a value that cannot be used stops the program.

Scrapy answers a component's ``NotConfigured`` by disabling the component with one WARNING and
crawling on, so a typo such as ``-s DATABASE_BATCH_SIZE=0`` once scraped a whole site and stored
nothing. ``NotConfigured`` is kept for "switched off on purpose" (``PROMETHEUS_ENABLED=False``);
a value that is wrong raises ``InvalidSetting``, which ``scrapy crawl`` reports in one line and
answers with exit status 2 (``scrapers.commands.crawl``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from scrapy.settings import Settings

from scrapers import settings as project

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


class InvalidSetting(ValueError):
    """A setting's value cannot be used. The message names the setting and the value given."""

    def __init__(self, name: str, requirement: str, value: Any) -> None:
        super().__init__(f"{name} must be {requirement}, got {value!r}")
        self.name = name


def whole_number(name: str, value: Any, *, minimum: int, maximum: int | None = None) -> int:
    """``value`` (a setting's raw value: text from ``-s`` or a number) as an int in range."""
    requirement = f"a whole number of at least {minimum}" + (
        f" and at most {maximum}" if maximum is not None else ""
    )
    if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
        raise InvalidSetting(name, requirement, value)
    try:
        number = int(value.strip() if isinstance(value, str) else value)
    except (TypeError, ValueError):
        raise InvalidSetting(name, requirement, value) from None
    if number < minimum or (maximum is not None and number > maximum):
        raise InvalidSetting(name, requirement, value)
    return number


def listen_address(name: str, value: Any) -> str:
    """``value`` as the address a server binds. Never empty: asyncio takes an empty host as
    every interface, so ``--host ""`` once served the catalogue on 0.0.0.0."""
    address = "" if value is None else str(value).strip()
    if not address:
        raise InvalidSetting(
            name, "an address to listen on (0.0.0.0 for every interface, on purpose)", value
        )
    return address


def number(
    name: str,
    value: Any,
    *,
    minimum: float = 0.0,
    allow_minimum: bool = True,
    maximum: float | None = None,
    what: str = "a number",
) -> float:
    """``value`` as a finite float in range (``minimum`` itself only with ``allow_minimum``)."""
    requirement = f"{what} {'>=' if allow_minimum else '>'} {minimum:g}" + (
        f" and <= {maximum:g}" if maximum is not None else ""
    )
    if isinstance(value, bool):
        raise InvalidSetting(name, requirement, value)
    try:
        result = float(value)
    except (TypeError, ValueError):
        raise InvalidSetting(name, requirement, value) from None
    if (
        not math.isfinite(result)
        or result < minimum
        or (result == minimum and not allow_minimum)
        or (maximum is not None and result > maximum)
    ):
        raise InvalidSetting(name, requirement, value)
    return result


def seconds(name: str, value: Any, *, allow_zero: bool = False) -> float:
    """``value`` as a finite number of seconds, > 0 (or >= 0 with ``allow_zero``)."""
    return number(name, value, allow_minimum=allow_zero, what="a number of seconds")


def switch(name: str, value: Any) -> bool:
    """``value`` as on/off: a bool, 1/0, true/false, yes/no, on/off."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise InvalidSetting(name, "true or false", value)


def project_settings(overrides: Mapping[str, Any] | None = None) -> Settings:
    """The project's settings, for a process that is not ``scrapy crawl`` (the service, the
    scripts, the tests): Scrapy's defaults, then ``scrapers/settings.py`` (the project's
    defaults, each written once, and what the environment gives), then ``overrides`` as ``-s``
    gives them. Components read their settings from here with no fallback of their own."""
    settings = Settings()
    settings.setmodule(project, priority="project")
    # Read again now: a long-lived process (the tests) may have changed its environment.
    settings.setdict(project.from_environment(), priority="project")
    settings.setdict(dict(overrides or {}), priority="cmdline")
    return settings
