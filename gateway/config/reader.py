"""Reading gateway.yaml: listeners, TLS, token rules, limits and logging here, the issuers in
`issuers_reader`, then the routes file it names (`routes_reader`)."""

from __future__ import annotations

from typing import Any

from gateway.config import convert, options
from gateway.config.issuers_reader import read_issuers
from gateway.config.models import (
    AdminConfig,
    Config,
    HttpRedirectConfig,
    JwksSettings,
    LimitBackend,
    LimitsConfig,
    ListenConfig,
    RateLimitSettings,
    TlsConfig,
    TracingSettings,
)
from gateway.config.routes_reader import check_route_issuers, read_routes
from gateway.config.source import Converters, Source
from gateway.config.tls import TlsError, server_context
from gateway.config.units import parse_duration
from gateway.config.yamlfile import YamlMap
from gateway.core.clientip import ClientIpHeader, TrustedProxies
from gateway.core.models import IssuerConfig, RoutesConfig, TokensConfig, path_matches
from gateway.core.resource_metadata import WELL_KNOWN_PATH, ProtectedResource

__all__ = ["read_gateway"]

_GATEWAY_KEYS = {
    "listen", "admin", "tls", "routes", "issuers", "tokens", "jwks", "limits", "logging",
    "drain_timeout", "headers", "rate_limits", "trusted_proxies", "client_ip_header",
    "protected_resource", "tracing",
}  # fmt: skip
_LISTEN: Converters = {"host": convert.host, "port": convert.port}
_TLS_FILES: Converters = {"cert": convert.file_name, "key": convert.file_name}
_TLS: Converters = {"hsts": convert.hsts}
_TOKENS: Converters = {"leeway": parse_duration, "max_lifetime": parse_duration}
_LIMITS: Converters = {
    "max_line_size": convert.size, "max_field_size": convert.size, "max_headers": convert.size,
    "keepalive_timeout": parse_duration, "max_connections": convert.size,
    "max_body_size": convert.size, "upstream_pool_size": convert.size,
    "upstream_pool_size_per_host": convert.size, "upstream_connect_timeout": parse_duration,
    "header_timeout": parse_duration, "websocket_idle_timeout": options.positive_duration,
    "websocket_max_message_size": convert.size,
}  # fmt: skip
_JWKS: Converters = {
    "timeout": parse_duration, "max_bytes": convert.positive_int,
    "default_ttl": parse_duration, "min_ttl": parse_duration, "max_ttl": parse_duration,
    "max_stale": parse_duration, "kid_miss_cooldown": parse_duration,
    "kid_miss_wait": parse_duration, "retry_min": parse_duration, "retry_max": parse_duration,
}  # fmt: skip
_RATE_LIMITS: Converters = {
    "backend": options.limit_backend, "url": options.redis_url, "timeout": parse_duration,
    "pool_size": convert.positive_int, "backoff": parse_duration, "key_prefix": convert.string,
    "max_entries": convert.positive_int, "auth_failures": options.auth_failures,
}  # fmt: skip
_LOGGING: Converters = {"level": convert.log_level}
_HEADERS: Converters = {"strip": convert.header_names}
_PROTECTED_RESOURCE: Converters = {
    "resource": options.resource_identifier, "authorization_servers": convert.issuer_names,
    "scopes_supported": convert.string_list, "resource_name": convert.string,
    "resource_documentation": options.https_url, "max_age": parse_duration,
}  # fmt: skip
_CLIENT_IP: Converters = {
    "trusted_proxies": options.networks, "client_ip_header": options.client_ip_header,
}  # fmt: skip
_TRACING: Converters = {
    "endpoint": options.otlp_endpoint, "service_name": convert.string,
    "sampling_ratio": options.ratio, "headers": options.header_map,
}  # fmt: skip


def read_gateway(source: Source) -> Config | None:
    """Read gateway.yaml and the routes file it names; None if either cannot be used at all."""
    document = source.document()
    if document is None:
        return None
    source.unknown_keys(document, _GATEWAY_KEYS, "in gateway.yaml")
    listen = ListenConfig(**_section_fields(source, document, "listen", _LISTEN))
    admin = AdminConfig(**_section_fields(source, document, "admin", _LISTEN))
    if (admin.host, admin.port) == (listen.host, listen.port) and listen.port != 0:
        source.problem(document.key_lines.get("admin", 1), "admin must not share the public port")
    settings: dict[str, Any] = {  # Config's optional fields, in the order they are judged
        "listen": listen,
        "admin": admin,
        "tls": _tls(source, document),
        "tokens": TokensConfig(**_section_fields(source, document, "tokens", _TOKENS)),
        "limits": LimitsConfig(**_section_fields(source, document, "limits", _LIMITS)),
    }
    logging = _section_fields(source, document, "logging", _LOGGING)
    if "level" in logging:
        settings["log_level"] = logging["level"]
    settings |= source.fields(document, {"drain_timeout": parse_duration})
    headers = _section_fields(source, document, "headers", _HEADERS)
    if "strip" in headers:
        settings["strip_headers"] = headers["strip"]
    settings["rate_limits"] = _rate_limits(source, document)
    settings["trusted_proxies"] = _trusted_proxies(source, document)
    settings["tracing"] = _tracing(source, document)
    issuers, declared_issuers = read_issuers(source, document)
    settings["jwks"] = _jwks(source, document)
    routes_name = source.value(document, "routes", convert.file_name, required=True)
    if routes_name is None:
        return None
    routes_source = source.sibling(source.path.parent / routes_name)
    routes = read_routes(routes_source)
    if routes is None:
        return None
    check_route_issuers(routes_source, routes, declared_issuers)
    settings["protected_resource"] = _protected_resource(
        source, document, issuers, routes_source, routes
    )
    if source.digest is not None:
        settings["version"] = source.digest.hexdigest()[:12]
    return Config(file=source.path, routes=routes, issuers=issuers, **settings)


