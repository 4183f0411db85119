"""Remote key sets: JWKS over HTTP, with OIDC discovery, caching, rotation and outage handling.

A `RemoteKeySource` keeps one issuer's key set fresh in the background so that no request waits
for a routine refresh. A token naming an unknown ``kid`` triggers at most one refetch per
cooldown, shared by every request waiting on it (bounded wait); unknown kids are remembered for
the cooldown, so a flood of random kids costs the identity provider at most one request per
cooldown. A failed refresh keeps the last good set (up to ``max_stale``); an issuer that never
had keys answers None, which the door turns into 503, never into a pass.

The refresher never dies: a key set entry that cannot be used is skipped (and reported), and
whatever a refresh raises is a failed fetch with a reason (``unexpected:<type>`` for what no
check foresaw), logged, shown in the issuer's state and retried with backoff.

PyJWT's `PyJWKClient` is not used: it fetches with synchronous urllib and would stall the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import re
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import aiohttp
import yarl

from gateway.config import JwksSettings
from gateway.core.keys import KeyLoadError, KeySet, SkippedKey, keys_from_jwks
from gateway.core.models import IssuerConfig
from gateway.core.urls import https_or_loopback
from gateway.jwks.events import KeySetEvents

__all__ = [
    "FetchError",
    "FetchResult",
    "Fetcher",
    "HttpFetcher",
    "IssuerKeyState",
    "RemoteKeySource",
    "RemoteKeys",
    "discovery_url",
]

_MAX_AGE = re.compile(r"(?:^|,)\s*max-age\s*=\s*\"?(\d+)\"?", re.IGNORECASE)
_NO_STORE = re.compile(r"(?:^|,)\s*no-(?:store|cache)\b", re.IGNORECASE)
_MAX_REMEMBERED_KIDS = 10_000


class FetchError(Exception):
    """A key-set or discovery fetch failed; ``reason`` is a short code for logs and metrics."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class FetchResult:
    """A fetched document and how long its server says it may be cached."""

    body: bytes
    max_age: float | None


Fetcher = Callable[[yarl.URL], Awaitable[FetchResult]]


@dataclass(frozen=True, slots=True)
class IssuerKeyState:
    """What readiness and operators need to know about one remote issuer's keys."""

    issuer: str
    loaded: bool
    key_count: int
    kids: tuple[str, ...]
    last_success: str | None
    last_error: str | None  # why the latest fetch failed; None once one succeeds
    skipped_keys: tuple[SkippedKey, ...] = ()  # entries of the current set left out, and why


def discovery_url(issuer: str) -> yarl.URL:
    """``{issuer}/.well-known/openid-configuration``, with or without a trailing slash."""
    return yarl.URL(issuer.rstrip("/") + "/.well-known/openid-configuration")


class HttpFetcher:
    """GETs documents with aiohttp, on a session of its own (not the upstream pool): timeouts,
    a size cap, no redirects, no cookies, no proxy settings from the environment."""

    def __init__(self, settings: JwksSettings) -> None:
        self._settings = settings
        self._session: aiohttp.ClientSession | None = None

    async def open(self) -> None:
        """Create the session (on the serving loop)."""
        self._session = aiohttp.ClientSession(
            cookie_jar=aiohttp.DummyCookieJar(), trust_env=False, raise_for_status=False
        )

    async def close(self) -> None:
        """Close the session."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def __call__(self, url: yarl.URL) -> FetchResult:
        """Fetch ``url``; any failure is a `FetchError`."""
        if self._session is None:
            raise FetchError("not_started")
        timeout = aiohttp.ClientTimeout(
            total=self._settings.timeout, sock_connect=self._settings.timeout
        )
        try:
            async with self._session.get(
                url, allow_redirects=False, timeout=timeout, headers={"Accept": "application/json"}
            ) as response:
                if response.status != 200:
                    raise FetchError(f"http_{response.status}")
                body = await _read_capped(response, self._settings.max_bytes)
                return FetchResult(body, _max_age(response.headers.getall("Cache-Control", [])))
        except TimeoutError:
            raise FetchError("timeout") from None
        except aiohttp.ClientError as exc:
            raise FetchError(f"connection:{type(exc).__name__}") from None


class RemoteKeys:
    """Every remote issuer's key source, with one fetcher session, started and stopped together."""

    def __init__(
        self,
        issuers: Sequence[IssuerConfig],
        settings: JwksSettings,
        *,
        fetcher: Fetcher | None = None,
        events: KeySetEvents | None = None,
    ) -> None:
        self._http = HttpFetcher(settings) if fetcher is None else None
        fetch: Fetcher = fetcher or self._http  # type: ignore[assignment]
        self._events = events or KeySetEvents()
        self.sources = {
            issuer.name: RemoteKeySource(issuer, fetch, settings, events=self._events)
            for issuer in issuers
            if issuer.remote
        }
        self._issuers = [issuer for issuer in issuers if issuer.remote]

    async def start(self) -> None:
        """Open the session and start every source's refresher."""
        for issuer in self._issuers:
            if issuer.allow_insecure_http:
                self._events.insecure_http_allowed(issuer.name)
        if self._http is not None:
            await self._http.open()
        for source in self.sources.values():
            await source.start()

    async def stop(self) -> None:
        """Stop every refresher and close the session."""
        for source in self.sources.values():
            await source.stop()
        if self._http is not None:
            await self._http.close()

    @property
    def ready(self) -> bool:
        """Whether every remote issuer has a usable key set."""
        return all(source.ready for source in self.sources.values())

    def states(self) -> list[IssuerKeyState]:
        """Each remote issuer's key state, for /readyz."""
        return [source.state() for source in self.sources.values()]


