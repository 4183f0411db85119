"""A bounded cache of verified tokens, so a signature is checked once per token, not per request.

Entries are keyed by the token's SHA-256 (the token itself is not kept), bounded in number and in
(estimated) bytes, least recently used first, never used outside the token's own validity window,
and tied to the exact key set that verified them: when an issuer's key set changes (a JWKS
refresh, a config reload), every entry verified with the old set is verified again on its next
use. An entry keeps only what a decision reads (issuer, subject, client id, scopes, validity
window), never the token's payload, so large claims cost nothing once the request is answered.
"""

from __future__ import annotations

import hashlib
import sys
from collections import OrderedDict
from dataclasses import dataclass

from gateway.core.keys import KeySet
from gateway.core.tokens import Claims

__all__ = ["ENTRY_OVERHEAD", "CachedToken", "VerifiedTokenCache", "entry_size", "token_digest"]

# The fixed cost of one entry: its digest key, the dict slot, the CachedToken and Claims objects.
ENTRY_OVERHEAD = 512


def token_digest(token: str) -> bytes:
    """The cache key of a token."""
    return hashlib.sha256(token.encode()).digest()


@dataclass(frozen=True, slots=True)
class CachedToken:
    """A verified token's claims and the conditions under which they still hold."""

    claims: Claims
    kid: str | None
    keys: KeySet
    valid_from: float  # max(nbf, iat) - leeway
    valid_until: float  # exp + leeway

    def usable(self, now: float, keys: KeySet | None) -> bool:
        """Inside its validity window, and the issuer's key set is the one that verified it."""
        return keys is self.keys and self.valid_from <= now <= self.valid_until


def entry_size(entry: CachedToken) -> int:
    """An estimate of the bytes an entry holds: the strings it keeps plus a fixed overhead (the
    issuer config and key set are shared with the configuration, not counted)."""
    claims = entry.claims
    strings = (claims.subject, claims.client_id, entry.kid)
    kept = sum(sys.getsizeof(value) for value in strings if value is not None)
    scopes = sys.getsizeof(claims.scopes) + sum(sys.getsizeof(scope) for scope in claims.scopes)
    mapped = sum(
        sys.getsizeof(claim) + (sys.getsizeof(value) if value is not None else 0)
        for claim, value in claims.mapped
    )
    return ENTRY_OVERHEAD + kept + scopes + mapped


class VerifiedTokenCache:
    """Least-recently-used mapping from token digest to `CachedToken`, bounded by
    ``max_entries`` and by ``max_bytes`` (the sum of the sizes given to `put`). An entry larger
    than a 64th of ``max_bytes`` is not kept: one huge token must not empty the cache."""

    def __init__(self, max_entries: int = 10_000, max_bytes: int = 16 * 1024 * 1024) -> None:
        self._max = max_entries
        self._max_bytes = max_bytes
        self._entries: OrderedDict[bytes, tuple[CachedToken, int]] = OrderedDict()
        self._bytes = 0

    def get(self, digest: bytes) -> CachedToken | None:
        """The entry for a token digest, marking it recently used."""
        found = self._entries.get(digest)
        if found is None:
            return None
        self._entries.move_to_end(digest)
        return found[0]

    def put(self, digest: bytes, entry: CachedToken, size: int = ENTRY_OVERHEAD) -> None:
        """Remember a verified token of ``size`` bytes (`entry_size`), evicting the least
        recently used past either bound."""
        if self._max <= 0 or size > self._max_bytes // 64:
            return
        self.discard(digest)
        self._entries[digest] = (entry, size)
        self._bytes += size
        while len(self._entries) > self._max or self._bytes > self._max_bytes:
            _, (_, dropped) = self._entries.popitem(last=False)
            self._bytes -= dropped

    def discard(self, digest: bytes) -> None:
        """Forget one token."""
        found = self._entries.pop(digest, None)
        if found is not None:
            self._bytes -= found[1]

    @property
    def size(self) -> int:
        """The estimated bytes held (the sum of the entries' sizes)."""
        return self._bytes

    def __len__(self) -> int:
        return len(self._entries)
