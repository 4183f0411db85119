"""Converters for the structured option blocks of the config files: rate limits and the
failed-auth throttle, the client address behind proxies, claims to headers, protected-resource
metadata, WebSocket, CORS and tracing. Each returns the typed value or raises ``ValueError`` with
a message for the operator; the scalar converters they build on are in `gateway.config.convert`.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from typing import Any

import yarl

from gateway.config.convert import (
    HEADER_NAME,
    boolean,
    claim_name,
    did_you_mean,
    header_names,
    http_url,
    methods,
    positive_int,
    size,
    string,
    string_list,
)
from gateway.config.models import LimitBackend
from gateway.config.units import parse_duration
from gateway.core.claim_headers import ClaimHeaders, check_header_name
from gateway.core.clientip import ClientIpHeader, Network, parse_network
from gateway.core.cors import CorsError, CorsPolicy
from gateway.core.models import WebSocketRoute
from gateway.core.ratelimit import AuthFailureSettings, LimitKey, OnBackendError, RateLimit
from gateway.core.resource_metadata import check_resource

_RATE = re.compile(r"([0-9]+)\s*/\s*([0-9]*)\s*(ms|s|sec|m|min|h|hour)")
_RATE_UNITS = {"ms": "ms", "s": "s", "sec": "s", "m": "m", "min": "m", "h": "h", "hour": "h"}
_RATE_LIMIT_KEYS = {"rate", "burst", "key", "on_backend_error", "name"}
_POLICY_NAME = re.compile(r"[A-Za-z0-9_.:-]{1,64}")


def _known_keys(value: dict[str, Any], allowed: Collection[str], block: str) -> None:
    """Refuse the first key of ``block`` not in ``allowed`` (sorted), with a did-you-mean."""
    unknown = sorted(set(value) - set(allowed))
    if unknown:
        hint = did_you_mean(unknown[0], allowed)
        raise ValueError(f"unknown key '{unknown[0]}' in '{block}'{hint}")


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
    _known_keys(value, _RATE_LIMIT_KEYS, "rate_limit")
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
    _known_keys(value, _AUTH_FAILURE_KEYS, "auth_failures")
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
    _known_keys(value, _WEBSOCKET_KEYS, "websocket")
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
    _known_keys(value, _CORS_FIELDS, "cors")
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
    if url.raw_query_string or "?" in str(value):
        # The endpoint is logged (tracing_export_failed) and quoted by OpenTelemetry's and
        # urllib3's own lines: a key in its query would be too. Keys go in ``headers``.
        raise ValueError(
            "the endpoint must not carry a query: put a collector's key in 'headers' "
            "(e.g. {x-api-key: ${KEY}})"
        )
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
        if not isinstance(name, str) or not HEADER_NAME.fullmatch(name):
            raise ValueError(f"'{name}' is not a header name (letters, digits and '-')")
        if not isinstance(text, str) or any(ch in text for ch in "\r\n\0"):
            raise ValueError(f"the value of '{name}' must be a single-line string")
        pairs.append((name, text))
    return tuple(pairs)
