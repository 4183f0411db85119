"""``claims_to_headers``: token claims the upstream receives as headers, beside the four fixed
identity headers.

A mapping's header names are inside the gateway-owned ``X-Auth-`` prefix, which is stripped from
every client request (`gateway.core.headers.STRIPPED_PREFIXES`), so a mapped header can only
ever come from the gateway; the four fixed names are the gateway's own and cannot be remapped.
Values follow the rule of the identity headers: forwarded exactly as the token holds them, or
the token is refused (``invalid_claim``), never altered on the way.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = [
    "FIXED_IDENTITY_HEADERS",
    "MAX_VALUE_LENGTH",
    "ClaimHeaders",
    "MappedClaims",
    "check_header_name",
    "claim_values",
    "header_safe",
    "mapped_headers",
    "unencodable",
]

# (header name as configured, claim name) pairs, in the order they were written.
ClaimHeaders = tuple[tuple[str, str], ...]
# (claim name, header value) for each mapped claim the token holds; None: present, but it has no
# faithful header form (the token is refused wherever the claim is mapped).
MappedClaims = tuple[tuple[str, str | None], ...]

FIXED_IDENTITY_HEADERS = frozenset(
    {"x-auth-subject", "x-auth-issuer", "x-auth-scopes", "x-auth-client-id"}
)
GATEWAY_PREFIX = "x-auth-"
# A longer value is refused rather than forwarded: upstream servers cap a header line at 4-16 KiB
# and would refuse the request in a way that names no cause.
MAX_VALUE_LENGTH = 4096

# Printable ASCII without a space at either end: non-ASCII would be read back as Latin-1 by WSGI
# servers and an edge space trimmed, each naming something else than the token does.
_HEADER_SAFE = re.compile(r"[!-~](?:[ -~]*[!-~])?")
_HEADER_NAME = re.compile(r"[A-Za-z0-9-]+")


def header_safe(value: str) -> bool:
    """Whether a string can be a header value exactly as it is."""
    return _HEADER_SAFE.fullmatch(value) is not None


def check_header_name(name: str) -> None:
    """Refuse a header name a mapping may not set (``ValueError`` says why)."""
    if not _HEADER_NAME.fullmatch(name):
        raise ValueError(f"'{name}' is not a header name (letters, digits and '-')")
    lower = name.lower()
    if not lower.startswith(GATEWAY_PREFIX) or lower == GATEWAY_PREFIX:
        raise ValueError(
            f"'{name}' is outside the gateway's own 'X-Auth-' prefix (the only headers a client "
            "can never send through)"
        )
    if lower in FIXED_IDENTITY_HEADERS:
        raise ValueError(f"'{name}' is one of the gateway's fixed identity headers")


def claim_values(payload: Mapping[str, Any], names: Iterable[str]) -> MappedClaims:
    """The header form of each of ``names`` the payload holds (absent and null claims, and
    empty lists, are left out: their header is absent)."""
    values: list[tuple[str, str | None]] = []
    for name in sorted(names):
        value = payload.get(name)
        if value is None or value == []:
            continue
        values.append((name, _header_form(value)))
    return tuple(values)


def _header_form(value: Any) -> str | None:
    """A string as it is; true/false; a number as JSON writes it; a list of strings joined
    with ','. None for anything without a faithful form (objects, nested or mixed lists, a
    string with non-ASCII or an edge space, a list item with a ',')."""
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, (int, float)):
        text = json.dumps(value)
    elif isinstance(value, str):
        text = value
    elif isinstance(value, list) and all(
        isinstance(item, str) and "," not in item and header_safe(item) for item in value
    ):
        text = ",".join(value)
    else:
        return None
    return text if header_safe(text) and len(text) <= MAX_VALUE_LENGTH else None


def _merged(route: ClaimHeaders, issuer: ClaimHeaders) -> dict[str, tuple[str, str]]:
    """Lower-case header name -> (name as written, claim); the route's mapping wins."""
    merged = {header.lower(): (header, claim) for header, claim in issuer}
    merged |= {header.lower(): (header, claim) for header, claim in route}
    return merged


def unencodable(route: ClaimHeaders, issuer: ClaimHeaders, mapped: MappedClaims) -> bool:
    """Whether a claim this route (or the token's issuer) maps has no faithful header form."""
    if not mapped or not (route or issuer):
        return False
    bad = {claim for claim, value in mapped if value is None}
    return bool(bad) and any(claim in bad for _, claim in _merged(route, issuer).values())


def mapped_headers(
    route: ClaimHeaders, issuer: ClaimHeaders, mapped: MappedClaims
) -> list[tuple[str, str]]:
    """The headers to add: each mapped claim the token holds, under its header name."""
    if not mapped or not (route or issuer):
        return []
    values = dict(mapped)
    return [
        (header, value)
        for header, claim in _merged(route, issuer).values()
        if (value := values.get(claim)) is not None
    ]
