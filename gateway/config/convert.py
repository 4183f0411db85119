"""Pure converters for config values: each returns the typed value or raises ``ValueError``
with a message for the operator."""

from __future__ import annotations

import difflib
import re
from collections.abc import Collection
from typing import Any

import yarl

from gateway.config.models import LimitBackend
from gateway.config.units import parse_duration
from gateway.core.claim_headers import ClaimHeaders, check_header_name
from gateway.core.clientip import ClientIpHeader, Network, parse_network
from gateway.core.cors import CorsError, CorsPolicy
from gateway.core.keys import SUPPORTED_ALGORITHMS
from gateway.core.methods import NEVER_PROXIED
from gateway.core.models import (
    AuthMode,
    LintCode,
    RouteMode,
    ScopeFormat,
    ScopeMode,
    ScopeRule,
    WebSocketRoute,
)
from gateway.core.params import Binding, PathPattern, has_params
from gateway.core.ratelimit import AuthFailureSettings, LimitKey, OnBackendError, RateLimit
from gateway.core.resource_metadata import check_resource
from gateway.core.target import TargetError, canonicalize_path

# RFC 9110 token characters, upper-case only: methods are case-sensitive.
_METHOD_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$%&'*+-.^_`|~")


def string(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError("must be a non-empty string")
    return value


def string_list(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ValueError("must be a list of non-empty strings")
    return tuple(value)


def file_name(value: Any) -> str:
    """A file name, relative to the config file or absolute (no NUL: no file can have one)."""
    name = string(value)
    if "\0" in name:
        raise ValueError("a file name cannot contain a NUL byte")
    return name


def file_names(value: Any) -> tuple[str, ...]:
    """A list of `file_name` values."""
    return tuple(file_name(name) for name in string_list(value))


def issuer_names(value: Any) -> frozenset[str]:
    return frozenset(string_list(value))


def boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError("must be true or false")
    return value


def port(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 65535:
        raise ValueError("must be a port number from 0 to 65535")
    return value


def host(value: Any) -> str:
    host = string(value)
    if any(ch.isspace() or ch in "/@" for ch in host):
        raise ValueError(f"'{host}' is not a host name or address")
    return host


def log_level(value: Any) -> str:
    level = string(value).lower()
    if level not in {"debug", "info", "warning", "error"}:
        raise ValueError("must be one of debug, info, warning, error")
    return level


def algorithms(value: Any) -> frozenset[str]:
    names = string_list(value)
    if not names:
        raise ValueError("must list at least one algorithm")
    for name in names:
        if name.lower() == "none":
            raise ValueError("'none' is never accepted")
        if name not in SUPPORTED_ALGORITHMS:
            raise ValueError(
                f"unsupported algorithm '{name}' ({', '.join(sorted(SUPPORTED_ALGORITHMS))})"
            )
    return frozenset(names)


def methods(value: Any) -> frozenset[str]:
    methods = string_list(value)
    if not methods:
        raise ValueError("must list at least one method (leave 'methods' out to allow all)")
    for method in methods:
        if not set(method) <= _METHOD_CHARS:
            raise ValueError(f"'{method}' is not a method (methods are case-sensitive: GET, POST)")
        if method in NEVER_PROXIED:
            raise ValueError(f"{method} is never proxied")
    return frozenset(methods)


def auth_mode(value: Any) -> AuthMode:
    try:
        return AuthMode(value)
    except ValueError:
        raise ValueError(f"{value!r} is not one of: 'required', 'none'") from None


def route_mode(value: Any) -> RouteMode:
    try:
        return RouteMode(value)
    except ValueError:
        raise ValueError(f"{value!r} is not one of: 'enforce', 'report'") from None


def lint_codes(value: Any) -> frozenset[LintCode]:
    codes = set()
    known = {code.value for code in LintCode}
    for name in string_list(value):
        if name not in known:
            hint = did_you_mean(name, known)
            raise ValueError(f"'{name}' is not a lint warning ({', '.join(sorted(known))}){hint}")
        codes.add(LintCode(name))
    return frozenset(codes)


def route_path(value: Any) -> str:
    path = string(value)
    if not path.startswith("/"):
        raise ValueError(f"'{path}' is not in canonical form; write '/{path}'")
    # {name} segments (gateway.core.params) are checked as a stand-in literal segment: the rest
    # of the path must be canonical around them.
    pattern = PathPattern.parse(path) if has_params(path) or "}" in path else None
    literal = path
    if pattern is not None:
        literal = "/" + "/".join(
            lit if name is None else _PARAM_STAND_IN
            for lit, name in zip(pattern.literals, pattern.names, strict=True)
        )
    try:
        canonical = canonicalize_path(literal)
    except TargetError as exc:
        raise ValueError(f"'{path}' is not a valid path ({exc.problem.value})") from None
    wanted = canonical.rstrip("/") or "/"
    if literal != wanted:
        if pattern is not None:
            raise ValueError(f"'{path}' is not in canonical form")
        raise ValueError(f"'{path}' is not in canonical form; write '{wanted}'")
    return path


_PARAM_STAND_IN = "p"  # a canonical segment, never '.' or '..'


def bindings(value: Any) -> tuple[Binding, ...]:
    """``bind: {param: claim}``: each path parameter and the claim it must equal."""
    if not isinstance(value, dict) or not value:
        raise ValueError("write a mapping of path parameter to claim: {tenant: tenant_id}")
    found = []
    for param, claim in value.items():
        if not isinstance(param, str) or not isinstance(claim, str) or not param or not claim:
            raise ValueError("write a mapping of path parameter to claim: {tenant: tenant_id}")
        found.append(Binding(param, claim))
    return tuple(found)


def scope_rule(value: Any) -> ScopeRule:
    if isinstance(value, dict):
        if set(value) != {"any"}:
            raise ValueError("write a list (all of them) or {any: [a, b]} (at least one)")
        scopes = string_list(value["any"])
        if not scopes:
            raise ValueError("'any' must list at least one scope")
        return ScopeRule(ScopeMode.ANY, scopes)
    scopes = string_list(value)
    if any(" " in scope for scope in scopes):
        raise ValueError("a scope cannot contain a space")
    return ScopeRule(ScopeMode.ALL, scopes)


def hsts(value: Any) -> str | None:
    if value is False:
        return None
    text = string(value)
    if "max-age=" not in text or any(ch in text for ch in "\r\n"):
        raise ValueError(
            "write a Strict-Transport-Security value like 'max-age=31536000', or false"
        )
    return text


_SIZE = re.compile(r"([0-9]+)\s*(B|KiB|MiB|GiB)?")
_SIZE_UNITS = {None: 1, "B": 1, "KiB": 1024, "MiB": 1024**2, "GiB": 1024**3}


def size(value: Any) -> int:
    """A whole number, or a byte size like ``512KiB``, ``10MiB``, ``1GiB``."""
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    match = _SIZE.fullmatch(value.strip()) if isinstance(value, str) else None
    if match is None or int(match.group(1)) == 0:
        raise ValueError(f"{value!r} is not a positive number or size (e.g. 8190, 512KiB, 10MiB)")
    return int(match.group(1)) * _SIZE_UNITS[match.group(2)]


def positive_int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError("must be a positive whole number")
    return value


def http_url(value: Any) -> yarl.URL:
    text = string(value)
    url = yarl.URL(text)
    if url.scheme not in {"http", "https"} or not url.host or url.user or url.fragment:
        raise ValueError(f"'{text}' must be an http:// or https:// URL with a host")
    return url


def upstream_url(value: Any) -> yarl.URL:
    text = string(value)
    url = yarl.URL(text)
    if url.scheme not in {"http", "https"} or not url.host:
        raise ValueError(f"'{text}' must be an http:// or https:// URL with a host")
    if url.query_string or url.fragment or url.user:
        raise ValueError(f"'{text}' must not carry credentials, a query or a fragment")
    return url


def describe_overlap(a: frozenset[str] | None, b: frozenset[str] | None) -> str:
    if a is None or b is None:
        return "one of them allows every method"
    return "both allow " + ", ".join(sorted(a & b))


def did_you_mean(key: str, allowed: Collection[str]) -> str:
    """`` (did you mean 'x'?)`` for the nearest of ``allowed``, or nothing if none is near."""
    close = difflib.get_close_matches(key, sorted(allowed), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


_HEADER_NAME = re.compile(r"[A-Za-z0-9-]+")
_CLAIM_NAME = re.compile(r"[!-~]+")


def header_names(value: Any) -> frozenset[str]:
    """Header names (letters, digits and '-'), lower-cased."""
    names = string_list(value)
    for name in names:
        if not _HEADER_NAME.fullmatch(name):
            raise ValueError(f"'{name}' is not a header name (letters, digits and '-')")
    return frozenset(name.lower() for name in names)


def claim_name(value: Any) -> str:
    """A JWT claim's name: printable ASCII, no spaces."""
    name = string(value)
    if not _CLAIM_NAME.fullmatch(name):
        raise ValueError(f"'{name}' is not a claim name")
    return name


def scope_format(value: Any) -> ScopeFormat:
    """``string`` (space-delimited) or ``list``."""
    try:
        return ScopeFormat(value)
    except ValueError:
        raise ValueError(f"{value!r} is not one of: 'string', 'list'") from None


_RATE = re.compile(r"([0-9]+)\s*/\s*([0-9]*)\s*(ms|s|sec|m|min|h|hour)")
_RATE_UNITS = {"ms": "ms", "s": "s", "sec": "s", "m": "m", "min": "m", "h": "h", "hour": "h"}
_RATE_LIMIT_KEYS = {"rate", "burst", "key", "on_backend_error", "name"}
_POLICY_NAME = re.compile(r"[A-Za-z0-9_.:-]{1,64}")


def rate(value: Any) -> tuple[int, float]:
    """``100/s``, ``600/min``, ``1000/h``, ``50/10s``: requests and the period in seconds."""
    match = _RATE.fullmatch(value.strip()) if isinstance(value, str) else None
    if match is None or int(match.group(1)) == 0:
        raise ValueError(f"{value!r} is not a rate: write requests/period, like 100/s or 600/min")
    count = match.group(2) or "1"
    period = parse_duration(count + _RATE_UNITS[match.group(3)])
    if period <= 0:
        raise ValueError(f"{value!r}: the period must be longer than zero")
    return int(match.group(1)), period


def rate_limit(value: Any) -> RateLimit | None:
    """A route's ``rate_limit:`` mapping, or ``false`` (``off``) for none."""
    if value is False:
        return None
    if not isinstance(value, dict):
        raise ValueError("write {rate: 100/s, burst: 200, key: client_id}, or false for none")
    unknown = sorted(set(value) - _RATE_LIMIT_KEYS)
    if unknown:
        hint = did_you_mean(unknown[0], _RATE_LIMIT_KEYS)
        raise ValueError(f"unknown key '{unknown[0]}' in 'rate_limit'{hint}")
    missing = [key for key in ("rate", "key") if key not in value]
    if missing:
        raise ValueError(f"'rate_limit' needs '{missing[0]}'")
    quota, period = rate(value["rate"])
    burst = quota
    if "burst" in value:
        try:
            burst = positive_int(value["burst"])
        except ValueError:
            raise ValueError("'burst' must be a positive whole number") from None
    try:
        key = LimitKey(value["key"])
    except ValueError:
        known = ", ".join(k.value for k in LimitKey)
        raise ValueError(f"'key': {value['key']!r} is not one of: {known}") from None
    on_error = value.get("on_backend_error", OnBackendError.ALLOW.value)
    try:
        on_backend_error = OnBackendError(on_error)
    except ValueError:
        raise ValueError(f"'on_backend_error': {on_error!r} is not one of: allow, deny") from None
    name = value.get("name")
    if name is not None and (not isinstance(name, str) or not _POLICY_NAME.fullmatch(name)):
        raise ValueError("'name': 1 to 64 of letters, digits and _ . : -")
    return RateLimit(
        quota=quota, period=period, burst=burst, key=key, on_backend_error=on_backend_error,
        name=name,
    )  # fmt: skip


_AUTH_FAILURE_KEYS = {"max": "max_failures", "window": "window", "cooldown": "cooldown"}


def auth_failures(value: Any) -> AuthFailureSettings | None:
    """``rate_limits.auth_failures``: ``{max: 20, window: 1m, cooldown: 1m}``, or ``false``."""
    if value is False:
        return None
    if value is None or value is True:
        return AuthFailureSettings()
    if not isinstance(value, dict):
        raise ValueError("write {max: 20, window: 1m, cooldown: 1m}, or false to turn it off")
    unknown = sorted(set(value) - set(_AUTH_FAILURE_KEYS))
    if unknown:
        hint = did_you_mean(unknown[0], _AUTH_FAILURE_KEYS)
        raise ValueError(f"unknown key '{unknown[0]}' in 'auth_failures'{hint}")
    fields: dict[str, Any] = {}
    if "max" in value:
        try:
            fields["max_failures"] = positive_int(value["max"])
        except ValueError:
            raise ValueError("'max' must be a positive whole number") from None
    for name in ("window", "cooldown"):
        if name in value:
            seconds = parse_duration(value[name])
            if seconds <= 0:
                raise ValueError(f"'{name}' must be longer than zero")
            fields[name] = seconds
    return AuthFailureSettings(**fields)


def limit_backend(value: Any) -> LimitBackend:
    """``memory`` or ``redis``."""
    try:
        return LimitBackend(value)
    except ValueError:
        raise ValueError(f"{value!r} is not one of: 'memory', 'redis'") from None


def redis_url(value: Any) -> str:
    """A ``redis://`` (or ``rediss://``, TLS) URL with a host."""
    text = string(value)
    url = yarl.URL(text)
    if url.scheme not in {"redis", "rediss"} or not url.host:
        raise ValueError("must be a redis://host:port/db (or rediss://) URL")
    return text


def networks(value: Any) -> tuple[Network, ...]:
    """``trusted_proxies``: CIDRs or single addresses (``10.0.0.0/8``, ``192.0.2.7``)."""
    if not isinstance(value, list) or not value:
        raise ValueError("must be a list of CIDRs, like [10.0.0.0/8, 192.168.0.0/16]")
    parsed = []
    for item in value:
        if not isinstance(item, str):
            raise ValueError(f"{item!r} is not an IP address or a CIDR")
        parsed.append(parse_network(item))
    return tuple(parsed)


def client_ip_header(value: Any) -> ClientIpHeader:
    """``X-Forwarded-For`` or ``Forwarded`` (any case)."""
    for header in ClientIpHeader:
        if isinstance(value, str) and value.lower() == header.value.lower():
            return header
    raise ValueError(f"{value!r} is not one of: X-Forwarded-For, Forwarded")


def claims_to_headers(value: Any) -> ClaimHeaders:
    """``{X-Auth-Tenant: tenant_id, ...}``: header names inside ``X-Auth-`` (not the four fixed
    ones), each once whatever its case, to claim names."""
    if not isinstance(value, dict):
        raise ValueError("write {X-Auth-Tenant: tenant_id, ...}: header names to claim names")
    seen: set[str] = set()
    pairs = []
    for header, claim in value.items():
        if not isinstance(header, str):
            raise ValueError(f"{header!r} is not a header name")
        check_header_name(header)
        if header.lower() in seen:
            raise ValueError(f"'{header}' is mapped twice (header names ignore case)")
        seen.add(header.lower())
        try:
            pairs.append((header, claim_name(claim)))
        except ValueError:
            raise ValueError(f"'{header}': {claim!r} is not a claim name") from None
    return tuple(pairs)


def resource_identifier(value: Any) -> str:
    """An RFC 9728 resource identifier: an https URL without query or fragment."""
    return check_resource(string(value))


def https_url(value: Any) -> str:
    """An https URL with a host, kept as written."""
    url = http_url(value)
    if url.scheme != "https":
        raise ValueError(f"'{value}' must be an https:// URL")
    return str(value)


_WEBSOCKET_KEYS = {"token_from_subprotocol", "idle_timeout", "max_message_size"}


def positive_duration(value: Any) -> float:
    """A duration longer than zero."""
    seconds = parse_duration(value)
    if seconds <= 0:
        raise ValueError("must be longer than zero")
    return seconds


def websocket_route(value: Any) -> WebSocketRoute | None:
    """A route's ``websocket:``: ``true``, ``false`` (none), or
    ``{token_from_subprotocol: true, idle_timeout: 60s, max_message_size: 64KiB}``."""
    if value is False:
        return None
    if value is True:
        return WebSocketRoute()
    if not isinstance(value, dict):
        raise ValueError("write true, false, or {token_from_subprotocol: true, idle_timeout: 60s}")
    unknown = sorted(set(value) - _WEBSOCKET_KEYS)
    if unknown:
        hint = did_you_mean(unknown[0], _WEBSOCKET_KEYS)
        raise ValueError(f"unknown key '{unknown[0]}' in 'websocket'{hint}")
    fields: dict[str, Any] = {}
    if "token_from_subprotocol" in value:
        try:
            fields["token_from_subprotocol"] = boolean(value["token_from_subprotocol"])
        except ValueError:
            raise ValueError("'token_from_subprotocol' must be true or false") from None
    if "idle_timeout" in value:
        try:
            fields["idle_timeout"] = positive_duration(value["idle_timeout"])
        except ValueError as exc:
            raise ValueError(f"'idle_timeout': {exc}") from None
    if "max_message_size" in value:
        try:
            fields["max_message_size"] = size(value["max_message_size"])
        except ValueError as exc:
            raise ValueError(f"'max_message_size': {exc}") from None
    return WebSocketRoute(**fields)


def _seconds(value: Any) -> int:
    return int(parse_duration(value))


# Each `cors:` key and its converter, in the order they are judged.
_CORS_FIELDS: dict[str, Any] = {
    "origins": string_list, "methods": methods, "headers": header_names,
    "expose_headers": string_list, "credentials": boolean, "max_age": _seconds,
}  # fmt: skip


def cors(value: Any) -> CorsPolicy | None:
    """A ``cors:`` mapping (a route's, or the defaults'), or ``false`` (``off``) for none."""
    if value is False:
        return None
    if not isinstance(value, dict):
        raise ValueError("write {origins: [https://app.example.com], ...}, or false for none")
    unknown = sorted(set(value) - set(_CORS_FIELDS))
    if unknown:
        hint = did_you_mean(unknown[0], _CORS_FIELDS)
        raise ValueError(f"unknown key '{unknown[0]}' in 'cors'{hint}")
    if "origins" not in value:
        raise ValueError("'cors' needs 'origins'")
    fields: dict[str, Any] = {}
    for key, converter in _CORS_FIELDS.items():
        if key in value:
            try:
                fields[key] = converter(value[key])
            except ValueError as exc:
                raise ValueError(f"cors '{key}': {exc}") from None
    try:
        return CorsPolicy(**fields)
    except CorsError as exc:
        raise ValueError(f"cors: {exc}") from None


def otlp_endpoint(value: Any) -> str:
    """An OTLP/HTTP collector's full traces URL (``http://otel-collector:4318/v1/traces``)."""
    url = http_url(value)
    if url.path in {"", "/"}:
        # The exporter posts to the URL as written: a bare host would get the collector's 404.
        raise ValueError(
            f"'{value}' has no path: write the full traces URL, "
            "e.g. http://otel-collector:4318/v1/traces"
        )
    return str(url)


def ratio(value: Any) -> float:
    """A number from 0 to 1."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise ValueError("must be a number from 0 to 1 (0.1 keeps one trace in ten)")
    return float(value)


def header_map(value: Any) -> tuple[tuple[str, str], ...]:
    """``{Name: value}``: header names (letters, digits and '-') and single-line string values."""
    if not isinstance(value, dict):
        raise ValueError("write a mapping of header names to values, e.g. {x-api-key: ${KEY}}")
    pairs = []
    for name, text in value.items():
        if not isinstance(name, str) or not _HEADER_NAME.fullmatch(name):
            raise ValueError(f"'{name}' is not a header name (letters, digits and '-')")
        if not isinstance(text, str) or any(ch in text for ch in "\r\n\0"):
            raise ValueError(f"the value of '{name}' must be a single-line string")
        pairs.append((name, text))
    return tuple(pairs)
