"""Rate-limit counters for the running gateway: in memory, or shared through Redis.

The arithmetic is `gateway.core.ratelimit`'s; this module adds the I/O. `RedisCounter` runs the
same GCRA as one Lua script (one round trip per decision, on Redis's clock, so replicas with
skewed clocks still agree), through redis-py's asyncio client and a bounded connection pool.
Every wait is bounded by ``rate_limits.timeout``: connecting, waiting for a pooled connection,
the round trip. After a failure the backend is left alone for ``rate_limits.backoff`` seconds,
so a dead Redis costs requests nothing (each route's ``on_backend_error`` answers at once); the
next decision after that tries again, and redis-py reconnects by itself.

`Limiting` is the process's rate-limit state, made once by the app and kept across reloads:
the counter (whose buckets are named by route and limit, so unchanged limits keep their counts)
and the failed-authentication throttle (whose numbers a reload may change).
"""

from __future__ import annotations

import asyncio
import time

from gateway.config import LimitBackend, RateLimitSettings
from gateway.core.ratelimit import (
    AuthFailureGuard,
    Counter,
    LimitBackendError,
    MemoryCounter,
    RateLimit,
    Verdict,
)
from gateway.server.logs import get_logger
from gateway.server.metrics import Metrics

__all__ = ["GCRA_SCRIPT", "Limiting", "RedisCounter"]

_log = get_logger()

# KEYS[1]: the bucket. ARGV: microseconds per request, burst. Reply: allowed (0/1), remaining,
# microseconds until the next request is allowed, microseconds until the bucket is full.
# The TAT is stored in whole microseconds (as text: Lua's tostring would round it) and expires
# once the bucket has refilled, so idle clients cost Redis nothing.
GCRA_SCRIPT = """
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local new_tat = tat + interval
local allow_at = new_tat - interval * burst
if now < allow_at then
  return {0, 0, math.ceil(allow_at - now), math.ceil(tat - now)}
end
local ttl = math.ceil((new_tat - now) / 1000) + 1
redis.call('SET', KEYS[1], string.format('%.0f', new_tat), 'PX', ttl)
return {1, math.floor((now - allow_at) / interval + 1e-6), 0, math.ceil(new_tat - now)}
"""


class RedisCounter:
    """Buckets in Redis, shared by every gateway process pointed at it."""

    def __init__(self, settings: RateLimitSettings, metrics: Metrics) -> None:
        assert settings.url is not None
        # Imported here, not at the top: redis-py loads OpenTelemetry's metrics SDK whenever it is
        # installed (about 3 MiB and 0.1 s at start), which a gateway that neither counts in
        # Redis nor traces should not pay.
        from redis.asyncio import BlockingConnectionPool, Redis
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff
        from redis.exceptions import NoScriptError, RedisError

        self._no_script = NoScriptError
        self._errors = (RedisError, OSError, TimeoutError)
        self._timeout = settings.timeout
        self._backoff = settings.backoff
        self._prefix = settings.key_prefix
        self._metrics = metrics
        pool = BlockingConnectionPool.from_url(
            settings.url,
            max_connections=settings.pool_size,
            timeout=settings.timeout,  # waiting for a pooled connection
            socket_timeout=settings.timeout,
            socket_connect_timeout=settings.timeout,
            retry=Retry(NoBackoff(), 0),  # no hidden retries: the deadline is one attempt
        )
        self._client = Redis(connection_pool=pool)
        self._script = self._client.register_script(GCRA_SCRIPT)
        self._down_until = 0.0
        self._down = False
        metrics.rate_limit_backend_up.set(1)

    async def take(self, bucket: str, limit: RateLimit) -> Verdict:
        """One round trip (EVALSHA; EVAL once after a Redis restart flushed the script)."""
        if self._down:
            now = time.monotonic()
            if now < self._down_until:
                self._metrics.rate_limit_backend_errors.labels("backing_off").inc()
                raise LimitBackendError("backend_down")
            self._down_until = now + self._backoff  # this decision probes; the others wait
        key = self._prefix + bucket
        args: list[str | int] = [repr(limit.interval * 1e6), limit.burst]
        try:
            async with asyncio.timeout(self._timeout):
                reply = await self._script(keys=[key], args=args)
        except self._no_script:  # pragma: no cover - register_script handles it itself
            raise LimitBackendError("no_script") from None
        except self._errors as exc:
            reason = "timeout" if isinstance(exc, TimeoutError) else type(exc).__name__
            self._failed(reason)
            raise LimitBackendError(reason) from None
        if self._down:
            self._down = False
            self._metrics.rate_limit_backend_up.set(1)
            _log.info(
                "rate_limit_backend",
                **{"gateway.rate_limit.backend_state": "up", "gateway.rate_limit.backend": "redis"},
            )
        allowed, remaining, retry_us, reset_us = (int(value) for value in reply)
        return Verdict(bool(allowed), remaining, retry_us / 1e6, reset_us / 1e6)

    def _failed(self, reason: str) -> None:
        self._metrics.rate_limit_backend_errors.labels(reason).inc()
        self._down_until = time.monotonic() + self._backoff
        if not self._down:
            self._down = True
            self._metrics.rate_limit_backend_up.set(0)
            _log.warning(
                "rate_limit_backend",
                **{
                    "gateway.rate_limit.backend_state": "down",
                    "gateway.rate_limit.backend": "redis",
                    "gateway.reason": reason,
                    "gateway.rate_limit.retry_in_s": self._backoff,
                },
            )

    async def close(self) -> None:
        """Close the client and every pooled connection (a client given its pool leaves it open;
        one cut by a timeout mid-command would otherwise be collected still open)."""
        await self._client.aclose()
        await self._client.connection_pool.disconnect()


class Limiting:
    """The process's counters and failed-authentication throttle, kept across reloads."""

    def __init__(self, settings: RateLimitSettings, metrics: Metrics) -> None:
        self.settings = settings
        self._redis: RedisCounter | None = None
        self.counter: Counter
        if settings.backend is LimitBackend.REDIS:
            self._redis = RedisCounter(settings, metrics)
            self.counter = self._redis
        else:
            self.counter = MemoryCounter(max_entries=settings.max_entries)
        failures = settings.auth_failures
        self._guard = AuthFailureGuard(failures) if failures is not None else None

    def guard(self, settings: RateLimitSettings) -> AuthFailureGuard | None:
        """The throttle under (possibly reloaded) ``settings``, its counts kept; None when off.
        The backend itself is chosen at start (a change needs a restart, and is logged)."""
        failures = settings.auth_failures
        if failures is None:
            return None
        if self._guard is None:
            self._guard = AuthFailureGuard(failures)
        self._guard.settings = failures
        if _backend_fields(settings) != _backend_fields(self.settings):
            _log.warning(
                "config_restart_required", **{"gateway.config.restart_fields": ["rate_limits"]}
            )
        return self._guard

    async def close(self) -> None:
        """Release the backend's connections."""
        if self._redis is not None:
            await self._redis.close()


def _backend_fields(settings: RateLimitSettings) -> tuple[object, ...]:
    return (settings.backend, settings.url, settings.timeout, settings.pool_size,
            settings.backoff, settings.key_prefix, settings.max_entries)  # fmt: skip
