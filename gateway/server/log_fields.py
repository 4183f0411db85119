"""Every field the gateway's JSON log lines can carry, with its Elasticsearch type.

The lines follow the Elastic Common Schema `ECS_VERSION`: a field ECS defines keeps its ECS name
and type (`ECS_FIELDS`); everything of the gateway's own sits under ``gateway.`` (
`GATEWAY_FIELDS`), so no key of ours can clash with an ECS object now or in a later ECS version.
Keys are flat dotted strings (``"gateway.auth.result"``), which Elasticsearch, Fluent Bit and
Vector read as the nested object. The catalogue is what the tests hold every emitted line to
(name, and a value of the declared type) and what the README's field list must match.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Final

__all__ = [
    "ACCESS_FIELDS",
    "ECS_FIELDS",
    "ECS_VERSION",
    "FIELDS",
    "GATEWAY_FIELDS",
    "NAMESPACE",
    "matches_type",
]

ECS_VERSION: Final = "8.11.0"
NAMESPACE: Final = "gateway"

ECS_FIELDS: Final = MappingProxyType({
    "@timestamp": "date",
    "ecs.version": "keyword",
    "log.level": "keyword",
    "log.logger": "keyword",
    "message": "match_only_text",
    "event.action": "keyword",
    "event.duration": "long",
    "process.pid": "long",
    "client.ip": "ip",
    "http.request.id": "keyword",
    "http.request.method": "keyword",
    "http.request.body.bytes": "long",
    "http.response.status_code": "long",
    "http.response.body.bytes": "long",
    "url.path": "wildcard",
    "user.id": "keyword",
    "user_agent.original": "keyword",
    "error.type": "keyword",
    "error.message": "match_only_text",
    "error.stack_trace": "wildcard",
    # Written by the tracing support (W3C trace context of the request).
    "trace.id": "keyword",
    "span.id": "keyword",
})  # fmt: skip

GATEWAY_FIELDS: Final = MappingProxyType({
    # access
    "gateway.route": "keyword",
    "gateway.upstream.name": "keyword",
    "gateway.upstream.duration": "long",
    "gateway.client.id": "keyword",
    "gateway.auth.result": "keyword",
    "gateway.auth.reason": "keyword",
    # process and listeners
    "gateway.event_loop": "keyword",
    "gateway.compiled": "boolean",
    "gateway.listen.addresses": "keyword",
    "gateway.listen.tls": "boolean",
    "gateway.redirect.addresses": "keyword",
    "gateway.admin.addresses": "keyword",
    "gateway.tls.cert": "keyword",
    "gateway.workers": "long",
    "gateway.worker.pid": "long",
    "gateway.worker.pids": "long",
    "gateway.worker.exit_code": "long",
    "gateway.worker.exit_codes": "long",
    "gateway.worker.grace_s": "float",
    "gateway.shutdown.drain_timeout_s": "float",
    "gateway.shutdown.in_flight": "long",
    "gateway.shutdown.requests_cut": "long",
    "gateway.shutdown.cleanup_timeout_s": "float",
    # configuration
    "gateway.config.version": "keyword",
    "gateway.config.previous_version": "keyword",
    "gateway.config.routes": "long",
    "gateway.config.issuers": "keyword",
    "gateway.config.problems": "keyword",
    "gateway.config.restart_fields": "keyword",
    "gateway.reload.result": "keyword",
    "gateway.reload.trigger": "keyword",
    "gateway.reload.failures": "long",
    "gateway.reload.retry_in_s": "float",
    # remote key sets
    "gateway.jwks.issuer": "keyword",
    "gateway.jwks.kid": "keyword",
    "gateway.jwks.kids": "keyword",
    "gateway.jwks.key_count": "long",
    "gateway.jwks.skipped": "long",
    "gateway.jwks.ttl_s": "float",
    "gateway.jwks.failures": "long",
    "gateway.jwks.keeping_cached_keys": "boolean",
    "gateway.jwks.next_retry_s": "float",
    # rate-limit backend
    "gateway.rate_limit.backend": "keyword",
    "gateway.rate_limit.backend_state": "keyword",
    "gateway.rate_limit.retry_in_s": "float",
    # a stable code for why (a skipped key, a backend error); auth reasons are gateway.auth.reason
    "gateway.reason": "keyword",
    # a request with Origin on a route with a CORS policy (its access line)
    "gateway.cors.origin_allowed": "boolean",
    # WebSocket tunnels (their access line)
    "gateway.websocket.close_code": "long",
    "gateway.websocket.close_reason": "keyword",
    # tracing export
    "gateway.tracing.endpoint": "keyword",
    "gateway.tracing.spans": "long",
    "gateway.tracing.timeout_s": "float",
})  # fmt: skip

FIELDS: Final = MappingProxyType({**ECS_FIELDS, **GATEWAY_FIELDS})

# The access line's fields, in the order the line has them (trace.id/span.id: null untraced;
# a WebSocket tunnel's line adds gateway.websocket.close_code and .close_reason, a request with
# Origin on a CORS route gateway.cors.origin_allowed).
ACCESS_FIELDS: Final = (
    "@timestamp", "log.level", "event.action", "ecs.version", "process.pid", "http.request.id",
    "client.ip", "http.request.method", "url.path", "gateway.route",
    "http.response.status_code", "event.duration", "gateway.upstream.name",
    "gateway.upstream.duration", "http.request.body.bytes", "http.response.body.bytes",
    "user_agent.original", "user.id", "gateway.client.id", "gateway.auth.result",
    "gateway.auth.reason", "trace.id", "span.id",
)  # fmt: skip

_STRING_TYPES = frozenset({"date", "keyword", "ip", "wildcard", "match_only_text"})


def matches_type(value: object, field_type: str) -> bool:
    """Whether a JSON value indexes as ``field_type`` (null always does; an array does when each
    of its items does, as Elasticsearch reads arrays)."""
    if value is None:
        return True
    if isinstance(value, list):
        return all(matches_type(item, field_type) for item in value)
    if field_type in _STRING_TYPES:
        return isinstance(value, str)
    if field_type == "boolean":
        return isinstance(value, bool)
    if field_type == "long":
        return isinstance(value, int) and not isinstance(value, bool)
    if field_type == "float":
        return isinstance(value, int | float) and not isinstance(value, bool)
    raise ValueError(f"unknown field type {field_type!r}")
