"""Reading routes.yaml: upstreams, routes, defaults, and the checks across routes."""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Mapping
from typing import Any

from gateway.config import convert, options
from gateway.config.source import Converters, Source
from gateway.config.tls import TlsError, client_context
from gateway.config.units import parse_duration
from gateway.config.yamlfile import YamlList, YamlMap
from gateway.core.models import AuthMode, Route, RouteMode, RoutesConfig, Upstream
from gateway.core.params import PathPattern, has_params

__all__ = ["check_route_issuers", "read_routes"]

_UPSTREAM: Converters = {
    "url": convert.upstream_url, "timeout": parse_duration, "ca": convert.file_name,
    "client_cert": convert.file_name, "client_key": convert.file_name,
    "tls_verify": convert.boolean, "case_insensitive": convert.boolean,
    "ignore_suffix": convert.boolean,
}  # fmt: skip
_UPSTREAM_FILES = ("ca", "client_cert", "client_key")
_UPSTREAM_TLS = {*_UPSTREAM_FILES, "tls_verify"}
# A route's keys in the order they are judged; the checks between them need `auth` first.
_ROUTE_TARGET: Converters = {"path": convert.route_path, "upstream": convert.string}
_ROUTE_POLICY: Converters = {
    "methods": convert.methods, "auth": convert.auth_mode, "scopes": convert.scope_rule,
}  # fmt: skip
_ROUTE_OPTIONS: Converters = {
    "issuers": convert.issuer_names, "strip_prefix": convert.boolean,
    "forward_token": convert.boolean, "exact": convert.boolean,
    "max_body_size": convert.size, "lint_ignore": convert.lint_codes,
    "rate_limit": options.rate_limit, "websocket": options.websocket_route, "cors": options.cors,
    "bind": convert.bindings,
}  # fmt: skip
# Read apart from the options: a protected route's own, else `defaults:`'s (like `mode`).
_ROUTE_CLAIMS: Converters = {"claims_to_headers": options.claims_to_headers}
_ROUTE_KEYS = {*_ROUTE_TARGET, *_ROUTE_POLICY, "mode", *_ROUTE_OPTIONS, *_ROUTE_CLAIMS}


def read_routes(source: Source) -> RoutesConfig | None:
    """Read a routes file (on its own, or as the one gateway.yaml names)."""
    document = source.document()
    if document is None:
        return None
    source.unknown_keys(document, {"upstreams", "routes", "defaults"}, "in routes file")
    table: dict[str, Any] = {}  # the optional fields of RoutesConfig
    inherited: dict[str, Any] = {}  # what a protected route takes unless it says otherwise
    limits: dict[str, Any] = {}  # what every route takes unless it says otherwise
    defaults = source.section(document, "defaults", {"mode", "rate_limit", "cors", *_ROUTE_CLAIMS})
    if defaults is not None and "mode" in defaults:
        inherited = source.fields(defaults, {"mode": convert.route_mode})
        table["default_mode_line"] = defaults.key_lines["mode"]
        if "mode" in inherited:
            table["default_mode"] = inherited["mode"]
    if defaults is not None:
        inherited |= source.fields(defaults, _ROUTE_CLAIMS)
    if defaults is not None and "rate_limit" in defaults:
        limits = source.fields(defaults, {"rate_limit": options.rate_limit})
        table["default_rate_limit"] = limits.get("rate_limit")
    if defaults is not None and "cors" in defaults:
        # A route's own `cors:` replaces this one whole (or turns it off with `false`).
        default_cors = source.fields(defaults, {"cors": options.cors})
        limits = {**limits, **default_cors}
        table["default_cors"] = default_cors.get("cors")
        table["default_cors_line"] = defaults.key_lines["cors"]
    upstreams, declared = _upstreams(source, document)
    referenced: set[str] = set()
    routes = _route_list(source, document, declared, referenced, inherited, limits)
    section = document.get("upstreams")
    for name in upstreams:
        if name not in referenced and isinstance(section, YamlMap):
            source.problem(section.key_lines[name], f"upstream '{name}' is not used by any route")
    _check_overlaps(source, routes)
    return RoutesConfig(upstreams=upstreams, routes=tuple(routes), file=source.path, **table)


