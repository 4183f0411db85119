"""The HTTP methods the gateway knows by name, for routing, lint, diffs and metrics."""

from __future__ import annotations

__all__ = ["COMMON_METHODS", "NEVER_PROXIED"]

# In the order tables and diffs list them; `Allow` for a route without a method list names these.
COMMON_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
# TRACE and CONNECT never reach an upstream, whatever a route says (a route may not list them).
NEVER_PROXIED = frozenset({"TRACE", "CONNECT"})
