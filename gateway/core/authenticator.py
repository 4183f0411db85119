"""The door's token check: from a bearer token (and the route's issuer restriction) to `Claims`
or a refusal.

This is the one place that joins the pure token verification with key sources, which may do I/O
(a remote JWKS fetch), and with the cache of verified tokens. Credentials and scopes are checked
around it by `gateway.core.decision`, in the spec's order.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Protocol

from gateway.core import tokens
from gateway.core.cache import CachedToken, VerifiedTokenCache, entry_size, token_digest
from gateway.core.claim_headers import claim_values, unencodable
from gateway.core.errors import InvalidToken, KeysUnavailable, TokenCheck
from gateway.core.keys import KeySet
from gateway.core.models import IssuerConfig, Route, TokensConfig
from gateway.core.tokens import Claims

__all__ = ["Authenticator", "KeySource", "StaticKeySource"]


class KeySource(Protocol):
    """Where an issuer's keys come from."""

    async def key_set(self, kid: str | None) -> KeySet | None:
        """The current keys for a token naming ``kid``; None when none were ever available."""


class StaticKeySource:
    """Keys loaded from configuration (PEM files, JWKS files, an HMAC secret)."""

    def __init__(self, keys: KeySet) -> None:
        self._keys = keys

    async def key_set(self, kid: str | None) -> KeySet:
        """Always the configured keys."""
        return self._keys


class Authenticator:
    """Verifies bearer tokens against the configured issuers and their keys."""

    def __init__(
        self,
        issuers: Sequence[IssuerConfig],
        tokens_config: TokensConfig,
        *,
        key_sources: Mapping[str, KeySource] | None = None,
        clock: Callable[[], float] = time.time,
        cache_size: int = 10_000,
        cache_bytes: int = 16 * 1024 * 1024,
        mapped_claims: frozenset[str] = frozenset(),
    ) -> None:
        """``mapped_claims``: the claims routes forward as headers (`claims_to_headers`); their
        header form is kept with each verified token (with the issuers' own)."""
        self._mapped = {
            issuer.name: mapped_claims | {claim for _, claim in issuer.claims_to_headers}
            for issuer in issuers
        }
        self._by_issuer = {issuer.issuer: issuer for issuer in issuers}
        sources = dict(key_sources or {})
        self._sources: dict[str, KeySource] = {
            issuer.name: sources.get(issuer.name) or StaticKeySource(issuer.keys)
            for issuer in issuers
        }
        self._tokens = tokens_config
        self._clock = clock
        self._cache = VerifiedTokenCache(cache_size, cache_bytes)

    async def verify_token(
        self, token: str, route: Route | None = None, *, payload: bool = True
    ) -> Claims:
        """Verify a token against the configured issuers (and the route's issuer restriction).

        A token verified before is answered from the cache while its validity window and its
        issuer's key set are unchanged; everything else is checked in full. The cache keeps no
        payload: with ``payload`` (for display) a cached token's is decoded again; without it
        (the door's decisions, which never read it) the claims carry none, cached or not.
        """
        digest = token_digest(token)
        cached = self._cache.get(digest)
        if cached is not None:
            _check_route_issuer(cached.claims.issuer, route)
            source = self._sources[cached.claims.issuer.name]
            if cached.usable(self._clock(), await source.key_set(cached.kid)):
                if cached.claims.mapped:
                    _check_mapped_claims(cached.claims, route)
                if payload:
                    return dataclasses.replace(cached.claims, payload=tokens.payload_of(token))
                return cached.claims
            self._cache.discard(digest)
        unverified = tokens.parse(token)
        issuer_id = unverified.issuer
        issuer = self._by_issuer.get(issuer_id) if isinstance(issuer_id, str) else None
        if issuer is None:
            raise InvalidToken("unknown_issuer", TokenCheck.ISSUER)
        _check_route_issuer(issuer, route)
        kid = unverified.kid if isinstance(unverified.kid, str) else None
        keys = await self._sources[issuer.name].key_set(kid)
        if keys is None:
            raise KeysUnavailable(retry_after=5)
        claims = tokens.verify(unverified, issuer, keys, self._tokens, self._clock())
        names = self._mapped[issuer.name]
        if names:
            claims = dataclasses.replace(claims, mapped=claim_values(claims.payload, names))
        entry = _cache_entry(claims, kid, keys, self._tokens.leeway)
        self._cache.put(digest, entry, entry_size(entry))
        if claims.mapped:
            _check_mapped_claims(claims, route)
        return claims if payload else entry.claims


def _check_route_issuer(issuer: IssuerConfig, route: Route | None) -> None:
    if route is not None and route.issuers is not None and issuer.name not in route.issuers:
        raise InvalidToken("issuer_not_allowed", TokenCheck.ISSUER)


def _check_mapped_claims(claims: Claims, route: Route | None) -> None:
    """A claim the route (or the issuer) forwards as a header must have a faithful header form,
    as the fixed identity claims must: otherwise the token is refused, never altered."""
    if route is not None and unencodable(
        route.claims_to_headers, claims.issuer.claims_to_headers, claims.mapped
    ):
        raise InvalidToken("invalid_claim", TokenCheck.IDENTITY)


def _cache_entry(claims: Claims, kid: str | None, keys: KeySet, leeway: float) -> CachedToken:
    # Only what a decision reads is kept: the payload (any size the issuer signed) is not.
    valid_from = claims.starts_at - leeway
    return CachedToken(claims.without_payload(), kid, keys, valid_from, claims.expires_at + leeway)
