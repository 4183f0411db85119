"""The verified-token cache: one signature check per token, never past exp, never across a
key-set change, bounded in size."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from gateway.config import Config, load
from gateway.core import tokens as token_module
from gateway.core.authenticator import Authenticator
from gateway.core.cache import CachedToken, VerifiedTokenCache
from gateway.core.errors import InvalidToken
from gateway.core.keys import KeySet
from gateway.core.models import Route
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
