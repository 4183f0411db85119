"""Pure route matching: the most specific path wins, then the method.

`RouteTable.match` answers with a `RouteMatch` whose `kind` says whether nothing matched (404),
the path matched but not the method (405, with the methods that would have), or both matched.
There is no fallback from a longer path to a shorter one when only the method differs: the
longest matching path owns every method under it, so a method a specific route leaves out is
refused rather than caught by a broader (perhaps public) route.

Some upstreams route more paths to a handler than its literal path: case-insensitively
(ASP.NET, Spring's option) or with a format suffix stripped (Rails' ``.json``, Spring's old
suffix patterns). An upstream that says so (``case_insensitive``, ``ignore_suffix``) has its
routes matched the same way, so ``/V1/Admin.json`` needs ``/v1/admin``'s scopes.

Route paths may name segments (``/tenants/{tenant}/orders``, `gateway.core.params`): the most
specific route is then the one with the longest literal prefix, a literal segment beating a
parameter at the same depth; a match carries the segments its parameters took.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from gateway.core.methods import COMMON_METHODS, NEVER_PROXIED
from gateway.core.models import Route, RoutesConfig, Upstream
from gateway.core.params import NO_CAPTURES, Captures, PathPattern, has_params

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
    captures: Captures = NO_CAPTURES  # what the route's {name} segments matched


_NO_MATCH = RouteMatch(Match.NONE)


@dataclass(frozen=True, slots=True)
class _Group:
    """The routes of one path (and exactness), matched the way their upstreams route."""

    routes: tuple[Route, ...]
    fold_case: bool
    strip_suffix: bool
    # What matching compares against, computed once with the table (not per request).
    _pattern: str = field(init=False, repr=False, compare=False)
    _prefix: str = field(init=False, repr=False, compare=False)
    _exact: bool = field(init=False, repr=False, compare=False)
    # Set for a path with {name} segments, which is matched segment by segment.
    _params: Callable[[str], Captures | None] | None = field(init=False, repr=False, compare=False)
    literal: bool = field(init=False, repr=False, compare=False)  # no {name}: string compares
    # Each route with its match when nothing is captured (made once, not per request).
    choices: tuple[tuple[Route, RouteMatch], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        first = self.routes[0]
        pattern = first.path.lower() if self.fold_case else first.path
        object.__setattr__(self, "_pattern", pattern)
        # `path_matches`' whole-segment prefix.
        object.__setattr__(self, "_prefix", pattern if pattern.endswith("/") else pattern + "/")
        object.__setattr__(self, "_exact", first.exact)
        params = None
        if has_params(pattern):
            parsed = PathPattern.parse(pattern)
            params = parsed.matcher(exact=first.exact, fold_case=self.fold_case)
        object.__setattr__(self, "_params", params)
        object.__setattr__(self, "literal", params is None)
        choices = tuple((route, RouteMatch(Match.FULL, route)) for route in self.routes)
        object.__setattr__(self, "choices", choices)

    @property
    def path(self) -> str:
        return self.routes[0].path

    @property
    def exact(self) -> bool:
        """Whether the group's routes match their path only."""
        return self._exact

    @property
    def specificity(self) -> tuple[int, ...]:
        """Most specific first (`PathPattern.specificity`)."""
        return PathPattern.parse(self.path).specificity(exact=self._exact)

    def matches(self, path: str) -> bool:
        if self._params is not None:
            return self.captures(path) is not None
        if self._matches(path):
            return True
        return self.strip_suffix and self._matches(_without_suffix(path))

    def captures(self, path: str) -> Captures | None:
        """What the parameters took if the path matches, else None (a path with parameters)."""
        assert self._params is not None
        found = self._params(path)
        if found is None and self.strip_suffix:
            found = self._params(_without_suffix(path))
        return found

    def _matches(self, form: str) -> bool:
        # `path_matches(self._pattern, form, exact=...)`, with the pattern's forms precomputed.
        if self.fold_case:
            form = form.lower()
        return form == self._pattern or (not self._exact and form.startswith(self._prefix))


def _without_suffix(path: str) -> str:
    """The path with the last segment's ``.format`` suffix removed (``/a/b.json`` -> ``/a/b``)."""
    head, _, last = path.rpartition("/")
    dot = last.find(".")
    return f"{head}/{last[:dot]}" if dot > 0 else path


class RouteTable:
    """Routes grouped by path, longest first, ready for matching."""

    def __init__(
        self, routes: Iterable[Route], upstreams: Mapping[str, Upstream] | None = None
    ) -> None:
        grouped: dict[tuple[str, bool], list[Route]] = {}
        for route in routes:
            grouped.setdefault((route.path, route.exact), []).append(route)
        known = upstreams or {}
        groups = []
        for members in grouped.values():
            targets = [known[r.upstream] for r in members if r.upstream in known]
            groups.append(
                _Group(
                    tuple(members),
                    fold_case=any(u.case_insensitive for u in targets),
                    strip_suffix=any(u.ignore_suffix for u in targets),
                )
            )
        # Most specific first: the longest literal prefix (a literal segment before a parameter
        # at the same depth, a longer path before its prefix); for one path an exact route is
        # more specific than a prefix one. Literal paths that both match a request are
        # prefixes of one another, so for them this is "longest first".
        self._groups = sorted(groups, key=lambda g: g.specificity)
        self._exact_groups = [group for group in self._groups if group.exact]

    @classmethod
    def from_config(cls, config: RoutesConfig) -> RouteTable:
        """Build the table for a validated routes file."""
        return cls(config.routes, config.upstreams)

    def match(self, method: str, path: str) -> RouteMatch:
        """Match a canonical path and a method."""
        matched_path: str | None = None
        allowed: set[str] = set()
        for group in self._groups:
            if matched_path is not None and group.path != matched_path:
                break  # only routes of the same (longest) path compete on the method
            if group.literal:
                if not group.matches(path):
                    continue
                captures = NO_CAPTURES
            else:
                found = group.captures(path)
                if found is None:
                    continue
                captures = found
            matched_path = group.path
            if self._exact_groups and self._slash_of_exact(path, matched_path):
                return _NO_MATCH
            for route, full in group.choices:
                if method in NEVER_PROXIED:
                    break  # TRACE and CONNECT never reach an upstream, whatever the route says
                if route.methods is None or method in route.methods:
                    if captures is NO_CAPTURES:
                        return full
                    return RouteMatch(Match.FULL, route, (), captures)
            allowed.update(m for route in group.routes for m in (route.methods or COMMON_METHODS))
        if matched_path is None:
            return _NO_MATCH
        return RouteMatch(Match.PARTIAL, None, tuple(sorted(allowed - NEVER_PROXIED)))

    def _slash_of_exact(self, path: str, matched_path: str) -> bool:
        """Whether ``path`` is ``<p>/`` for a path ``<p>`` an exact route of another path owns:
        many frameworks (Rails, Express, Spring before 6, ASP.NET Core, werkzeug without strict
        slashes) run ``<p>``'s handler for ``<p>/``, so a less specific route (a public ``/``)
        must not take it past the exact route's policy. Such a request matches no route."""
        if len(path) < 2 or path[-1] != "/":
            return False
        bare = path[:-1]
        for group in self._exact_groups:
            owns = group.matches(bare) if group.literal else group.captures(bare) is not None
            if owns:
                return group.path != matched_path
        return False

    def candidates(self, path: str) -> list[Route]:
        """Every route whose path matches, most specific first (for `routes explain`)."""
        return [route for group in self._groups if group.matches(path) for route in group.routes]
