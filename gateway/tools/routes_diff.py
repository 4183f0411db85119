"""`gateway routes diff`: what a routes.yaml change does to access, per method and path.

Matching depends only on which route paths are prefixes of a request path, so comparing two
tables at finitely many probes covers every request: for each route path P in either file, P
itself and a path below it that no route names ("P/*"), for each method either file names, the
common methods, and one stand-in for every other method. At each probe both tables are asked
what they would do (the real `RouteTable.match`), and the two answers are compared.

Route paths with parameters (``/tenants/{tenant}``) are probed with a stand-in segment that no
route names, and with every literal some route has at that depth (``/tenants/me``), so each way
two tables can split a parameter's values is asked about. A binding (``bind: {tenant:
tenant_id}``) is compared by the segment it binds and the claim, whatever the parameter is
called: one removed (or moved to another claim) is *loosened*, one added *tightened*.

A change is *loosened* when some request gets further than before: newly routed or newly
public, scopes that more tokens satisfy, more issuers accepted, enforce to report mode, the
token now forwarded to the upstream, or a rate limit removed or raised (a higher rate or burst,
or failing open instead of closed when its counters are unreachable). *Tightened* is the
reverse; a limit that now counts by another key is *changed*. A CORS policy is loosened when
pages from more origins may read answers or send more (origins, methods, headers, exposed
headers, credentials), or when it is added, or removed (the upstream's own CORS fields then reach
browsers unchecked); only a ``max_age`` change is *changed*. A different upstream is
*changed*: it neither opens nor closes anything. A 404 turning into a 405 (or back) is not
listed: both are refusals before any upstream.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass

from gateway.core.cors import CorsPolicy
from gateway.core.methods import COMMON_METHODS
from gateway.core.models import AuthMode, Route, RouteMode, RoutesConfig, ScopeMode, ScopeRule
from gateway.core.params import PathPattern, has_params
from gateway.core.ratelimit import OnBackendError, RateLimit
from gateway.core.routes import Match, RouteTable

__all__ = ["Change", "Direction", "diff_routes"]

OTHER_METHODS = "other"  # never a configured method: those are upper case
_BELOW = "\x00"  # a segment no route path can contain: "somewhere below P"
_ANY = "\x01"  # a parameter's stand-in value: a segment no route path can contain
_MAX_PROBES_PER_ROUTE = 256  # literal values tried for a route's parameters, in all


class Direction(enum.Enum):
    """Whether a change lets more requests through."""

    LOOSENED = "loosened"
    TIGHTENED = "tightened"
    CHANGED = "changed"


@dataclass(frozen=True, slots=True)
class Change:
    """One access change, for the methods and path (probe) it applies to."""

    direction: Direction
    methods: tuple[str, ...]
    path: str  # "/orders" or "/orders/*" (below it)
    what: str
    where: str  # file:line of the route that now answers (or answered)

    @property
    def methods_shown(self) -> str:
        """The methods, with the stand-in for unnamed ones spelt out."""
        return ", ".join("(other methods)" if m == OTHER_METHODS else m for m in self.methods)

    def __str__(self) -> str:
        return (
            f"{self.direction.value}: {self.methods_shown} {self.path}: {self.what} [{self.where}]"
        )


@dataclass(frozen=True, slots=True)
class _Access:
    """What one table does with one (method, path)."""

    status: int  # 404, 405, or 200 for routed
    route: Route | None = None
    destination: str = ""
    bound: frozenset[tuple[int, str]] = frozenset()  # (segment depth, claim) of each binding

    @property
    def public(self) -> bool:
        return self.route is not None and self.route.auth is AuthMode.NONE


def diff_routes(old: RoutesConfig, new: RoutesConfig) -> list[Change]:
    """Every access change from ``old`` to ``new``, loosened first, then by path and method."""
    tables = (RouteTable.from_config(old), RouteTable.from_config(new))
    methods = _methods(old.routes, new.routes)
    found: dict[tuple[str, str, Direction, str, str], list[str]] = {}
    for path, shown in _probes(old.routes, new.routes):
        for method in methods:
            before = _access(old, tables[0], method, path)
            after = _access(new, tables[1], method, path)
            for direction, what in _compare(before, after):
                where = _where(new, after) if after.route else _where(old, before)
                found.setdefault((shown, where, direction, what, path), []).append(method)
    merged: dict[tuple[str, Direction, str, tuple[str, ...]], list[str]] = {}
    for (shown, where, direction, what, _), probed in found.items():
        every = len(probed) == len(methods)
        key = (where, direction, what, ("all methods",) if every else tuple(probed))
        merged.setdefault(key, []).append(shown)
    changes = [
        Change(direction, methods_shown, _join_paths(paths), what, where)
        for (where, direction, what, methods_shown), paths in merged.items()
    ]
    order = list(Direction)
    return sorted(changes, key=lambda c: (order.index(c.direction), c.path, c.methods))


def _join_paths(paths: list[str]) -> str:
    """``/orders`` and ``/orders/*`` together read ``/orders and below``."""
    remaining = set(paths)
    shown = []
    for path in sorted(paths):
        if path not in remaining:
            continue
        remaining.discard(path)
        below = path.rstrip("/") + "/*"
        if not path.endswith("*") and below in remaining:
            remaining.discard(below)
            shown.append(f"{path} and below")
        else:
            shown.append(path)
    return ", ".join(shown)


def _methods(*tables: Iterable[Route]) -> list[str]:
    named = {m for routes in tables for route in routes for m in (route.methods or ())}
    extra = sorted(named - set(COMMON_METHODS))
    return [*COMMON_METHODS, *extra, OTHER_METHODS]


def _probes(*tables: Iterable[Route]) -> list[tuple[str, str]]:
    """(probe path, as shown) for each route path and below it; a parameter is tried with a
    stand-in value and with every literal a route has at its depth."""
    patterns = {PathPattern.parse(r.path) for routes in tables for r in routes}
    literals: dict[int, set[str]] = {}
    for pattern in patterns:
        for depth, (literal, name) in enumerate(zip(pattern.literals, pattern.names, strict=True)):
            if name is None:
                literals.setdefault(depth, set()).add(literal)
    probes = set()
    for pattern in patterns:
        for path, shown in _filled(pattern, literals):
            below = path.rstrip("/") + "/"
            probes.add((path, shown))
            probes.add((below + _BELOW, shown.rstrip("/") + "/*"))
    return sorted(probes, key=lambda probe: probe[1])


def _filled(pattern: PathPattern, literals: dict[int, set[str]]) -> list[tuple[str, str]]:
    if not has_params(pattern.path):
        return [(pattern.path, pattern.path)]
    filled: list[tuple[list[str], list[str]]] = [([], [])]
    for depth, (literal, name) in enumerate(zip(pattern.literals, pattern.names, strict=True)):
        if name is None:
            filled = [([*path, literal], [*shown, literal]) for path, shown in filled]
            continue
        choices = [(_ANY, f"{{{name}}}")]
        if len(filled) * (1 + len(literals.get(depth, ()))) <= _MAX_PROBES_PER_ROUTE:
            choices += [(value, value) for value in sorted(literals.get(depth, ()))]
        filled = [([*p, v], [*s, w]) for p, s in filled for v, w in choices]
    return [("/" + "/".join(path), "/" + "/".join(shown)) for path, shown in filled]


def _access(config: RoutesConfig, table: RouteTable, method: str, path: str) -> _Access:
    match = table.match(method, path)
    if match.kind is Match.NONE:
        return _Access(404)
    if match.kind is Match.PARTIAL:
        return _Access(405)
    route = match.route
    assert route is not None
    upstream = config.upstreams[route.upstream]
    strip = f", strip_prefix {route.path}" if route.strip_prefix else ""
    return _Access(200, route, f"'{upstream.name}' ({upstream.url}{strip})", _bound(route))


def _bound(route: Route) -> frozenset[tuple[int, str]]:
    if not route.bind:
        return frozenset()
    depth = {name: i for i, name in enumerate(PathPattern.parse(route.path).names) if name}
    return frozenset((depth[binding.param], binding.claim) for binding in route.bind)


def _compare(before: _Access, after: _Access) -> list[tuple[Direction, str]]:
    b, a = before.route, after.route
    if b is None and a is None:
        return []  # refused either way (404 or 405): nothing reaches an upstream
    if b is None:
        assert a is not None
        opened = "newly public" if after.public else f"newly routed ({_needs(a)})"
        return [(Direction.LOOSENED, f"{opened}; was {before.status}")]
    if a is None:
        return [(Direction.TIGHTENED, f"no longer routed ({after.status}); was {_needs(b)}")]
    changes: list[tuple[Direction, str]] = []
    if before.public != after.public:
        if after.public:
            changes.append((Direction.LOOSENED, f"newly public; was {_needs(b)}"))
        else:
            changes.append((Direction.TIGHTENED, f"newly protected: {_needs(a)}"))
    elif not after.public:
        changes.extend(_protected_changes(b, a))
        changes.extend(_binding_changes(before, after))
    changes.extend(_limit_changes(b.rate_limit, a.rate_limit))
    changes.extend(_cors_changes(b.cors, a.cors))
    if before.destination != after.destination:
        changes.append((Direction.CHANGED, f"upstream {before.destination} -> {after.destination}"))
    return changes


def _protected_changes(b: Route, a: Route) -> list[tuple[Direction, str]]:
    changes: list[tuple[Direction, str]] = []
    if _describe(b.scopes) != _describe(a.scopes):
        loosened = not _implies(a.scopes, b.scopes)
        direction = Direction.LOOSENED if loosened else Direction.TIGHTENED
        changes.append((direction, f"scopes {_describe(b.scopes)} -> {_describe(a.scopes)}"))
    if b.issuers != a.issuers:
        widened = b.issuers is not None and (a.issuers is None or bool(a.issuers - b.issuers))
        direction = Direction.LOOSENED if widened else Direction.TIGHTENED
        changes.append((direction, f"issuers {_issuers(b)} -> {_issuers(a)}"))
    if b.mode is not a.mode:
        loosened = a.mode is RouteMode.REPORT
        direction = Direction.LOOSENED if loosened else Direction.TIGHTENED
        note = " (forwards what it would refuse)" if loosened else ""
        changes.append((direction, f"mode {b.mode.value} -> {a.mode.value}{note}"))
    if b.forward_token != a.forward_token:
        direction = Direction.LOOSENED if a.forward_token else Direction.TIGHTENED
        state = "now forwarded" if a.forward_token else "no longer forwarded"
        changes.append((direction, f"the bearer token is {state} to the upstream"))
    return changes


def _binding_changes(before: _Access, after: _Access) -> list[tuple[Direction, str]]:
    assert before.route is not None
    assert after.route is not None
    changes: list[tuple[Direction, str]] = []
    for depth, claim in sorted(before.bound - after.bound):
        name = PathPattern.parse(before.route.path).names[depth]
        changes.append((Direction.LOOSENED, f"binding {{{name}}} = claim '{claim}' removed"))
    for depth, claim in sorted(after.bound - before.bound):
        name = PathPattern.parse(after.route.path).names[depth]
        changes.append((Direction.TIGHTENED, f"binding {{{name}}} = claim '{claim}' added"))
    return changes


def _limit_changes(b: RateLimit | None, a: RateLimit | None) -> list[tuple[Direction, str]]:
    if b is None and a is None:
        return []
    if a is None:
        return [(Direction.LOOSENED, f"rate limit removed; was {b}")]
    if b is None:
        return [(Direction.TIGHTENED, f"rate limit added: {a}")]
    changes: list[tuple[Direction, str]] = []
    if b.fingerprint != a.fingerprint:
        rate_b, rate_a = b.quota / b.period, a.quota / a.period
        if a.key is not b.key:
            direction = Direction.CHANGED
        elif rate_a > rate_b or a.burst > b.burst:
            direction = Direction.LOOSENED  # some client may now send more
        else:
            direction = Direction.TIGHTENED
        changes.append((direction, f"rate limit {b} -> {a}"))
    if b.on_backend_error is not a.on_backend_error:
        opened = a.on_backend_error is OnBackendError.ALLOW
        direction = Direction.LOOSENED if opened else Direction.TIGHTENED
        changes.append((direction, f"rate limit on_backend_error {b.on_backend_error.value} -> "
                        f"{a.on_backend_error.value}"))  # fmt: skip
    return changes


def _cors_changes(b: CorsPolicy | None, a: CorsPolicy | None) -> list[tuple[Direction, str]]:
    if b == a:
        return []
    if b is None:
        return [(Direction.LOOSENED, f"cors added: {a}")]
    if a is None:
        return [(Direction.LOOSENED, f"cors removed (the upstream's own CORS fields now reach "
                 f"browsers); was {b}")]  # fmt: skip
    widened = _cors_widened(b, a)
    if widened:
        direction = Direction.LOOSENED
    elif _cors_widened(a, b):
        direction = Direction.TIGHTENED
    else:
        direction = Direction.CHANGED
    return [(direction, f"cors {b} -> {a}")]


def _cors_widened(b: CorsPolicy, a: CorsPolicy) -> bool:
    """Whether ``a`` lets some page do or read something ``b`` did not."""
    methods_wider = a.methods is None and b.methods is not None
    if a.methods is not None and b.methods is not None:
        methods_wider = bool(a.methods - b.methods)
    exposed_b = {name.lower() for name in b.expose_headers}
    return (
        bool(set(a.origins) - set(b.origins)) or methods_wider or bool(a.headers - b.headers)
        or any(name.lower() not in exposed_b for name in a.expose_headers)
        or (a.credentials and not b.credentials)
    )  # fmt: skip


def _implies(new: ScopeRule, old: ScopeRule) -> bool:
    """Whether every set of scopes that satisfies ``new`` also satisfies ``old``."""
    o, n = set(old.scopes), set(new.scopes)
    if old.mode is ScopeMode.ALL and not o:
        return True
    if new.mode is ScopeMode.ALL:
        return o <= n if old.mode is ScopeMode.ALL else bool(n & o)
    if old.mode is ScopeMode.ALL:
        return all(o <= {scope} for scope in n)
    return n <= o


def _describe(rule: ScopeRule) -> str:
    if not rule.scopes:
        return "(any valid token)"
    if rule.mode is ScopeMode.ANY:
        return "any of [" + ", ".join(sorted(rule.scopes)) + "]"
    return "[" + ", ".join(sorted(rule.scopes)) + "]"


def _needs(route: Route) -> str:
    if route.auth is AuthMode.NONE:
        return "public"
    mode = ", report mode" if route.mode is RouteMode.REPORT else ""
    return f"token with scopes {_describe(route.scopes)}{mode}"


def _issuers(route: Route) -> str:
    return "(all)" if route.issuers is None else "[" + ", ".join(sorted(route.issuers)) + "]"


def _where(config: RoutesConfig, access: _Access) -> str:
    assert access.route is not None
    return f"{config.file}:{access.route.line}"
