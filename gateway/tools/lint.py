"""Route-table warnings for `gateway check`: tables that load, but may not mean what they say.

What this gateway's matching makes possible decides what is checked, and the reachability checks
ask the real `RouteTable.match`. The longest matching path owns every request under it, whatever
its method: a method it does not list is a 405, never a fallback to a shorter (perhaps public)
route. So "a protected route lists only GET and a
broader public route catches the POST" cannot happen here; what can is the opposite surprise,
a 405 for a method the broader route allows (`method_gap`). A route that can never match at all
(same path and exactness, methods already taken) is a config *error*, not a warning.

Warnings (each may be silenced on the route it names with ``lint_ignore: [code]``):

- ``report_mode``: protected routes left in report mode forward what they would refuse.
- ``shadowed``: a prefix route that never receives its own path (or not for some of its
  methods), because an exact route at that path is tried first.
- ``public_under_protected``: a public route inside a protected prefix (``/orders`` protected,
  ``/orders/export`` public): a typo in either path, or a new sub-path, changes who gets in.
- ``protected_under_public``: the reverse; any spelling of the protected path the gateway does
  not match (case, a sibling segment) falls to the public route, and so does the whole subtree
  if the protected route is deleted.
- ``method_gap``: a more specific route group does not allow a method its enclosing route does;
  such requests get 405 instead of reaching the broader route.
- ``cors_broad_origin``: a CORS policy lets pages read answers from origins nobody vouches for:
  ``*`` (every page on the web), ``null`` (every sandboxed frame and ``file:`` page), or a
  plain-``http://`` origin other than loopback (anyone on the network path can run script as
  it). One warning for a ``defaults:`` policy.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import yarl

from gateway.core.cors import CorsPolicy
from gateway.core.methods import COMMON_METHODS
from gateway.core.models import AuthMode, LintCode, Route, RouteMode, RoutesConfig
from gateway.core.params import PathPattern
from gateway.core.routes import Match, RouteTable

__all__ = ["LintWarning", "lint"]

_OTHER = "other"  # stands for every method no route names (configured methods are upper case)
_BELOW = "\x00"  # a path segment no route names: "somewhere below this path"


@dataclass(frozen=True, slots=True)
class LintWarning:
    """One warning about a routes file."""

    file: str
    line: int
    code: LintCode
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: warning: {self.message} [{self.code.value}]"


def lint(routes: RoutesConfig) -> list[LintWarning]:
    """Every warning for a validated routes file, in line order."""
    groups = _groups(routes.routes)
    table = RouteTable(routes.routes)  # the real matching decides what is reachable
    found = [
        *_report_mode(routes),
        *_shadowed(groups, table),
        *_nesting(groups),
        *_method_gaps(groups, table),
        *_broad_cors(routes),
    ]
    file = str(routes.file)
    defaults_line = {LintCode.CORS_BROAD_ORIGIN: routes.default_cors_line}
    kept = [
        LintWarning(
            file,
            route.line if route else defaults_line.get(code, routes.default_mode_line),
            code,
            message,
        )
        for route, code, message in found
        if route is None or code not in route.lint_ignore
    ]
    return sorted(kept, key=lambda warning: (warning.line, warning.code.value))


_Found = tuple[Route | None, LintCode, str]
_Group = tuple[Route, ...]  # the routes sharing one (path, exact): one owner of those paths


def _groups(routes: Iterable[Route]) -> list[_Group]:
    grouped: dict[tuple[str, bool], list[Route]] = {}
    for route in routes:
        grouped.setdefault((route.path, route.exact), []).append(route)
    return [tuple(group) for group in grouped.values()]


def _report_mode(routes: RoutesConfig) -> list[_Found]:
    reporting = [r for r in routes.routes if r.mode is RouteMode.REPORT]
    if routes.default_mode is RouteMode.REPORT:
        counted = [r for r in reporting if LintCode.REPORT_MODE not in r.lint_ignore]
        if not counted:
            return []
        message = (
            f"'defaults: mode: report' leaves {len(counted)} protected route(s) forwarding "
            "what they would refuse; switch to enforce once the would_deny log is clean"
        )
        return [(None, LintCode.REPORT_MODE, message)]
    return [
        (route, LintCode.REPORT_MODE, f"route '{route.path}' is in report mode: it forwards "
         "requests it would refuse (gateway.auth.result: would_deny)")
        for route in reporting
    ]  # fmt: skip


def _shadowed(groups: Sequence[_Group], table: RouteTable) -> list[_Found]:
    exact = {group[0].path: group for group in groups if group[0].exact}
    found: list[_Found] = []
    for group in groups:
        owner = exact.get(group[0].path)
        if group[0].exact or owner is None:
            continue
        for route in group:
            methods = _probe_methods(route.methods)
            lost = [m for m in methods if table.match(m, route.path).route is not route]
            if not lost:
                continue
            what = f"'{route.path}' itself" if lost == methods else (
                f"{', '.join(_shown(lost))} {route.path}"
            )  # fmt: skip
            found.append((
                route, LintCode.SHADOWED,
                f"route '{route.path}' never receives {what}: the exact route at line "
                f"{owner[0].line} takes that path first; it only serves paths below it",
            ))  # fmt: skip
    return found


def _enclosing(group: _Group, groups: Sequence[_Group]) -> _Group | None:
    """The group of the longest prefix route that would own this group's paths without it."""
    path, exact = group[0].path, group[0].exact
    best: _Group | None = None
    for other in groups:
        candidate = other[0]
        if candidate.exact or other is group:
            continue
        inside = candidate.matches_path(path) and (candidate.path != path or exact)
        if inside and (best is None or _specificity(candidate) < _specificity(best[0])):
            best = other
    return best


