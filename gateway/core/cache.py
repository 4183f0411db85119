"""A bounded cache of verified tokens, so a signature is checked once per token, not per request.

Entries are keyed by the token's SHA-256 (the token itself is not kept), bounded in number
(least recently used goes first), never used outside the token's own validity window, and tied
to the exact key set that verified them: when an issuer's key set changes (a JWKS refresh, a
config reload), every entry verified with the old set is verified again on its next use.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import dataclass

from gateway.core.keys import KeySet
from gateway.core.tokens import Claims

__all__ = ["CachedToken", "VerifiedTokenCache", "token_digest"]


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


class VerifiedTokenCache:
    """Least-recently-used mapping from token digest to `CachedToken`."""

    def __init__(self, max_entries: int = 10_000) -> None:
        self._max = max_entries
        self._entries: OrderedDict[bytes, CachedToken] = OrderedDict()

    def get(self, digest: bytes) -> CachedToken | None:
        """The entry for a token digest, marking it recently used."""
        entry = self._entries.get(digest)
        if entry is not None:
            self._entries.move_to_end(digest)
        return entry

    def put(self, digest: bytes, entry: CachedToken) -> None:
        """Remember a verified token, evicting the least recently used past the bound."""
        if self._max <= 0:
            return
        self._entries[digest] = entry
        self._entries.move_to_end(digest)
        while len(self._entries) > self._max:
            self._entries.popitem(last=False)

    def discard(self, digest: bytes) -> None:
        """Forget one token."""
        self._entries.pop(digest, None)

    def __len__(self) -> int:
        return len(self._entries)
