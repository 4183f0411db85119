"""Reading gateway.yaml (listeners, issuers and their keys, token rules, limits) and then the
routes file it names; the routes part is `RoutesReader`, the plumbing `ReaderBase`."""

from __future__ import annotations

import json
from pathlib import Path

import yarl

from gateway.config import convert
from gateway.config.models import (
    AdminConfig,
    Config,
    JwksSettings,
    LimitsConfig,
    ListenConfig,
    TlsConfig,
)
from gateway.config.routes_reader import RoutesReader
from gateway.config.tls import TlsError, server_context
from gateway.config.units import parse_duration
from gateway.config.yamlfile import YamlList, YamlMap
from gateway.core.keys import (
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
from gateway.core.models import IssuerConfig, TokensConfig
from gateway.core.urls import https_or_loopback

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


class Reader(RoutesReader):
    """Reads gateway.yaml and the routes file it names."""

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