class RemoteKeySource:
    """One remote issuer's key set, kept fresh in the background."""

    def __init__(
        self,
        issuer: IssuerConfig,
        fetcher: Fetcher,
        settings: JwksSettings,
        *,
        clock: Callable[[], float] = time.monotonic,
        events: KeySetEvents | None = None,
    ) -> None:
        self._issuer = issuer
        self._events = events or KeySetEvents()
        self._fetch = fetcher
        self._settings = settings
        self._clock = clock
        self._keys: KeySet | None = None
        self._fetched_at = 0.0
        self._ttl = settings.default_ttl
        self._jwks_uri: yarl.URL | None = issuer.jwks_uri
        self._inflight: asyncio.Task[bool] | None = None
        self._refresher: asyncio.Task[None] | None = None
        self._last_kid_refetch = float("-inf")
        self._unknown_kids: dict[str, float] = {}
        self._failures = 0
        self._last_success: datetime | None = None
        self._last_error: str | None = None
        self._skipped: tuple[SkippedKey, ...] = ()
        self._stale_logged = False

    # -- lifecycle --------------------------------------------------------------------------

    async def start(self) -> None:
        """Start the background refresher (its first fetch happens at once)."""
        self._refresher = asyncio.create_task(
            self._refresh_loop(), name=f"jwks:{self._issuer.name}"
        )

    async def stop(self) -> None:
        """Stop the refresher and any fetch in flight."""
        for task in (self._refresher, self._inflight):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    # -- the KeySource protocol -------------------------------------------------------------

    async def key_set(self, kid: str | None) -> KeySet | None:
        """The current keys; refetches (rate-limited) when ``kid`` is unknown."""
        keys = self._current()
        if keys is None:
            await self._wait_for_inflight()
            return self._current()
        if kid is None or kid in keys.ambiguous_kids or _has_kid(keys, kid):
            return keys
        now = self._clock()
        if self._unknown_kids.get(kid, float("-inf")) > now:
            return keys
        if now - self._last_kid_refetch >= self._settings.kid_miss_cooldown:
            self._last_kid_refetch = now
            await self._wait(self.refresh())
            keys = self._current() or keys
            if _has_kid(keys, kid):
                return keys
        self._remember_unknown(kid, now)
        return keys

    # -- state ------------------------------------------------------------------------------

    def state(self) -> IssuerKeyState:
        """A snapshot for readiness reports."""
        keys = self._current()
        return IssuerKeyState(
            issuer=self._issuer.name,
            loaded=keys is not None,
            key_count=len(keys.keys) if keys else 0,
            kids=keys.kids if keys else (),
            last_success=self._last_success.isoformat() if self._last_success else None,
            last_error=self._last_error,
            skipped_keys=self._skipped if keys else (),
        )

    @property
    def ready(self) -> bool:
        """Whether a usable key set is loaded."""
        return self._current() is not None

    # -- fetching ---------------------------------------------------------------------------

    def refresh(self) -> asyncio.Future[bool]:
        """Fetch now, or join the fetch already in flight (single flight)."""
        if self._inflight is None or self._inflight.done():
            self._inflight = asyncio.create_task(self._fetch_once())
        return asyncio.shield(self._inflight)

    async def _refresh_loop(self) -> None:
        while True:
            try:
                ok = await self.refresh()
            except Exception as exc:  # a fetch reports its own failures; this keeps the task alive
                self._failed(_unexpected(exc))
                ok = False
            await asyncio.sleep(self._next_delay(ok))

    def _next_delay(self, ok: bool) -> float:
        settings = self._settings
        if ok:
            # Refresh before expiry, so no request ever waits for a routine refresh.
            return max(settings.min_ttl, self._ttl) * 0.8
        exponent = min(max(self._failures - 1, 0), 16)
        backoff = min(settings.retry_max, settings.retry_min * float(2**exponent))
        return backoff * random.uniform(0.8, 1.2)  # noqa: S311 - jitter, not cryptography

    async def _fetch_once(self) -> bool:
        try:
            uri = await self._resolve_jwks_uri()
            result = await self._fetch(uri)
            keys, skipped = _parse_jwks(result.body, self._issuer.algorithms, str(uri))
        except FetchError as exc:
            self._failed(exc.reason)
            return False
        except Exception as exc:  # no check foresaw it: still a failed fetch, never a dead task
            self._failed(_unexpected(exc))
            return False
        self._keys = keys
        self._skipped = skipped
        self._fetched_at = self._clock()
        self._ttl = _bounded_ttl(result.max_age, self._settings)
        self._failures = 0
        self._last_success = datetime.now(UTC)
        self._last_error = None
        self._stale_logged = False
        self._unknown_kids = {k: t for k, t in self._unknown_kids.items() if not _has_kid(keys, k)}
        self._events.fetched(self._issuer.name, keys, skipped, self._ttl)
        return True

    def _failed(self, reason: str) -> None:
        self._failures += 1
        self._last_error = reason
        if self._issuer.discovery:
            self._jwks_uri = None  # rediscover next time: the provider may have moved its keys
        self._events.fetch_failed(
            self._issuer.name,
            reason,
            failures=self._failures,
            keeping_cached=self._current() is not None,
            retry_in=self._next_delay(False),
        )

    async def _resolve_jwks_uri(self) -> yarl.URL:
        if self._jwks_uri is not None:
            return self._jwks_uri
        document = _json_object((await self._fetch(discovery_url(self._issuer.issuer))).body)
        if document.get("issuer") != self._issuer.issuer:
            # OpenID Connect Discovery 1.0 section 4.3: the issuer must match exactly.
            self._events.discovery_mismatch(self._issuer.name)
            raise FetchError("discovery_issuer_mismatch")
        raw = document.get("jwks_uri")
        if not isinstance(raw, str):
            raise FetchError("discovery_without_jwks_uri")
        try:
            uri = yarl.URL(raw)
        except ValueError:
            raise FetchError("discovery_jwks_uri_invalid") from None
        if not https_or_loopback(uri, allow_insecure_http=self._issuer.allow_insecure_http):
            raise FetchError("discovery_jwks_uri_not_https")
        self._jwks_uri = uri
        return uri

    # -- helpers ----------------------------------------------------------------------------

    def _current(self) -> KeySet | None:
        if self._keys is None:
            return None
        if self._clock() - self._fetched_at > self._settings.max_stale:
            if not self._stale_logged:
                self._stale_logged = True
                self._events.keys_expired(self._issuer.name)
            return None
        return self._keys

    async def _wait_for_inflight(self) -> None:
        if self._inflight is not None and not self._inflight.done():
            await self._wait(asyncio.shield(self._inflight))

    async def _wait(self, future: Awaitable[bool]) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(future, self._settings.kid_miss_wait)

    def _remember_unknown(self, kid: str, now: float) -> None:
        if len(self._unknown_kids) >= _MAX_REMEMBERED_KIDS:
            self._unknown_kids = {k: t for k, t in self._unknown_kids.items() if t > now}
            if len(self._unknown_kids) >= _MAX_REMEMBERED_KIDS:
                self._unknown_kids.clear()
        self._unknown_kids[kid] = now + self._settings.kid_miss_cooldown


