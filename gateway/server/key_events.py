"""The server's observer of remote key sets: a JSON event and a metric for each thing they do."""

from __future__ import annotations

from gateway.core.keys import KeySet, SkippedKey
from gateway.jwks.events import KeySetEvents
from gateway.server.logs import get_logger
from gateway.server.metrics import Metrics

__all__ = ["LoggedKeyEvents"]

_log = get_logger()


class LoggedKeyEvents(KeySetEvents):
    """Logs every key-set event; counts them when given the metrics."""

    def __init__(self, metrics: Metrics | None = None) -> None:
        self._metrics = metrics

    def insecure_http_allowed(self, issuer: str) -> None:
        """Warn: keys over plain HTTP."""
        _log.warning("jwks_insecure_http_allowed", **{"gateway.jwks.issuer": issuer})

    def fetched(
        self, issuer: str, keys: KeySet, skipped: tuple[SkippedKey, ...], ttl: float
    ) -> None:
        """One warning per skipped key, one info line for the set."""
        for skip in skipped:
            _log.warning(
                "jwks_key_skipped",
                **{
                    "gateway.jwks.issuer": issuer,
                    "gateway.jwks.kid": skip.kid,
                    "gateway.reason": skip.reason,
                },
            )
            if self._metrics is not None:
                self._metrics.jwks_skipped.labels(issuer, skip.reason).inc()
        if self._metrics is not None:
            self._metrics.jwks_fetches.labels(issuer, "success").inc()
            self._metrics.jwks_keys.labels(issuer).set(len(keys.keys))
        _log.info(
            "jwks_fetched",
            **{
                "gateway.jwks.issuer": issuer,
                "gateway.jwks.key_count": len(keys.keys),
                "gateway.jwks.kids": list(keys.kids),
                "gateway.jwks.skipped": len(skipped),
                "gateway.jwks.ttl_s": ttl,
            },
        )

    def fetch_failed(
        self, issuer: str, reason: str, *, failures: int, keeping_cached: bool, retry_in: float
    ) -> None:
        """Warn, with when the next try comes."""
        if self._metrics is not None:
            self._metrics.jwks_fetches.labels(issuer, "failure").inc()
        _log.warning(
            "jwks_fetch_failed",
            **{
                "gateway.jwks.issuer": issuer,
                "gateway.reason": reason,
                "gateway.jwks.failures": failures,
                "gateway.jwks.keeping_cached_keys": keeping_cached,
                "gateway.jwks.next_retry_s": round(retry_in, 1),
            },
        )

    def discovery_mismatch(self, issuer: str) -> None:
        """Error: the provider's discovery document names another issuer."""
        _log.error("jwks_discovery_mismatch", **{"gateway.jwks.issuer": issuer})

    def keys_expired(self, issuer: str) -> None:
        """Error, and the key gauge drops to zero."""
        _log.error("jwks_keys_expired", **{"gateway.jwks.issuer": issuer})
        if self._metrics is not None:
            self._metrics.jwks_keys.labels(issuer).set(0)
