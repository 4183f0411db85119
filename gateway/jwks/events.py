"""What a remote key set reports as it works, for the server to log and count.

The key sets know nothing of log handlers or metrics: they call a `KeySetEvents` given to them.
The server's subclass (`gateway.server.key_events`) writes the JSON events and moves the
Prometheus metrics; the base class itself drops everything (tests, offline use).
"""

from __future__ import annotations

from gateway.core.keys import KeySet, SkippedKey

__all__ = ["KeySetEvents"]


class KeySetEvents:
    """The observer of every remote issuer's key set. This base reports nothing; the server's
    subclass logs and counts."""

    def insecure_http_allowed(self, issuer: str) -> None:
        """Keys will be fetched over plain HTTP from a non-loopback host (explicitly allowed)."""

    def fetched(
        self, issuer: str, keys: KeySet, skipped: tuple[SkippedKey, ...], ttl: float
    ) -> None:
        """A key set was fetched; ``skipped`` are the entries left out of it."""

    def fetch_failed(
        self, issuer: str, reason: str, *, failures: int, keeping_cached: bool, retry_in: float
    ) -> None:
        """A fetch failed (``failures`` in a row); cached keys, if any, stay in use."""

    def discovery_mismatch(self, issuer: str) -> None:
        """The discovery document names another issuer: its keys are not used."""

    def keys_expired(self, issuer: str) -> None:
        """The cached keys are older than ``max_stale``: the issuer has no usable keys."""
