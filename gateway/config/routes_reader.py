"""Reading routes.yaml: upstreams, routes, defaults, and the checks across routes."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from gateway.config import convert
from gateway.config.reader_base import ReaderBase
from gateway.config.tls import TlsError, client_context
from gateway.config.units import parse_duration
from gateway.config.yamlfile import YamlList, YamlMap
from gateway.core.models import AuthMode, Route, RouteMode, RoutesConfig, ScopeRule, Upstream

__all__ = ["RoutesReader"]


class RoutesReader(ReaderBase):
    """Reads a routes file (on its own, or as part of gateway.yaml)."""

    def routes(self, path: Path) -> RoutesConfig | None:
        document = self._read_document(path)
        if document is None:
            return None
        self._unknown_keys(document, {"upstreams", "routes", "defaults"}, "in routes file")
        defaults = self._mapping(document, "defaults", {"mode"})
        default_mode = RouteMode.ENFORCE
        default_mode_line = 0
        if defaults is not None and "mode" in defaults:
            default_mode = self._get(defaults, "mode", convert.route_mode, RouteMode.ENFORCE)
            default_mode_line = defaults.key_lines["mode"]
        upstreams = self._upstreams(document, path.parent)
        routes = self._route_list(document, upstreams, default_mode)
        section = document.get("upstreams")
        for name in upstreams:
            if name not in self._referenced_upstreams and isinstance(section, YamlMap):
                self._problem(
                    section.key_lines[name], f"upstream '{name}' is not used by any route"
                )
        self._check_overlaps(routes)
        return RoutesConfig(
            upstreams=upstreams,
            routes=tuple(routes),
            file=path,
            default_mode=default_mode,
            default_mode_line=default_mode_line,
        )

    def _upstreams(self, document: YamlMap, base: Path) -> dict[str, Upstream]:
        section = document.get("upstreams")
        if section is None:
            self._problem(document.line, "missing required key 'upstreams'")
            return {}
        if not isinstance(section, YamlMap):
            self._problem(document.key_lines["upstreams"], "'upstreams' must be a mapping")
            return {}
        upstreams: dict[str, Upstream] = {}
        for name, entry in section.items():
            line = section.key_lines[name]
            self._declared_upstreams.add(name)
            if not isinstance(entry, YamlMap):
                self._problem(line, f"upstream '{name}' must be a mapping with a 'url'")
                continue
            upstream = self._upstream(name, entry, base)
            if upstream is not None:
                upstreams[name] = upstream
        return upstreams

    def _upstream(self, name: str, entry: YamlMap, base: Path) -> Upstream | None:
        keys = {"url", "timeout", "ca", "client_cert", "client_key", "tls_verify"}
        self._unknown_keys(entry, keys, f"in upstream '{name}'")
        url = self._get(entry, "url", convert.upstream_url, None, required=True)
        timeout = self._get(entry, "timeout", parse_duration, 30.0)
        files: dict[str, Path | None] = {}
        for option in ("ca", "client_cert", "client_key"):
            value = self._get(entry, option, convert.string, None)
            files[option] = base / value if value else None
        verify = self._get(entry, "tls_verify", convert.boolean, True)
        tls_options = [option for option in keys - {"url", "timeout"} if option in entry]
        if url is None:
            return None
        if tls_options and url.scheme != "https":
            self._problem(entry.line, f"{', '.join(sorted(tls_options))} need an https:// url")
            return None
        if (files["client_cert"] is None) != (files["client_key"] is None):
            self._problem(entry.line, "'client_cert' and 'client_key' go together")
            return None
        self._read_tls_files(entry.line, *files.values())
        try:
            client_context(
                ca=files["ca"], client_cert=files["client_cert"],
                client_key=files["client_key"], verify=verify,
            )  # fmt: skip
        except TlsError as exc:
            self._problem(entry.line, f"upstream '{name}': {exc}")
            return None
        return Upstream(
            name=name, url=url, timeout=timeout, ca=files["ca"],
            client_cert=files["client_cert"], client_key=files["client_key"], tls_verify=verify,
        )  # fmt: skip

    def _route_list(
        self, document: YamlMap, upstreams: Mapping[str, Upstream], default_mode: RouteMode
    ) -> list[Route]:
        entries = document.get("routes")
        if entries is None:
            self._problem(document.line, "missing required key 'routes'")
            return []
        if not isinstance(entries, YamlList):
            self._problem(document.key_lines["routes"], "'routes' must be a list")
            return []
        routes = []
        for entry, line in zip(entries, entries.item_lines, strict=True):
            if not isinstance(entry, YamlMap):
                self._problem(line, "each route must be a mapping")
                continue
            route = self._route(entry, upstreams, default_mode)
            if route is not None:
                routes.append(route)
        return routes

    def _route(
        self, entry: YamlMap, upstreams: Mapping[str, Upstream], default_mode: RouteMode
    ) -> Route | None:
        allowed_keys = {
            "path", "upstream", "methods", "scopes", "auth", "strip_prefix",
            "forward_token", "issuers", "exact", "max_body_size", "mode", "lint_ignore",
        }  # fmt: skip
        self._unknown_keys(entry, allowed_keys, "in route")
        problems_before = len(self.issues)
        path = self._get(entry, "path", convert.route_path, "", required=True)
        upstream = self._get(entry, "upstream", convert.string, "", required=True)
        self._referenced_upstreams.add(upstream)
        if upstream and upstream not in self._declared_upstreams:
            self._problem(entry.key_lines["upstream"], f"unknown upstream '{upstream}'")
        methods = self._get(entry, "methods", convert.methods, None)
        auth = self._get(entry, "auth", convert.auth_mode, AuthMode.REQUIRED)
        scopes = self._get(entry, "scopes", convert.scope_rule, ScopeRule())
        if auth is AuthMode.NONE and "scopes" in entry:
            self._problem(entry.key_lines["scopes"], "a route with 'auth: none' cannot need scopes")
        if auth is AuthMode.NONE and entry.get("forward_token") is True:
            self._problem(
                entry.key_lines["forward_token"], "'forward_token' needs a protected route"
            )
        mode = self._get(entry, "mode", convert.route_mode, default_mode)
        if auth is AuthMode.NONE and "mode" in entry:
            self._problem(entry.key_lines["mode"], "'mode' needs a protected route")
        route = Route(
            path=path,
            upstream=upstream,
            methods=methods,
            auth=auth,
            scopes=scopes,
            issuers=self._get(entry, "issuers", lambda v: frozenset(convert.string_list(v)), None),
            strip_prefix=self._get(entry, "strip_prefix", convert.boolean, False),
            forward_token=self._get(entry, "forward_token", convert.boolean, False),
            exact=self._get(entry, "exact", convert.boolean, False),
            max_body_size=self._get(entry, "max_body_size", convert.size, None),
            mode=mode if auth is AuthMode.REQUIRED else RouteMode.ENFORCE,
            lint_ignore=self._get(entry, "lint_ignore", convert.lint_codes, frozenset()),
            line=entry.line,
        )
        return route if len(self.issues) == problems_before else None

    def _check_overlaps(self, routes: list[Route]) -> None:
        seen: dict[tuple[str, bool], list[Route]] = {}
        for route in routes:
            for earlier in seen.get((route.path, route.exact), []):
                if (
                    route.methods is None
                    or earlier.methods is None
                    or route.methods & earlier.methods
                ):
                    shared = convert.describe_overlap(route.methods, earlier.methods)
                    self._problem(
                        route.line,
                        f"route '{route.path}' overlaps the route at line {earlier.line} "
                        f"({shared})",
                    )
            seen.setdefault((route.path, route.exact), []).append(route)

    def _check_route_issuers(self, routes: RoutesConfig, known: set[str]) -> None:
        self._file = str(routes.file)
        for route in routes.routes:
            for name in sorted((route.issuers or frozenset()) - known):
                self._problem(route.line, f"route '{route.path}' names unknown issuer '{name}'")