def check_route_issuers(source: Source, routes: RoutesConfig, known: Collection[str]) -> None:
    """Report each route naming an issuer gateway.yaml does not declare (``source``: the routes
    file's)."""
    for route in routes.routes:
        for name in sorted((route.issuers or frozenset()) - set(known)):
            source.problem(route.line, f"route '{route.path}' names unknown issuer '{name}'")


def _upstreams(source: Source, document: YamlMap) -> tuple[dict[str, Upstream], set[str]]:
    """The usable upstreams, and every name declared (a refused upstream is still not unknown
    to the routes naming it)."""
    section = document.get("upstreams")
    if section is None:
        source.missing(document, "upstreams")
        return {}, set()
    if not isinstance(section, YamlMap):
        source.problem(document.key_lines["upstreams"], "'upstreams' must be a mapping")
        return {}, set()
    upstreams: dict[str, Upstream] = {}
    for name, entry in section.items():
        if not isinstance(entry, YamlMap):
            source.problem(
                section.key_lines[name], f"upstream '{name}' must be a mapping with a 'url'"
            )
            continue
        upstream = _upstream(source, name, entry)
        if upstream is not None:
            upstreams[name] = upstream
    return upstreams, set(section)


def _upstream(source: Source, name: str, entry: YamlMap) -> Upstream | None:
    source.unknown_keys(entry, _UPSTREAM.keys(), f"in upstream '{name}'")
    values = source.fields(entry, _UPSTREAM, required=("url",))
    for option in _UPSTREAM_FILES:
        if option in values:
            values[option] = source.path.parent / values[option]
    tls_options = sorted(option for option in _UPSTREAM_TLS if option in entry)
    if "url" not in values:
        return None
    if tls_options and values["url"].scheme != "https":
        source.problem(entry.line, f"{', '.join(tls_options)} need an https:// url")
        return None
    upstream = Upstream(name=name, **values)
    if (upstream.client_cert is None) != (upstream.client_key is None):
        source.problem(entry.line, "'client_cert' and 'client_key' go together")
        return None
    source.fingerprint(entry.line, upstream.ca, upstream.client_cert, upstream.client_key)
    if upstream.ca is None and upstream.client_cert is None:
        return upstream  # nothing that can fail to load (the system store costs ~40 ms a load)
    try:
        client_context(
            ca=upstream.ca, client_cert=upstream.client_cert,
            client_key=upstream.client_key, verify=upstream.tls_verify,
        )  # fmt: skip
    except TlsError as exc:
        source.problem(entry.line, f"upstream '{name}': {exc}")
        return None
    return upstream


def _route_list(
    source: Source,
    document: YamlMap,
    declared: set[str],
    referenced: set[str],
    inherited: Mapping[str, Any],
    limits: Mapping[str, Any],
) -> list[Route]:
    entries = document.get("routes")
    if entries is None:
        source.missing(document, "routes")
        return []
    if not isinstance(entries, YamlList):
        source.problem(document.key_lines["routes"], "'routes' must be a list")
        return []
    routes = []
    for entry, line in zip(entries, entries.item_lines, strict=True):
        if not isinstance(entry, YamlMap):
            source.problem(line, "each route must be a mapping")
            continue
        route = _route(source, entry, declared, referenced, inherited, limits)
        if route is not None:
            routes.append(route)
    return routes


