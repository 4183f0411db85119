"""RemoteKeySource logic that needs a controllable clock: staleness, single flight, cooldowns.

The fetcher here is a plain function (the network parts are covered against real servers in
tests/functional/test_jwks.py); what cannot run in real time (a day of staleness) is driven by an
injected clock.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest
import yarl
from cryptography.hazmat.primitives.asymmetric import rsa

from gateway.config import ConfigError, JwksSettings, load
from gateway.core.keys import public_jwk
from gateway.core.models import IssuerConfig
from gateway.jwks.remote import FetchError, FetchResult, RemoteKeySource
from tests.support import DEFAULT_ROUTES, ENVIRON, TestKeys, write_config

ISSUER = IssuerConfig(
    name="idp",
    issuer="https://idp.example.test",
    algorithms=frozenset({"RS256"}),
    jwks_uri=yarl.URL("https://idp.example.test/jwks"),
)


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Fetcher:
    """Serves a JWKS document (or fails), counting calls; ``gate`` can hold a fetch open."""

    def __init__(self, key: rsa.RSAPrivateKey, kid: str = "k1") -> None:
        self.documents = {kid: key}
        self.calls = 0
        self.fail = False
        self.gate: asyncio.Event | None = None

    async def __call__(self, url: yarl.URL) -> FetchResult:
        self.calls += 1
        if self.gate is not None:
            await self.gate.wait()
        if self.fail:
            raise FetchError("http_500")
        keys = [
            {**public_jwk(key.public_key()), "kid": kid, "alg": "RS256"}
            for kid, key in self.documents.items()
        ]
        return FetchResult(json.dumps({"keys": keys}).encode(), None)


@pytest.fixture
def fetcher(keys: TestKeys) -> Fetcher:
    """A fetcher serving the test RSA key as k1."""
    return Fetcher(keys.rsa)


def _source(fetcher: Fetcher, clock: Clock, **settings: float) -> RemoteKeySource:
    return RemoteKeySource(ISSUER, fetcher, JwksSettings(**settings), clock=clock)  # type: ignore[arg-type]


async def test_keys_older_than_max_stale_are_dropped(fetcher: Fetcher) -> None:
    """Cached keys serve through failed refreshes only up to max_stale, then the issuer has none."""
    clock = Clock()
    source = _source(fetcher, clock, max_stale=3600.0)
    assert await source.refresh() is True
    fetcher.fail = True
    clock.now += 3000
    assert await source.refresh() is False
    assert (await source.key_set(None)) is not None
    clock.now += 700
    assert (await source.key_set(None)) is None
    assert source.state().loaded is False


async def test_concurrent_unknown_kids_share_one_fetch(fetcher: Fetcher) -> None:
    """Many requests naming one unknown kid at once wait on a single fetch."""
    clock = Clock()
    source = _source(fetcher, clock)
    assert await source.refresh() is True
    fetcher.gate = asyncio.Event()
    waiters = [asyncio.create_task(source.key_set("new")) for _ in range(20)]
    await asyncio.sleep(0.01)
    fetcher.gate.set()
    await asyncio.gather(*waiters)
    assert fetcher.calls == 2


async def test_unknown_kid_refetch_is_rate_limited_by_cooldown(fetcher: Fetcher) -> None:
    """A second unknown kid inside the cooldown costs no fetch; after it, one more fetch."""
    clock = Clock()
    source = _source(fetcher, clock, kid_miss_cooldown=10.0)
    await source.refresh()
    await source.key_set("a")
    await source.key_set("b")
    await source.key_set("a")
    assert fetcher.calls == 2
    clock.now += 10
    await source.key_set("c")
    assert fetcher.calls == 3


async def test_rotated_key_found_by_kid_miss_refetch(fetcher: Fetcher, keys: TestKeys) -> None:
    """A kid that appears after rotation is found by the refetch its first token triggers."""
    clock = Clock()
    source = _source(fetcher, clock)
    await source.refresh()
    fetcher.documents = {"k2": keys.attacker}
    key_set = await source.key_set("k2")
    assert key_set is not None
    assert key_set.kids == ("k2",)


async def test_kid_miss_wait_is_bounded(fetcher: Fetcher) -> None:
    """A request waiting on a hanging refetch gives up after kid_miss_wait, keeping the old keys."""
    clock = Clock()
    source = _source(fetcher, clock, kid_miss_wait=0.05)
    await source.refresh()
    fetcher.gate = asyncio.Event()
    key_set = await asyncio.wait_for(source.key_set("new"), timeout=1)
    assert key_set is not None
    assert key_set.kids == ("k1",)
    fetcher.gate.set()
    await source.stop()


def test_backoff_grows_and_is_capped(fetcher: Fetcher) -> None:
    """Retry delays after failures double from retry_min up to retry_max (with +-20 % jitter)."""
    source = _source(fetcher, Clock(), retry_min=1.0, retry_max=8.0)
    delays = []
    for failures in range(1, 7):
        source._failures = failures
        delays.append(source._next_delay(False))
    for got, base in zip(delays, [1, 2, 4, 8, 8, 8], strict=True):
        assert base * 0.8 <= got <= base * 1.2


@pytest.mark.parametrize(
    ("issuer_yaml", "fragment"),
    [
        (
            "issuer: https://idp.example.com\n    jwks_uri: http://idp.example.com/jwks",
            "plain http",
        ),
        ("issuer: http://idp.example.com\n    discovery: true", "plain http"),
        (
            "issuer: https://idp.example.com\n    jwks_uri: https://idp.example.com/j\n"
            "    discovery: true",
            "either 'jwks_uri' or 'discovery'",
        ),
        (
            "issuer: https://idp.example.com\n    discovery: true\n    keys: [keys/public.pem]",
            "cannot be combined",
        ),
        ("issuer: not-a-url\n    discovery: true", "needs an issuer that is an http(s) URL"),
        (
            "issuer: https://idp.example.com\n    jwks_uri: ftp://idp.example.com/j",
            "http:// or https://",
        ),
    ],
)
def test_remote_issuer_config_errors(
    tmp_path: Path, keys: TestKeys, issuer_yaml: str, fragment: str
) -> None:
    """Remote key sources need https (or loopback, or an explicit opt-in) and one source kind."""
    gateway = (
        "routes: routes.yaml\nissuers:\n  - name: idp\n    algorithms: [RS256]\n    "
        + issuer_yaml.replace("{", "{{").replace("}", "}}")
        + "\n"
    )
    path = write_config(tmp_path, keys, routes=DEFAULT_ROUTES, gateway=gateway)
    with pytest.raises(ConfigError) as caught:
        load(path, ENVIRON)
    assert any(fragment in issue.message for issue in caught.value.issues), caught.value.issues


def test_insecure_http_allowed_only_when_asked(tmp_path: Path, keys: TestKeys) -> None:
    """`allow_insecure_http: true` lets an http JWKS URI through validation."""
    gateway = (
        "routes: routes.yaml\nissuers:\n  - name: idp\n    algorithms: [RS256]\n"
        "    issuer: https://idp.example.com\n    jwks_uri: http://idp.example.com/jwks\n"
        "    allow_insecure_http: true\n"
    )
    config = load(write_config(tmp_path, keys, gateway=gateway), ENVIRON)
    assert config.issuers[0].remote
    assert config.issuers[0].allow_insecure_http


class BrokenFetcher(Fetcher):
    """A fetcher with a bug: it raises something other than `FetchError` ``bugs`` times."""

    def __init__(self, key: rsa.RSAPrivateKey, bugs: int) -> None:
        super().__init__(key)
        self.bugs = bugs

    async def __call__(self, url: yarl.URL) -> FetchResult:
        if self.bugs:
            self.bugs -= 1
            self.calls += 1
            raise KeyError("a bug")
        return await super().__call__(url)


async def test_unexpected_exception_in_a_fetch_is_a_failed_fetch(keys: TestKeys) -> None:
    """An exception that is not a FetchError makes refresh() answer False with the reason kept in
    the state, never raise; cached keys stay in use."""
    fetcher = BrokenFetcher(keys.rsa, bugs=1)
    source = _source(fetcher, Clock())
    assert await source.refresh() is False
    assert source.state().last_error == "unexpected:KeyError"
    assert await source.refresh() is True
    assert source.state().last_error is None
    fetcher.bugs = 1
    assert await source.refresh() is False
    assert (await source.key_set("k1")) is not None


async def test_refresher_keeps_running_whatever_a_refresh_raises(
    keys: TestKeys, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The background refresher outlives an exception from the refresh itself and from the
    fetcher, and loads the keys on a later try."""
    fetcher = BrokenFetcher(keys.rsa, bugs=2)
    source = RemoteKeySource(ISSUER, fetcher, JwksSettings(retry_min=0.01, retry_max=0.02))
    real_refresh = source.refresh
    refreshes = 0

    def refresh() -> asyncio.Future[bool]:
        nonlocal refreshes
        refreshes += 1
        if refreshes == 1:
            raise RuntimeError("not even a fetch")
        return real_refresh()

    monkeypatch.setattr(source, "refresh", refresh)
    await source.start()
    deadline = time.monotonic() + 5
    try:
        while not source.ready:
            assert time.monotonic() < deadline, "the keys never loaded"
            await asyncio.sleep(0.01)
    finally:
        await source.stop()
    assert refreshes == 4
    assert fetcher.calls == 3
