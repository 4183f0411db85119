"""Rate limits as values, the bucket arithmetic (GCRA), and the in-memory counters.

A limit is a sustained ``rate`` (``quota`` requests per ``period`` seconds) and a ``burst``: the
generic cell rate algorithm (GCRA, the token bucket written as one timestamp per key) lets a
client send ``burst`` requests at once, then one every ``period / quota`` seconds. The state of
one bucket is its *theoretical arrival time* (TAT), a single number, so the in-memory backend's
hot path is one dict lookup and a few float operations, and the Redis backend's Lua script
(`gateway.server.ratelimit_redis`) is the same arithmetic on the server's clock.

Counters are reached through an injected `Counter` (like keys through a `KeySource`), so the
decision (`gateway.core.decision`) never knows where they live: `MemoryCounter` here, Redis in
the server layer, and `OfflineCounter` for `gateway explain` and `gateway test`, which show the
limit that applies without consuming any quota.

The failed-authentication throttle (`AuthFailureGuard`) is per process on purpose: it exists to
save this process's CPU (signature checks) and this process's IdP fetches, which only requests
reaching this process cost.

    LimitError
    └── LimitBackendError   the counter backend could not answer (``.reason``)
"""

from __future__ import annotations

import enum
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final, Protocol, final

__all__ = [
    "THROTTLED_TOKEN_REASONS",
    "AuthFailureGuard",
    "AuthFailureSettings",
    "Counter",
    "LimitBackendError",
    "LimitError",
    "LimitKey",
    "MemoryCounter",
    "OfflineCounter",
    "OnBackendError",
    "RateLimit",
    "Verdict",
    "gcra",
    "limit_headers",
]

# A token refused for one of these reasons cost the gateway work (a signature check, a key
# lookup that may fetch) without proving anything about the sender: it counts towards the
# failed-authentication throttle. Expired or wrong-audience tokens are genuine (their signature
# verified), and a client refreshing late should not be locked out for them.
THROTTLED_TOKEN_REASONS = frozenset({
    "malformed", "unsupported_header", "alg_not_allowed", "unknown_issuer", "unknown_kid",
    "bad_signature",
})  # fmt: skip

# Float tolerance for "exactly at the boundary": a request arriving when the bucket has just
# refilled one token is allowed, whatever the rounding of ``period / quota``.
_EPSILON: Final = 1e-9


class LimitKey(enum.Enum):
    """What a limit counts by."""

    CLIENT_ID = "client_id"  # the token's client_id (or azp)
    SUBJECT = "subject"  # the token's sub
    IP = "ip"  # the TCP peer address (no trusted-proxy support yet)
    ROUTE = "route"  # the route as a whole: every caller shares one bucket

    @property
    def needs_token(self) -> bool:
        """Whether the limit is decided after authentication (it reads the token, or it
        protects the upstream, which unauthenticated requests never reach)."""
        return self is not LimitKey.IP


class OnBackendError(enum.Enum):
    """What a route does when the shared counters cannot be reached."""

    ALLOW = "allow"  # fail open: serve without the limit (logged and counted)
    DENY = "deny"  # fail closed: 503 temporarily_unavailable