def _route(
    source: Source,
    entry: YamlMap,
    declared: set[str],
    referenced: set[str],
    inherited: Mapping[str, Any],
    limits: Mapping[str, Any],
) -> Route | None:
    source.unknown_keys(entry, _ROUTE_KEYS, "in route")
    problems_before = len(source.issues)
    values = source.fields(entry, _ROUTE_TARGET, required=_ROUTE_TARGET.keys())
    upstream = values.get("upstream")
    if upstream is not None:
        referenced.add(upstream)
        if upstream not in declared:
            source.problem(entry.key_lines["upstream"], f"unknown upstream '{upstream}'")
    values |= source.fields(entry, _ROUTE_POLICY)
    public = values.get("auth") is AuthMode.NONE
    if public and "scopes" in entry:
        source.problem(entry.key_lines["scopes"], "a route with 'auth: none' cannot need scopes")
    if public and entry.get("forward_token") is True:
        source.problem(entry.key_lines["forward_token"], "'forward_token' needs a protected route")
    own_overrides = source.fields(entry, {"mode": convert.route_mode, **_ROUTE_CLAIMS})
    for protected_only in ("mode", *_ROUTE_CLAIMS):
        if public and protected_only in entry:
            line = entry.key_lines[protected_only]
            source.problem(line, f"'{protected_only}' needs a protected route")
    values |= source.fields(entry, _ROUTE_OPTIONS)
    _check_websocket(source, entry, values, public=public)
    _check_params(source, entry, values, public=public)
    if len(source.issues) > problems_before:
        return None
    if public:
        values["mode"] = RouteMode.ENFORCE  # a rule, not a default: no token check to report on
    else:
        values |= {**inherited, **own_overrides}
    route = Route(line=entry.line, **{**limits, **values})
    if route.rate_limit is None:
        return route
    # The limit counts for this route alone (a `defaults:` limit gives every route its own).
    return dataclasses.replace(
        route, rate_limit=dataclasses.replace(route.rate_limit, scope=route.scope)
    )


def _check_params(
    source: Source, entry: YamlMap, values: Mapping[str, Any], *, public: bool
) -> None:
    """`bind` names parameters of the route's own path, on a protected route; `strip_prefix`
    cannot say which prefix to strip once a segment varies."""
    path = values.get("path")
    params = PathPattern.parse(path).params if path is not None and has_params(path) else ()
    if params and values.get("strip_prefix") is True:
        source.problem(
            entry.key_lines["strip_prefix"],
            f"'strip_prefix' cannot be used on a path with parameters ('{path}')",
        )
    if "bind" not in values:
        return
    line = entry.key_lines["bind"]
    if public:
        source.problem(line, "'bind' needs a protected route (it compares the token's claims)")
    for binding in values["bind"]:
        if binding.param not in params:
            hint = convert.did_you_mean(binding.param, params)
            source.problem(
                line, f"'bind' names '{binding.param}', which is not a parameter of "
                f"'{path}'{hint}",
            )  # fmt: skip


def _check_overlaps(source: Source, routes: list[Route]) -> None:
    _check_shapes(source, routes)
    seen: dict[tuple[str, bool], list[Route]] = {}
    for route in routes:
        for earlier in seen.get((route.path, route.exact), []):
            if route.methods is None or earlier.methods is None or route.methods & earlier.methods:
                shared = convert.describe_overlap(route.methods, earlier.methods)
                source.problem(
                    route.line,
                    f"route '{route.path}' overlaps the route at line {earlier.line} ({shared})",
                )
        seen.setdefault((route.path, route.exact), []).append(route)


def _check_websocket(
    source: Source, entry: YamlMap, values: Mapping[str, Any], *, public: bool
) -> None:
    """A WebSocket handshake is a GET: a route that refuses GET could never tunnel; a public
    route has no token to take from a subprotocol."""
    websocket = values.get("websocket")
    if websocket is None:
        return
    line = entry.key_lines["websocket"]
    methods = values.get("methods")
    if methods is not None and "GET" not in methods:
        source.problem(line, "'websocket' needs GET among the route's methods")
    if public and websocket.token_from_subprotocol:
        source.problem(line, "'token_from_subprotocol' needs a protected route")


def _check_shapes(source: Source, routes: list[Route]) -> None:
    """Two paths that differ only in their parameters' names match the same requests equally
    well: whichever route answered would be an accident of the file's order."""
    spelt: dict[tuple[str | None, ...], Route] = {}
    for route in routes:
        if not has_params(route.path):
            continue
        shape = PathPattern.parse(route.path).shape
        earlier = spelt.setdefault(shape, route)
        if earlier.path != route.path:
            source.problem(
                route.line,
                f"route '{route.path}' matches the same paths as '{earlier.path}' (line "
                f"{earlier.line}), which names its parameters differently: spell them alike",
            )
