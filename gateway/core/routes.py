"""Pure route matching: the most specific path wins, then the method.

`RouteTable.match` answers with a `RouteMatch` whose `kind` says whether nothing matched (404),
the path matched but not the method (405, with the methods that would have), or both matched.
There is no fallback from a longer path to a shorter one when only the method differs: the
longest matching path owns every method under it, so a method a specific route leaves out is
refused rather than caught by a broader (perhaps public) route.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass

from gateway.core.methods import COMMON_METHODS, NEVER_PROXIED
from gateway.core.models import Route, RoutesConfig

__all__ = ["Match", "RouteMatch", "RouteTable"]


class Match(enum.Enum):
    """How far a request matched the table."""

    NONE = "none"
    PARTIAL = "partial"  # path matched, method did not
    FULL = "full"


@dataclass(frozen=True, slots=True)
class RouteMatch:
    """The result of matching one request."""

    kind: Match
    route: Route | None = None
    allowed_methods: tuple[str, ...] = ()


_NO_MATCH = RouteMatch(Match.NONE)


class RouteTable:
    """Routes grouped by path, longest first, ready for matching."""

    def __init__(self, routes: Iterable[Route]) -> None:
        groups: dict[tuple[str, bool], list[Route]] = {}
        for route in routes:
            groups.setdefault((route.path, route.exact), []).append(route)
        # Longest path first; for one path an exact route is more specific than a prefix one.
        self._groups = sorted(groups.values(), key=lambda g: (-len(g[0].path), not g[0].exact))

    @classmethod
    def from_config(cls, config: RoutesConfig) -> RouteTable:
        """Build the table for a validated routes file."""
        return cls(config.routes)

    def match(self, method: str, path: str) -> RouteMatch:
        """Match a canonical path and a method."""
        matched_path: str | None = None
        allowed: set[str] = set()
        for group in self._groups:
            if matched_path is not None and group[0].path != matched_path:
                break  # only routes of the same (longest) path compete on the method
            if not group[0].matches_path(path):
                continue
            matched_path = group[0].path
            for route in group:
                if method in NEVER_PROXIED:
                    break  # TRACE and CONNECT never reach an upstream, whatever the route says
                if route.methods is None or method in route.methods:
                    return RouteMatch(Match.FULL, route)
            allowed.update(m for route in group for m in (route.methods or COMMON_METHODS))
        if matched_path is None:
            return _NO_MATCH
        return RouteMatch(Match.PARTIAL, None, tuple(sorted(allowed - NEVER_PROXIED)))

    def candidates(self, path: str) -> list[Route]:
        """Every route whose path matches, most specific first (for `routes explain`)."""
        return [route for group in self._groups for route in group if route.matches_path(path)]