def _specificity(route: Route) -> tuple[int, ...]:
    """The route table's order (`PathPattern.specificity`): smaller is more specific."""
    return PathPattern.parse(route.path).specificity(exact=route.exact)


def _nesting(groups: Sequence[_Group]) -> list[_Found]:
    found: list[_Found] = []
    for group in groups:
        outer = _enclosing(group, groups)
        if outer is None:
            continue
        for route in group:
            public = route.auth is AuthMode.NONE
            opposite = [o for o in outer if (o.auth is AuthMode.NONE) != public]
            clash = next((o for o in opposite if _share_a_method(o, route)), None)
            if clash is None:
                continue
            if public:
                found.append((
                    route, LintCode.PUBLIC_UNDER_PROTECTED,
                    f"public route '{route.path}' is inside protected '{clash.path}' (line "
                    f"{clash.line}): everything under '{route.path}' needs no token",
                ))  # fmt: skip
            else:
                found.append((
                    route, LintCode.PROTECTED_UNDER_PUBLIC,
                    f"protected route '{route.path}' is inside public '{clash.path}' (line "
                    f"{clash.line}): any path next to it, another spelling of it, or all of it "
                    "once this route is removed, is public",
                ))  # fmt: skip
    return found


def _method_gaps(groups: Sequence[_Group], table: RouteTable) -> list[_Found]:
    found: list[_Found] = []
    for group in groups:
        outer = _enclosing(group, groups)
        if _allowed(group) is None or outer is None:
            continue
        wider = _allowed(outer)
        first = group[0]
        probe = first.path if first.exact else first.path.rstrip("/") + "/" + _BELOW
        gap = [
            m for m in sorted(COMMON_METHODS if wider is None else wider)
            if table.match(m, probe).kind is Match.PARTIAL
        ]  # fmt: skip
        if gap:
            # One warning per group, on a route that silences it if any does.
            first = next((r for r in group if LintCode.METHOD_GAP in r.lint_ignore), first)
            listed = ", ".join(sorted(_allowed(group) or ()))
            found.append((
                first, LintCode.METHOD_GAP,
                f"routes at '{first.path}' allow only {listed}; {', '.join(gap)} under it get "
                f"405 although '{outer[0].path}' (line {outer[0].line}) allows them (the "
                "gateway never falls back to a shorter path)",
            ))  # fmt: skip
    return found


def _allowed(group: _Group) -> frozenset[str] | None:
    if any(route.methods is None for route in group):
        return None
    return frozenset().union(*(route.methods or () for route in group))


def _probe_methods(methods: frozenset[str] | None) -> list[str]:
    """The methods to ask the table about: those listed, or the common ones and any other."""
    return sorted(methods) if methods is not None else [*sorted(COMMON_METHODS), _OTHER]


def _shown(methods: Iterable[str]) -> list[str]:
    return ["(other methods)" if m == _OTHER else m for m in methods]


def _share_a_method(a: Route, b: Route) -> bool:
    return a.methods is None or b.methods is None or bool(a.methods & b.methods)


def _loopback(origin: str) -> bool:
    host = yarl.URL(origin).host or ""
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _broad_origins(policy: CorsPolicy) -> list[str]:
    """What is too broad in a CORS policy's origins, one phrase each."""
    found = []
    for origin in policy.origins:
        if origin == "*":
            found.append("'*' lets every web page read the answers")
        elif origin == "null":
            found.append("'null' is the origin of every sandboxed frame and file: page")
        elif origin.lower().startswith("http://") and not _loopback(origin.replace("*", "x")):
            found.append(
                f"'{origin}' is plain HTTP: anyone on the network path can run script as it"
            )
    return found


def _broad_cors(routes: RoutesConfig) -> list[_Found]:
    found: list[_Found] = []
    default = routes.default_cors
    if default is not None and (problems := _broad_origins(default)):
        inheriting = [
            r for r in routes.routes
            if r.cors is default and LintCode.CORS_BROAD_ORIGIN not in r.lint_ignore
        ]  # fmt: skip
        if inheriting:
            message = f"'defaults: cors' on {len(inheriting)} route(s): {'; '.join(problems)}"
            found.append((None, LintCode.CORS_BROAD_ORIGIN, message))
    for route in routes.routes:
        if route.cors is None or route.cors is default:
            continue
        if problems := _broad_origins(route.cors):
            message = f"route '{route.path}' cors: {'; '.join(problems)}"
            found.append((route, LintCode.CORS_BROAD_ORIGIN, message))
    return found