@dataclass(frozen=True, slots=True, kw_only=True)
class RateLimit:
    """One route's limit: ``quota`` requests per ``period`` seconds, up to ``burst`` at once.

    ``scope`` names the route it counts for (set by the config reader), so routes never share
    buckets; the bucket ids are derived from the scope and the limit's numbers, so a reload that
    leaves a limit unchanged keeps its counters, and a changed limit starts afresh.
    """

    quota: int
    period: float
    burst: int
    key: LimitKey
    on_backend_error: OnBackendError = OnBackendError.ALLOW
    name: str | None = None  # the policy name in the RateLimit headers (default: the key)
    scope: str = ""
    # Derived once (hot path): seconds per request, the bucket-id prefix, the headers' policy.
    interval: float = field(init=False, repr=False, compare=False)
    prefix: str = field(init=False, repr=False, compare=False)
    policy_header: str = field(init=False, repr=False, compare=False)
    remaining_field: str = field(init=False, repr=False, compare=False)  # '"name";r='

    def __post_init__(self) -> None:
        if self.quota <= 0 or self.period <= 0 or self.burst <= 0:
            raise ValueError("quota, period and burst must be positive")
        interval = self.period / self.quota
        object.__setattr__(self, "interval", interval)
        object.__setattr__(self, "prefix", f"{self.scope}|{self.fingerprint}|")
        # The draft's q is the most a client can have left (the burst); w is the time a spent
        # burst takes to refill, so q/w is the sustained rate.
        window = max(1, math.ceil(self.burst * interval - _EPSILON))
        object.__setattr__(self, "policy_header", f'"{self.policy}";q={self.burst};w={window}')
        object.__setattr__(self, "remaining_field", f'"{self.policy}";r=')

    @property
    def policy(self) -> str:
        """The policy's name in the headers."""
        return self.name or self.key.value

    @property
    def fingerprint(self) -> str:
        """The numbers that define the bucket arithmetic (a change resets the counters)."""
        return f"{self.quota}/{self.period:g}s:b{self.burst}:{self.key.value}"

    @property
    def rate(self) -> str:
        """The sustained rate as written in routes.yaml (``100/s``, ``600/1m``)."""
        units = {1.0: "s", 60.0: "min", 3600.0: "h"}
        unit = units.get(self.period) or f"{self.period:g}s"
        return f"{self.quota}/{unit}"

    def __str__(self) -> str:
        return f"{self.rate}, burst {self.burst}, per {self.key.value}"


@final
class Verdict:
    """What one bucket said about one request.

    ``remaining``: requests still allowed right now; ``retry_after``: seconds until the next
    one is (0 when allowed); ``reset``: seconds until the bucket is full again.

    A plain class, not a NamedTuple: one is made on every limited request, and the compiled
    build makes a plain class natively, where a NamedTuple's constructor is interpreted Python.
    """

    __slots__ = ("allowed", "remaining", "reset", "retry_after")

    def __init__(self, allowed: bool, remaining: int, retry_after: float, reset: float) -> None:
        self.allowed = allowed
        self.remaining = remaining
        self.retry_after = retry_after
        self.reset = reset

    def __repr__(self) -> str:
        return (
            f"Verdict(allowed={self.allowed}, remaining={self.remaining}, "
            f"retry_after={self.retry_after}, reset={self.reset})"
        )


def gcra(tat: float | None, now: float, interval: float, burst: int) -> tuple[Verdict, float]:
    """Decide one request against a bucket whose theoretical arrival time is ``tat`` (None: a
    fresh, full bucket); the verdict, and the TAT to store (unchanged when refused)."""
    if tat is None or tat < now:
        tat = now
    new_tat = tat + interval
    allow_at = new_tat - interval * burst
    if now + _EPSILON < allow_at:
        return Verdict(False, 0, allow_at - now, tat - now), tat
    remaining = int((now - allow_at) / interval + _EPSILON)
    return Verdict(True, remaining, 0.0, new_tat - now), new_tat


def limit_headers(limit: RateLimit, verdict: Verdict) -> dict[str, str]:
    """The ``RateLimit-Policy`` and ``RateLimit`` fields (draft-ietf-httpapi-ratelimit-headers-10,
    structured-field lists), plus ``Retry-After`` on a refusal."""
    reset = math.ceil(verdict.reset - _EPSILON)
    headers = {
        "RateLimit-Policy": limit.policy_header,
        "RateLimit": f"{limit.remaining_field}{verdict.remaining};t={reset if reset > 0 else 0}",
    }
    if not verdict.allowed:
        headers["Retry-After"] = str(max(1, math.ceil(verdict.retry_after - _EPSILON)))
    return headers


class LimitError(Exception):
    """Base of the rate-limit errors."""

    reason: str = "rate_limit_error"


