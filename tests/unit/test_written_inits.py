"""The records made for every request have their ``__init__`` written out (so that it is
compiled with its module; the one dataclasses writes is Python). Written out, it could drift
from the fields: each one here sets every field, to what it was given or to the field's own
default."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
import yarl
from aiohttp import web

from gateway.core.headers import ForwardingContext
from gateway.core.models import Route, Upstream
from gateway.core.outcomes import AuthResult, Forward, Refuse, RequestFacts
from gateway.core.refusals import not_found
from gateway.core.target import CanonicalTarget, canonicalize
from gateway.core.urls import UpstreamTarget
from gateway.server.access import RequestRecord
from gateway.server.upstream import ProxyOutcome

TARGET = canonicalize("/orders/1?x=1")
ROUTE = Route(path="/orders", upstream="orders")
UPSTREAM = Upstream(name="orders", url=yarl.URL("http://127.0.0.1:9000"))

# (class, the arguments it needs, other values for each field its __init__ takes, the fields
# filled in after it is made)
CASES: list[tuple[type[Any], dict[str, Any], dict[str, Any], set[str]]] = [
    (
        RequestRecord,
        {"request_id": "r1"},
        {
            "path": "/orders/1", "route": "/orders", "upstream": "orders", "upstream_ns": 5,
            "request_bytes": 6, "response_bytes": 7, "upstream_failure": "timeout",
            "auth_result": "allowed", "auth_reason": "x", "user_id": "u", "client_id": "c",
        },
        {"websocket_close_code", "websocket_close_reason", "cors_origin_allowed", "trace_id",
         "span_id"},
    ),
    (
        RequestFacts,
        {"method": "GET", "raw_target": "/orders/1"},
        {
            "authorization": ("Bearer t",), "content_length": 3, "host": "h", "peer": "1.2.3.4",
            "headers": (("Host", "h"),), "version": (1, 0),
        },
        set(),
    ),
    (
        Forward,
        {"target": TARGET, "route": ROUTE, "upstream": UPSTREAM, "result": AuthResult.ALLOWED},
        {"would_refuse": not_found(), "limit_headers": {"RateLimit": "x"}},
        set(),
    ),
    (
        Refuse,
        {"refusal": not_found()},
        {"target": TARGET, "route": ROUTE, "upstream": UPSTREAM},
        set(),
    ),
    (
        ForwardingContext,
        {"peer": "1.2.3.4", "proto": "http", "host": None, "request_id": "r1", "claims": None},
        {"authorization": "Bearer t", "claims_to_headers": (("X-Tenant", "tenant"),)},
        set(),
    ),
    (CanonicalTarget, {"path": "/orders/1", "query": None}, {}, set()),
    (UpstreamTarget, {"origin": UPSTREAM.origin, "path_qs": "/orders/1?x=1"}, {}, set()),
    (
        ProxyOutcome,
        {"response": web.Response(), "upstream_ns": 1, "request_bytes": 2, "response_bytes": 3},
        {},
        set(),
    ),
]  # fmt: skip


@pytest.mark.parametrize(("cls", "needed", "others", "later"), CASES, ids=lambda c: c)
def test_every_field_not_given_has_its_default(
    cls: type[Any], needed: dict[str, Any], others: dict[str, Any], later: set[str]
) -> None:
    made = cls(**needed)
    for field in dataclasses.fields(cls):
        assert getattr(made, field.name) == needed.get(field.name, field.default), field.name


@pytest.mark.parametrize(("cls", "needed", "others", "later"), CASES, ids=lambda c: c)
def test_every_field_given_is_kept(
    cls: type[Any], needed: dict[str, Any], others: dict[str, Any], later: set[str]
) -> None:
    assert set(others) <= {field.name for field in dataclasses.fields(cls)} - later
    made = cls(**needed, **others)
    for name, value in {**needed, **others}.items():
        assert getattr(made, name) == value, name


def test_the_targets_stay_frozen() -> None:
    target = CanonicalTarget("/orders/1", "x=1")
    with pytest.raises(dataclasses.FrozenInstanceError):
        target.path = "/admin"  # type: ignore[misc]
    assert hash(target) == hash(CanonicalTarget("/orders/1", "x=1"))
    upstream_target = UpstreamTarget(UPSTREAM.origin, "/orders/1")
    with pytest.raises(dataclasses.FrozenInstanceError):
        upstream_target.path_qs = "/admin"  # type: ignore[misc]