def _section_fields(
    source: Source, document: YamlMap, key: str, converters: Converters
) -> dict[str, Any]:
    """The fields a section gives (none when it is absent or not a mapping)."""
    section = source.section(document, key, converters.keys())
    return {} if section is None else source.fields(section, converters)


def _tls(source: Source, document: YamlMap) -> TlsConfig | None:
    section = source.section(document, "tls", {*_TLS_FILES, *_TLS, "http_redirect"})
    if section is None:
        return None
    files = source.fields(section, _TLS_FILES, required=_TLS_FILES.keys())
    paths = {name: source.path.parent / value for name, value in files.items()}
    complete = paths.keys() == _TLS_FILES.keys()
    if complete:
        line = section.key_lines["cert"]
        source.fingerprint(line, paths["cert"], paths["key"])
        try:
            server_context(paths["cert"], paths["key"])
        except TlsError as exc:
            source.problem(line, f"'tls': {exc}")
    values = source.fields(section, _TLS)
    if "http_redirect" in section:
        redirect = _section_fields(source, section, "http_redirect", _LISTEN)
        values["http_redirect"] = HttpRedirectConfig(**redirect)
    return TlsConfig(**paths, **values) if complete else None


def _rate_limits(source: Source, document: YamlMap) -> RateLimitSettings:
    section = source.section(document, "rate_limits", _RATE_LIMITS.keys())
    if section is None:
        return RateLimitSettings()
    values = source.fields(section, _RATE_LIMITS)
    redis = values.get("backend") is LimitBackend.REDIS
    if redis and "url" not in values and "url" not in section:
        source.problem(section.key_lines["backend"], "'backend: redis' needs a 'url'")
    if not redis and "url" in section:
        source.problem(section.key_lines["url"], "'url' is only used with 'backend: redis'")
    if "timeout" in values and values["timeout"] <= 0:
        source.problem(section.key_lines["timeout"], "'timeout' must be longer than zero")
        del values["timeout"]
    return RateLimitSettings(**values)


def _protected_resource(
    source: Source,
    document: YamlMap,
    issuers: tuple[IssuerConfig, ...],
    routes_source: Source,
    routes: RoutesConfig,
) -> ProtectedResource | None:
    section = source.section(document, "protected_resource", _PROTECTED_RESOURCE.keys())
    if section is None:
        return None
    values = source.fields(section, _PROTECTED_RESOURCE, required=("resource",))
    if "max_age" in values:
        values["max_age"] = int(values["max_age"])
    names = values.pop("authorization_servers", None)
    if names is not None:
        by_name = {issuer.name: issuer.issuer for issuer in issuers}
        unknown = sorted(set(names) - set(by_name))
        line = section.key_lines["authorization_servers"]
        for name in unknown:
            source.problem(line, f"'authorization_servers' names unknown issuer '{name}'")
        listed = [name for name in section["authorization_servers"] if name in by_name]
        values["authorization_servers"] = tuple(by_name[name] for name in listed)
    if "scopes_supported" in values:
        values["scopes_supported"] = tuple(dict.fromkeys(values["scopes_supported"]))
    if "resource" not in values:
        return None
    for route in routes.routes:  # the gateway answers the whole prefix: such a route is dead
        if path_matches(WELL_KNOWN_PATH, route.path):
            routes_source.problem(
                route.line,
                f"route '{route.path}' is under {WELL_KNOWN_PATH}, which the gateway answers "
                "itself when 'protected_resource' is set",
            )
    return ProtectedResource(**values)


def _trusted_proxies(source: Source, document: YamlMap) -> TrustedProxies | None:
    values = source.fields(document, _CLIENT_IP)
    if "client_ip_header" in document and "trusted_proxies" not in document:
        line = document.key_lines["client_ip_header"]
        source.problem(line, "'client_ip_header' is only read with 'trusted_proxies'")
    if "trusted_proxies" not in values:
        return None
    header = values.get("client_ip_header", ClientIpHeader.X_FORWARDED_FOR)
    return TrustedProxies(networks=values["trusted_proxies"], header=header)


def _tracing(source: Source, document: YamlMap) -> TracingSettings | None:
    section = source.section(document, "tracing", _TRACING.keys())
    if section is None:
        return None  # off: not one OpenTelemetry call on the request path
    values = source.fields(section, _TRACING, required={"endpoint"})
    return TracingSettings(**values) if "endpoint" in values else None


def _jwks(source: Source, document: YamlMap) -> JwksSettings:
    section = source.section(document, "jwks", _JWKS.keys())
    if section is None:
        return JwksSettings()
    settings = JwksSettings(**source.fields(section, _JWKS))
    if settings.min_ttl > settings.max_ttl:
        source.problem(section.line, "'min_ttl' must not be longer than 'max_ttl'")
    return settings
