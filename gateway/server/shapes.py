"""The error raised at start-up when a library's private internal that the gateway relies on
has moved (aiohttp's server and writer, prometheus_client's labelled children)."""

from __future__ import annotations

__all__ = ["PrivateShapeChanged"]


class PrivateShapeChanged(RuntimeError):
    """A library internal the hot path uses is not where it was."""
