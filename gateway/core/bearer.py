"""Pure extraction of the bearer token from a request's credentials (RFC 6750 section 2.1)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from urllib.parse import unquote_plus

from gateway.core.errors import MalformedCredentials, MissingCredentials

__all__ = ["extract_bearer", "query_has_access_token"]

_B64TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*")


def extract_bearer(authorization: Sequence[str], *, token_in_query: bool) -> str:
    """Return the single bearer token offered, or raise why there is none.

    ``authorization`` holds every ``Authorization`` header value (aiohttp's ``headers.get`` would
    return only the first). A token in the query is refused outright: the query is forwarded
    verbatim and the token would land in upstream logs (RFC 6750 section 5.3).
    """
    if token_in_query:
        raise MalformedCredentials("Access tokens in the query string are not accepted")
    if not authorization:
        raise MissingCredentials()
    if len(authorization) > 1:
        raise MalformedCredentials("Send exactly one Authorization header")
    value = authorization[0]
    scheme, separator, credentials = value.partition(" ")
    if scheme.lower() != "bearer":
        if "\t" in scheme or not scheme:
            raise MalformedCredentials("The Authorization header is malformed")
        raise MissingCredentials()
    if not separator or not _B64TOKEN.fullmatch(credentials):
        raise MalformedCredentials("The Authorization header must be 'Bearer' and one token")
    return credentials


def query_has_access_token(raw_query: str | None) -> bool:
    """Whether the raw query string carries an ``access_token`` parameter (in any spelling)."""
    if not raw_query:
        return False
    for part in raw_query.split("&"):
        name = unquote_plus(part.partition("=")[0])
        if name.strip().lower() == "access_token":
            return True
    return False