class LimitBackendError(LimitError):
    """The counters could not be reached or did not answer in time; ``reason`` says how."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Counter(Protocol):
    """Where the buckets live."""

    async def take(self, bucket: str, limit: RateLimit) -> Verdict:
        """Count one request in ``bucket`` (if allowed); raises `LimitBackendError`."""


class MemoryCounter:
    """Buckets in a dict, per process.

    A bucket that has refilled completely is the same as no bucket, so when the table grows past
    ``max_entries`` the full ones are dropped; if that is not enough (an attack spreading over
    many keys) the oldest half goes, which can only hand those keys a fresh burst.
    """

    def __init__(
        self, *, clock: Callable[[], float] = time.monotonic, max_entries: int = 100_000
    ) -> None:
        self._clock = clock
        self._max_entries = max_entries
        self._tats: dict[str, float] = {}

    def __len__(self) -> int:
        return len(self._tats)

    async def take(self, bucket: str, limit: RateLimit) -> Verdict:
        """Count one request (never raises: memory does not fail)."""
        return self.take_now(bucket, limit)

    def take_now(self, bucket: str, limit: RateLimit) -> Verdict:
        """`take`, synchronously: one dict lookup and `gcra`'s arithmetic, written out."""
        tats = self._tats
        now = self._clock()
        tat = tats.get(bucket)
        interval = limit.interval
        if tat is None or tat < now:
            if tat is None and len(tats) >= self._max_entries:
                tats = self._sweep(now)
            tat = now
        new_tat = tat + interval
        allow_at = new_tat - interval * limit.burst
        if now + _EPSILON < allow_at:
            return Verdict(False, 0, allow_at - now, tat - now)
        tats[bucket] = new_tat
        return Verdict(True, int((now - allow_at) / interval + _EPSILON), 0.0, new_tat - now)

    def _sweep(self, now: float) -> dict[str, float]:
        tats = {key: tat for key, tat in self._tats.items() if tat > now}
        if len(tats) >= self._max_entries:
            tats = dict(list(tats.items())[len(tats) // 2 :])
        self._tats = tats
        return tats


class OfflineCounter:
    """Answers every request with a full bucket and remembers nothing: `gateway explain` and
    `gateway test` show which limit applies without consuming quota."""

    async def take(self, bucket: str, limit: RateLimit) -> Verdict:
        """A full bucket (after this request)."""
        return Verdict(True, limit.burst - 1, 0.0, limit.interval)


@dataclass(frozen=True, slots=True, kw_only=True)
class AuthFailureSettings:
    """More than ``max_failures`` refused tokens from one client IP within ``window`` seconds
    and that IP is answered 429 for ``cooldown`` seconds, before any token work."""

    max_failures: int = 20
    window: float = 60.0
    cooldown: float = 60.0


class AuthFailureGuard:
    """Counts refused tokens per client IP (`THROTTLED_TOKEN_REASONS`) and blocks an IP that
    sends too many. Per process: see the module docstring."""

    def __init__(
        self,
        settings: AuthFailureSettings,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_entries: int = 100_000,
    ) -> None:
        self.settings = settings  # swapped by a reload; the counts stay
        self._clock = clock
        self._blocked: dict[str, float] = {}  # ip -> blocked until
        self._failures = MemoryCounter(clock=clock, max_entries=max_entries)
        self._max_entries = max_entries

    def blocked_for(self, ip: str) -> float:
        """Seconds the IP stays blocked (0: not blocked). The hot path: one dict lookup."""
        if not self._blocked:
            return 0.0
        until = self._blocked.get(ip)
        if until is None:
            return 0.0
        left = until - self._clock()
        if left <= 0:
            del self._blocked[ip]
            return 0.0
        return left

    def failed(self, ip: str) -> bool:
        """Count one refused token from ``ip``; True when that blocks it."""
        settings = self.settings
        limit = _failure_limit(settings.max_failures, settings.window)
        verdict = self._failures.take_now(f"{limit.fingerprint}|{ip}", limit)
        if verdict.allowed and verdict.remaining > 0:
            return False
        if len(self._blocked) >= self._max_entries:
            now = self._clock()
            self._blocked = {k: v for k, v in self._blocked.items() if v > now}
        self._blocked[ip] = self._clock() + settings.cooldown
        return True


_FAILURE_LIMITS: dict[tuple[int, float], RateLimit] = {}


def _failure_limit(max_failures: int, window: float) -> RateLimit:
    """The bucket of the throttle: ``max_failures`` at once, refilling over ``window``."""
    limit = _FAILURE_LIMITS.get((max_failures, window))
    if limit is None:
        limit = RateLimit(quota=max_failures, period=window, burst=max_failures, key=LimitKey.IP)
        _FAILURE_LIMITS[(max_failures, window)] = limit
    return limit