async def _read_capped(response: aiohttp.ClientResponse, limit: int) -> bytes:
    if response.content_length is not None and response.content_length > limit:
        raise FetchError("too_large")
    body = bytearray()
    async for chunk in response.content.iter_chunked(64 * 1024):
        body += chunk
        if len(body) > limit:
            raise FetchError("too_large")
    return bytes(body)


def _unexpected(exc: Exception) -> str:
    return f"unexpected:{type(exc).__name__}"


def _has_kid(keys: KeySet, kid: str) -> bool:
    return any(key.kid == kid for key in keys.keys)


def _parse_jwks(
    body: bytes, algorithms: frozenset[str], source: str
) -> tuple[KeySet, tuple[SkippedKey, ...]]:
    try:
        keys, skipped = keys_from_jwks(_json_object(body), algorithms, source)
    except KeyLoadError:
        raise FetchError("not_a_jwks") from None
    if not keys.keys:
        raise FetchError("no_usable_keys")
    return keys, skipped


def _json_object(body: bytes) -> dict[str, object]:
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):
        raise FetchError("not_json") from None
    if not isinstance(document, dict):
        raise FetchError("not_json")
    return document


def _max_age(values: list[str]) -> float | None:
    header = ",".join(values)
    if _NO_STORE.search(header):
        return 0.0
    match = _MAX_AGE.search(header)
    return float(match.group(1)) if match else None


def _bounded_ttl(max_age: float | None, settings: JwksSettings) -> float:
    if max_age is None:
        return settings.default_ttl
    return min(settings.max_ttl, max(settings.min_ttl, max_age))
