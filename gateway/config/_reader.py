"""Walking parsed YAML into config objects, collecting every problem on the way."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import yarl

from gateway._interpolate import MissingVariable, interpolate
from gateway._net import https_or_loopback
from gateway._yaml import YamlError, YamlList, YamlMap, load_yaml
from gateway.auth.keys import (
    HMAC_ALGORITHMS,
    HMAC_MIN_BYTES,
    KeyLoadError,
    KeySet,
    VerificationKey,
    build_key_set,
    hmac_key,
    keys_from_jwks,
    keys_from_pem,
)
from gateway.config import _convert as convert
from gateway.config.models import (
    AdminConfig,
    AuthMode,
    Config,
    ConfigIssue,
    IssuerConfig,
    JwksSettings,
    LimitsConfig,
    ListenConfig,
    Route,
    RouteMode,
    RoutesConfig,
    ScopeRule,
    TlsConfig,
    TokensConfig,
    Upstream,
)
from gateway.durations import parse_duration
from gateway.tls import TlsError, client_context, server_context

__all__ = ["Reader"]

_GATEWAY_KEYS = {
    "listen", "admin", "tls", "routes", "issuers", "tokens", "jwks", "limits", "logging",
    "drain_timeout",
}  # fmt: skip
_LIMIT_SIZES = {
    "max_line_size", "max_field_size", "max_headers", "max_connections", "max_body_size",
    "upstream_pool_size", "upstream_pool_size_per_host",
}  # fmt: skip
_LIMIT_DURATIONS = {"keepalive_timeout", "upstream_connect_timeout"}

_T = TypeVar("_T")


class Reader:
    """Walks parsed YAML, collecting every problem instead of stopping at the first."""

    def __init__(self, path: Path, environ: Mapping[str, str]) -> None:
        self.path = path
        self.environ = environ
        self.issues: list[ConfigIssue] = []
        self._file = str(path)
        # Names declared in the files, valid or not: a refused entry must not make every
        # reference to it a second, misleading problem.
        self._declared_issuers: set[str] = set()
        self._declared_upstreams: set[str] = set()
        self._referenced_upstreams: set[str] = set()
        # Every byte the config is made of (YAML and key files), for the config version.
        self._digest = hashlib.sha256()

    # -- plumbing -------------------------------------------------------------------------

    def _problem(self, line: int, message: str) -> None:
        self.issues.append(ConfigIssue(self._file, line, message))

    def _read_document(self, path: Path) -> YamlMap | None:
        self._file = str(path)
        try:
            raw = path.read_bytes()
            text = raw.decode("utf-8")
        except OSError as exc:
            self._problem(0, f"cannot read file: {exc.strerror or exc}")
            return None
        except UnicodeDecodeError:
            self._problem(0, "file is not UTF-8 text")
            return None
        self._digest.update(str(path).encode() + b"\0" + raw + b"\0")
        try:
            document = load_yaml(text)
        except YamlError as exc:
            self._problem(exc.line, exc.message)
            return None
        if not isinstance(document, YamlMap):
            self._problem(1, "expected a mapping at the top level")
            return None
        return document

    def _mapping(
        self, parent: YamlMap, key: str, allowed: set[str], *, required: bool = False
    ) -> YamlMap | None:
        value = parent.get(key)
        line = parent.key_lines.get(key, parent.line)
        if value is None:
            if required:
                self._problem(parent.line, f"missing required key '{key}'")
            return None
        if not isinstance(value, YamlMap):
            self._problem(line, f"'{key}' must be a mapping")
            return None
        self._unknown_keys(value, allowed, f"in '{key}'")
        return value

    def _unknown_keys(self, mapping: YamlMap, allowed: set[str], where: str) -> None:
        for key in mapping:
            if key not in allowed:
                hint = convert.did_you_mean(key, allowed)
                self._problem(mapping.key_lines[key], f"unknown key '{key}' {where}{hint}")

    def _get(
        self,
        mapping: YamlMap,
        key: str,
        convert: Callable[[Any], _T],
        default: _T,
        *,
        required: bool = False,
    ) -> _T:
        if key not in mapping:
            if required:
                self._problem(mapping.line, f"missing required key '{key}'")
            return default
        line = mapping.key_lines[key]
        try:
            return convert(self._interpolated(mapping[key], line))
        except (ValueError, TypeError) as exc:
            self._problem(line, f"'{key}': {exc}")
            return default

    def _interpolated(self, value: Any, line: int) -> Any:
        if isinstance(value, str):
            try:
                return interpolate(value, self.environ)
            except MissingVariable as exc:
                raise ValueError(f"environment variable {exc.name} is not set") from None
        if isinstance(value, YamlList):
            return [self._interpolated(item, line) for item in value]
        if isinstance(value, YamlMap):
            return {key: self._interpolated(item, line) for key, item in value.items()}
        return value

    # -- gateway.yaml ---------------------------------------------------------------------

    def gateway(self) -> Config | None:
        document = self._read_document(self.path)
        if document is None:
            return None
        self._unknown_keys(document, _GATEWAY_KEYS, "in gateway.yaml")
        base = self.path.parent
        listen = self._listen(document, "listen", ListenConfig(host="127.0.0.1", port=8080))
        admin_default = ListenConfig(host="127.0.0.1", port=9090)
        admin_listen = self._listen(document, "admin", admin_default)
        admin = AdminConfig(host=admin_listen.host, port=admin_listen.port)
        if (admin.host, admin.port) == (listen.host, listen.port) and listen.port != 0:
            self._problem(
                document.key_lines.get("admin", 1), "admin must not share the public port"
            )
        tls = self._tls(document, base)
        tokens = self._tokens(document)
        limits = self._limits(document)
        log_level = self._log_level(document)
        drain_timeout = self._get(document, "drain_timeout", parse_duration, 20.0)
        issuers = self._issuers(document, base)
        jwks = self._jwks(document)
        routes_name = self._get(document, "routes", convert.string, "", required=True)
        gateway_file = self._file
        routes = self.routes(base / routes_name) if routes_name else None
        self._file = gateway_file
        if routes is None:
            return None
        self._check_route_issuers(routes, self._declared_issuers)
        return Config(
            file=self.path,
            listen=listen,
            admin=admin,
            tls=tls,
            issuers=issuers,
            tokens=tokens,
            jwks=jwks,
            limits=limits,
            log_level=log_level,
            drain_timeout=drain_timeout,
            routes=routes,
            version=self._digest.hexdigest()[:12],
        )

    def _listen(self, document: YamlMap, key: str, default: ListenConfig) -> ListenConfig:
        section = self._mapping(document, key, {"host", "port"})
        if section is None:
            return default
        return ListenConfig(
            host=self._get(section, "host", convert.host, default.host),
            port=self._get(section, "port", convert.port, default.port),
        )

    def _tls(self, document: YamlMap, base: Path) -> TlsConfig | None:
        section = self._mapping(document, "tls", {"cert", "key", "hsts", "http_redirect"})
        if section is None:
            return None
        cert = base / self._get(section, "cert", convert.string, "", required=True)
        key = base / self._get(section, "key", convert.string, "", required=True)
        if "cert" in section and "key" in section:
            self._read_tls_files(section.key_lines["cert"], cert, key)
            try:
                server_context(cert, key)
            except TlsError as exc:
                self._problem(section.key_lines["cert"], f"'tls': {exc}")
        default_hsts: str | None = "max-age=31536000"
        hsts = self._get(section, "hsts", convert.hsts, default_hsts)
        redirect = None
        if "http_redirect" in section:
            redirect = self._listen(section, "http_redirect", ListenConfig(host="", port=0))
        return TlsConfig(cert=cert, key=key, hsts=hsts, http_redirect=redirect)

    def _read_tls_files(self, line: int, *paths: Path | None) -> None:
        """Fold certificate files into the config version, so a rotation is a config change."""
        for path in paths:
            if path is None:
                continue
            try:
                self._digest.update(str(path).encode() + b"\0" + path.read_bytes() + b"\0")
            except OSError as exc:
                self._problem(line, f"cannot read {path}: {exc.strerror or exc}")

    def _limits(self, document: YamlMap) -> LimitsConfig:
        section = self._mapping(document, "limits", _LIMIT_SIZES | _LIMIT_DURATIONS)
        defaults = LimitsConfig()
        if section is None:
            return defaults
        values: dict[str, float] = {}
        for name in _LIMIT_SIZES:
            values[name] = self._get(section, name, convert.size, getattr(defaults, name))
        for name in _LIMIT_DURATIONS:
            values[name] = self._get(section, name, parse_duration, getattr(defaults, name))
        return LimitsConfig(**values)  # type: ignore[arg-type]

    def _tokens(self, document: YamlMap) -> TokensConfig:
        section = self._mapping(document, "tokens", {"leeway", "max_lifetime"})
        if section is None:
            return TokensConfig()
        return TokensConfig(
            leeway=self._get(section, "leeway", parse_duration, 30.0),
            max_lifetime=self._get(section, "max_lifetime", parse_duration, None),
        )

    def _jwks(self, document: YamlMap) -> JwksSettings:
        names = {
            "timeout", "max_bytes", "default_ttl", "min_ttl", "max_ttl", "max_stale",
            "kid_miss_cooldown", "kid_miss_wait", "retry_min", "retry_max",
        }  # fmt: skip
        section = self._mapping(document, "jwks", names)
        defaults = JwksSettings()
        if section is None:
            return defaults
        values: dict[str, float | int] = {}
        for name in names - {"max_bytes"}:
            values[name] = self._get(section, name, parse_duration, getattr(defaults, name))
        values["max_bytes"] = self._get(
            section, "max_bytes", convert.positive_int, defaults.max_bytes
        )
        settings = JwksSettings(**values)  # type: ignore[arg-type]
        if settings.min_ttl > settings.max_ttl:
            self._problem(section.line, "'min_ttl' must not be longer than 'max_ttl'")
        return settings

    def _log_level(self, document: YamlMap) -> str:
        section = self._mapping(document, "logging", {"level"})
        if section is None:
            return "info"
        return self._get(section, "level", convert.log_level, "info")

    def _issuers(self, document: YamlMap, base: Path) -> tuple[IssuerConfig, ...]:
        entries = document.get("issuers")
        if entries is None:
            return ()
        if not isinstance(entries, YamlList):
            self._problem(document.key_lines["issuers"], "'issuers' must be a list")
            return ()
        issuers: list[IssuerConfig] = []
        names: dict[str, int] = {}
        identifiers: dict[str, int] = {}
        for entry, line in zip(entries, entries.item_lines, strict=True):
            if not isinstance(entry, YamlMap):
                self._problem(line, "each issuer must be a mapping")
                continue
            if isinstance(entry.get("name"), str):
                self._declared_issuers.add(entry["name"])
            issuer = self._issuer(entry, base)
            if issuer is None:
                continue
            for seen, value, what in (
                (names, issuer.name, "name"),
                (identifiers, issuer.issuer, "issuer"),
            ):
                if value in seen:
                    self._problem(
                        line, f"duplicate issuer {what} '{value}' (first at line {seen[value]})"
                    )
                seen.setdefault(value, line)
            issuers.append(issuer)
        return tuple(issuers)

    def _issuer(self, entry: YamlMap, base: Path) -> IssuerConfig | None:
        allowed_keys = {
            "name", "issuer", "audiences", "algorithms", "keys", "secret",
            "require_typ", "jwks_uri", "discovery", "allow_insecure_http",
        }  # fmt: skip
        self._unknown_keys(entry, allowed_keys, "in issuer")
        name = self._get(entry, "name", convert.string, "", required=True)
        identifier = self._get(entry, "issuer", convert.string, "", required=True)
        algorithms: frozenset[str] = self._get(
            entry, "algorithms", convert.algorithms, frozenset(), required=True
        )
        audiences: tuple[str, ...] = self._get(entry, "audiences", convert.string_list, ())
        require_typ = self._get(entry, "require_typ", convert.string, None)
        allow_http = self._get(entry, "allow_insecure_http", convert.boolean, False)
        jwks_uri = self._get(entry, "jwks_uri", convert.http_url, None)
        discovery = self._get(entry, "discovery", convert.boolean, False)
        remote = jwks_uri is not None or discovery
        keys: list[VerificationKey] = []
        key_files: tuple[Path, ...] = ()
        if remote:
            self._check_remote(entry, identifier, jwks_uri, allow_http, algorithms)
        else:
            key_names: tuple[str, ...] = self._get(entry, "keys", convert.string_list, ())
            key_files = tuple(base / name for name in key_names)
            if "keys" not in entry and "secret" not in entry:
                self._problem(
                    entry.line,
                    f"issuer '{name}' has no keys: give 'keys' files, a 'secret', "
                    "a 'jwks_uri' or 'discovery: true'",
                )
            elif algorithms:  # without a valid allowlist, judging keys would only add noise
                keys = self._local_keys(entry, key_files, algorithms)
        if not (name and identifier and algorithms):
            return None
        return IssuerConfig(
            name=name,
            issuer=identifier,
            algorithms=algorithms,
            audiences=audiences,
            keys=self._key_set(entry, keys),
            key_files=key_files,
            require_typ=require_typ,
            jwks_uri=jwks_uri,
            discovery=discovery,
            allow_insecure_http=allow_http,
        )

    def _check_remote(
        self,
        entry: YamlMap,
        identifier: str,
        jwks_uri: yarl.URL | None,
        allow_http: bool,
        algorithms: frozenset[str],
    ) -> None:
        for local in ("keys", "secret"):
            if local in entry:
                self._problem(
                    entry.key_lines[local],
                    f"'{local}' cannot be combined with 'jwks_uri' or 'discovery'",
                )
        if jwks_uri is not None and entry.get("discovery") is True:
            self._problem(entry.key_lines["discovery"], "give either 'jwks_uri' or 'discovery'")
        if algorithms & HMAC_ALGORITHMS:
            self._problem(
                entry.key_lines["algorithms"],
                "HMAC algorithms need a 'secret'; remote key sets are never used as HMAC keys",
            )
        checked = jwks_uri
        line = entry.key_lines.get("jwks_uri", entry.line)
        if checked is None and identifier:
            try:
                checked = convert.http_url(identifier)
            except ValueError:
                self._problem(
                    entry.key_lines.get("issuer", entry.line),
                    "'discovery' needs an issuer that is an http(s) URL",
                )
                return
            line = entry.key_lines.get("issuer", entry.line)
        if checked is not None and not https_or_loopback(checked, allow_insecure_http=allow_http):
            self._problem(
                line,
                f"'{checked}' is plain http: keys must come over https "
                "(or set 'allow_insecure_http: true', which is logged as a warning)",
            )

    def _local_keys(
        self, entry: YamlMap, key_files: tuple[Path, ...], algorithms: frozenset[str]
    ) -> list[VerificationKey]:
        problems_before = len(self.issues)
        keys = self._load_keys(entry, key_files, algorithms)
        secret = self._get(entry, "secret", convert.string, None)
        if secret is not None:
            keys = self._add_secret(entry, secret, algorithms, keys)
        if len(self.issues) == problems_before:
            self._check_algorithm_coverage(entry, algorithms, keys)
        return keys

    def _key_set(self, entry: YamlMap, keys: list[VerificationKey]) -> KeySet:
        key_set, ambiguous = build_key_set(keys)
        for skipped in ambiguous:
            self._problem(
                entry.key_lines.get("keys", entry.line),
                f"kid '{skipped.kid}' names two different keys; no token naming it verifies",
            )
        return key_set

    def _load_keys(
        self, entry: YamlMap, files: tuple[Path, ...], algorithms: frozenset[str]
    ) -> list[VerificationKey]:
        line = entry.key_lines.get("keys", entry.line)
        keys: list[VerificationKey] = []
        asymmetric = algorithms - HMAC_ALGORITHMS
        for path in files:
            try:
                data = path.read_bytes()
                self._digest.update(str(path).encode() + b"\0" + data + b"\0")
            except OSError as exc:
                self._problem(line, f"cannot read key file {path}: {exc.strerror or exc}")
                continue
            try:
                if path.suffix == ".json":
                    key_set, skipped = keys_from_jwks(json.loads(data), asymmetric, str(path))
                    keys.extend(key_set.keys)
                    for skip in skipped:
                        self._problem(line, f"{path}: key '{skip.kid}' is unusable ({skip.reason})")
                else:
                    keys.append(keys_from_pem(data, asymmetric, str(path)))
            except (KeyLoadError, ValueError) as exc:
                self._problem(line, str(exc))
        return keys

    def _add_secret(
        self,
        entry: YamlMap,
        secret: str,
        algorithms: frozenset[str],
        keys: list[VerificationKey],
    ) -> list[VerificationKey]:
        line = entry.key_lines["secret"]
        hmac_algorithms = algorithms & HMAC_ALGORITHMS
        if not hmac_algorithms:
            self._problem(line, "'secret' is set but no HS256/HS384/HS512 algorithm is allowed")
            return keys
        needed = max(HMAC_MIN_BYTES[alg] for alg in hmac_algorithms)
        if len(secret.encode()) < needed:
            self._problem(
                line,
                f"'secret' is {len(secret.encode())} bytes; "
                f"{'/'.join(sorted(hmac_algorithms))} needs at least {needed}",
            )
            return keys
        return [*keys, hmac_key(secret, algorithms, "secret")]

    def _check_algorithm_coverage(
        self, entry: YamlMap, algorithms: frozenset[str], keys: list[VerificationKey]
    ) -> None:
        covered = frozenset().union(*(key.algorithms for key in keys)) if keys else frozenset()
        for algorithm in sorted(algorithms - covered):
            if keys:
                self._problem(
                    entry.key_lines.get("algorithms", entry.line),
                    f"algorithm {algorithm} is allowed but no configured key can verify it",
                )

    # -- routes.yaml ----------------------------------------------------------------------

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
