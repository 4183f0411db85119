"""The verified-token cache: one signature check per token, never past exp, never across a
key-set change, bounded in size."""

from __future__ import annotations

import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import pytest

from gateway.config import Config, load
from gateway.core import tokens as token_module
from gateway.core.authenticator import Authenticator
from gateway.core.cache import CachedToken, VerifiedTokenCache
from gateway.core.decision import Decider
from gateway.core.errors import InvalidToken
from gateway.core.keys import KeySet
from gateway.core.models import Route
from gateway.core.outcomes import Forward, RequestFacts
from gateway.core.routes import RouteTable
from tests.support import ENVIRON, TestKeys, TokenFactory, write_config


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


class SwappableKeys:
    """A key source whose key set the test can replace (as a JWKS refresh would)."""

    def __init__(self, keys: KeySet) -> None:
        self.keys = keys

    async def key_set(self, kid: str | None) -> KeySet:
        return self.keys


@pytest.fixture
def config(tmp_path: Path, keys: TestKeys) -> Config:
    """The default test config (local RSA/EC/Ed keys and the dev HMAC issuer)."""
    return load(write_config(tmp_path, keys), ENVIRON)


@pytest.fixture
def verify_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts full verifications (signature and claims) by wrapping tokens.verify."""
    calls: list[int] = []
    real = token_module.verify

    def counting(*args: object, **kwargs: object) -> token_module.Claims:
        calls.append(1)
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(token_module, "verify", counting)
    return calls


def _authenticator(
    config: Config, clock: Callable[[], float], source: SwappableKeys | None = None, size: int = 100
) -> Authenticator:
    sources = {"local": source} if source is not None else None
    return Authenticator(
        config.issuers, config.tokens, key_sources=sources, clock=clock, cache_size=size
    )


async def test_signature_checked_once_per_token(
    config: Config, tokens: TokenFactory, verify_calls: list[int]
) -> None:
    """The same token verified three times costs one full verification."""
    authenticator = _authenticator(config, Clock())
    token = tokens.good()
    for _ in range(3):
        assert (await authenticator.verify_token(token)).subject == "alice"
    assert len(verify_calls) == 1


async def test_cached_token_is_refused_once_expired(
    config: Config, tokens: TokenFactory, verify_calls: list[int]
) -> None:
    """A cached token past exp + leeway is verified again, and refused as expired."""
    clock = Clock()
    authenticator = _authenticator(config, clock)
    token = tokens.good(exp=int(clock.now) + 60)
    await authenticator.verify_token(token)
    clock.now += 60 + 31
    with pytest.raises(InvalidToken) as caught:
        await authenticator.verify_token(token)
    assert caught.value.reason == "expired"
    assert len(verify_calls) == 2


async def test_key_set_change_drops_cached_verification(
    config: Config, tokens: TokenFactory, verify_calls: list[int]
) -> None:
    """When the issuer's key set changes, a cached token is verified against the new set: gone
    keys stop verifying at once."""
    local = next(issuer for issuer in config.issuers if issuer.name == "local")
    source = SwappableKeys(local.keys)
    authenticator = _authenticator(config, Clock(), source)
    token = tokens.good()
    await authenticator.verify_token(token)
    source.keys = KeySet(keys=tuple(k for k in local.keys.keys if k.kid != "k1"))
    with pytest.raises(InvalidToken):
        await authenticator.verify_token(token)
    assert len(verify_calls) == 2


async def test_route_issuer_restriction_applies_to_cached_tokens(
    config: Config, tokens: TokenFactory
) -> None:
    """A token cached on one route is still refused on a route that excludes its issuer."""
    authenticator = _authenticator(config, Clock())
    token = tokens.good()
    await authenticator.verify_token(token)
    dev_only = Route(path="/x", upstream="orders", issuers=frozenset({"dev"}))
    with pytest.raises(InvalidToken) as caught:
        await authenticator.verify_token(token, dev_only)
    assert caught.value.reason == "issuer_not_allowed"


async def test_invalid_tokens_are_not_cached(config: Config, tokens: TokenFactory) -> None:
    """A refused token leaves nothing in the cache."""
    authenticator = _authenticator(config, Clock())
    with pytest.raises(InvalidToken):
        await authenticator.verify_token(tokens.good(aud="other"))
    assert len(authenticator._cache) == 0


def test_cache_is_bounded_least_recently_used_first(config: Config) -> None:
    """Past its bound the cache drops the least recently used entry."""
    cache = VerifiedTokenCache(max_entries=2)
    entry = CachedToken.__new__(CachedToken)
    cache.put(b"a", entry)
    cache.put(b"b", entry)
    assert cache.get(b"a") is entry
    cache.put(b"c", entry)
    assert (cache.get(b"a"), cache.get(b"b"), cache.get(b"c")) == (entry, None, entry)
    assert len(cache) == 2


@pytest.mark.slow
async def test_large_claims_leave_the_cache_small(config: Config, tokens: TokenFactory) -> None:
    """2,000 valid tokens with about 100 KB of claims each leave under 4 MB in the cache (it
    keeps what a decision reads, not the payload), and its byte count stays under its bound."""
    authenticator = Authenticator(config.issuers, config.tokens)
    filler = "x" * 100_000
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for number in range(2_000):
            token = tokens.dev(sub=f"user-{number}", profile=f"{number}{filler}")
            assert (await authenticator.verify_token(token)).subject == f"user-{number}"
            del token
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert len(authenticator._cache) == 2_000
    assert held < 4_000_000, f"the cache holds {held / 1e6:.1f} MB"
    assert authenticator._cache.size < 16 * 1024 * 1024


def test_cache_is_bounded_in_bytes() -> None:
    """Past its byte bound the cache drops the least recently used entries; an entry larger than
    a 64th of the bound is not kept."""
    cache = VerifiedTokenCache(max_entries=100, max_bytes=64_000)
    entry = CachedToken.__new__(CachedToken)
    for name in (b"a", b"b", b"c"):
        cache.put(name, entry, 1_000)
    assert cache.size == 3_000
    cache.put(b"huge", entry, 1_001)
    assert cache.get(b"huge") is None
    for number in range(64):
        cache.put(bytes([number]) * 2, entry, 1_000)
    assert cache.size <= 64_000
    assert cache.get(b"a") is None
    cache.discard(b"\x3f\x3f")
    assert cache.size <= 63_000


async def test_cached_decision_equals_a_fresh_one(
    config: Config, tokens: TokenFactory, verify_calls: list[int]
) -> None:
    """A decision answered from the cache is identical to the fresh one (route, upstream, result,
    claims); decisions carry no payload, and `verify_token` decodes a cached token's again."""
    decider = Decider(
        routes=config.routes,
        table=RouteTable.from_config(config.routes),
        authenticator=_authenticator(config, Clock()),
        max_body_size=1024,
    )
    token = tokens.good(client_id="shop", scope="orders:read extra", profile="y" * 50_000)
    facts = RequestFacts(method="GET", raw_target="/orders/1", authorization=(f"Bearer {token}",))
    fresh = await decider.decide(facts)
    cached = await decider.decide(facts)
    assert len(verify_calls) == 1
    assert isinstance(fresh, Forward)
    assert isinstance(cached, Forward)
    assert cached == fresh
    assert cached.claims is not None
    assert fresh.claims is not None
    assert cached.claims.payload == fresh.claims.payload == {}
    again = await decider.authenticator.verify_token(token)
    assert again.payload["profile"] == "y" * 50_000
    assert len(verify_calls) == 1
    for name in ("issuer", "subject", "client_id", "scopes", "expires_at", "starts_at"):
        assert getattr(cached.claims, name) == getattr(fresh.claims, name)
