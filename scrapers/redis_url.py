"""``REDIS_URL``: checked once, and shown only without its password.

Every process reads ``REDIS_URL`` from the environment (the crawl and ``scrapy frontier`` through
``scrapers.settings``, the enrichment service through its config); ``-s REDIS_URL=…`` still
overrides it. ``check_redis_url`` refuses a URL redis-py cannot use with one line that never
holds the password, and ``redacted_redis_url`` / ``redis_error`` are the one way a Redis URL or
a Redis error reaches a log line or a message.
"""

from __future__ import annotations

import re
from urllib.parse import unquote, urlsplit

import redis.connection

SCHEMES = ("redis", "rediss", "unix")
_QUERY_PASSWORD = re.compile(r"(?i)([?&]password=)[^&]*")


class RedisUrlError(ValueError):
    """``REDIS_URL`` cannot be used; the message is one line without the password. Every command
    answers it with exit status 2."""


def check_redis_url(url: str) -> str:
    """``url`` when redis-py can connect with it, else ``RedisUrlError``.

    redis-py's own parse errors quote parts of the URL (a password holding an unencoded ``/``
    spills into the port: "Port could not be cast to integer value as '<password part>'"), so
    they are never shown: the message names the URL redacted and what is wrong with it.
    """
    scheme, separator, _ = url.partition("://")
    if not separator or scheme.lower() not in SCHEMES:
        shown = f"scheme {scheme.lower()!r}" if separator and scheme.isalnum() else "no scheme"
        raise RedisUrlError(f"REDIS_URL must be a redis://, rediss:// or unix:// URL, got {shown}")
    try:
        redis.connection.parse_url(url)
    except ValueError:
        raise RedisUrlError(
            f"REDIS_URL is not a valid Redis URL: {redacted_redis_url(url)} (percent-encode a"
            " password's /, @ and : characters, e.g. / as %2F)"
        ) from None
    return url


def redacted_redis_url(url: str) -> str:
    """The URL without its user info (name and password) or a ``password=`` query value.

    The user info ends at the last ``@``, wherever it is: an unencoded ``/`` in a password must
    not leave the rest of it in the "host".
    """
    scheme, separator, rest = url.partition("://")
    if not separator:
        return "(not a URL)"
    if "@" in rest:
        rest = "***@" + rest.rpartition("@")[2]
    return f"{scheme}://" + _QUERY_PASSWORD.sub(r"\1***", rest)


def redis_error(error: BaseException, url: str) -> str:
    """A Redis error on one line, with any spelling of ``url``'s password replaced by ``***``."""
    text = " ".join(str(error).split()) or type(error).__name__
    for secret in sorted(_password_spellings(url), key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


def _password_spellings(url: str) -> set[str]:
    """The password of ``url`` (user info up to the last ``@``, after its first ``:``; all of it
    without one, as redis-py then takes it; or ``?password=``), raw and percent-decoded."""
    rest = url.partition("://")[2]
    found: set[str] = set()
    if "@" in rest:
        name, colon, password = rest.rpartition("@")[0].partition(":")
        found.add(password if colon else name)
    try:
        query = urlsplit(url).query
    except ValueError:
        query = rest.partition("?")[2]
    for pair in query.split("&"):
        name, _, value = pair.partition("=")
        if name.lower() == "password":
            found.add(value)
    found.discard("")
    return found | {unquote(secret) for secret in found}
