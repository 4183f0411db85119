"""Where a forwarded request goes (`upstream_url`): the request line's target, the Host field,
the pool's key and the URL `gateway explain` and traces show, for every shape of upstream URL
the config takes. The origin is read once per upstream; only the path and query are per request.

An IPv6 literal upstream (``http://[::1]:9000``) is among them: the gateway used to rebuild a
`yarl.URL` per request from the bare host, which yarl refuses for an IPv6 address, so every
request to such an upstream was answered 500."""

from __future__ import annotations

import pytest
import yarl

from gateway.core.models import Route, Upstream
from gateway.core.target import canonicalize
from gateway.core.urls import upstream_url

# upstream URL, strip_prefix, request target -> request-line target, Host, pool key, shown URL
CASES = [
    ("http://127.0.0.1:8080", False, "/orders/1?x=%20y&z",
     "/orders/1?x=%20y&z", "127.0.0.1:8080", ("http", "127.0.0.1", 8080),
     "http://127.0.0.1:8080/orders/1"),
    ("http://127.0.0.1:80/", False, "/orders/", "/orders/", "127.0.0.1",
     ("http", "127.0.0.1", 80), "http://127.0.0.1/orders/"),
    ("https://api.internal", True, "/orders/1", "/1", "api.internal",
     ("https", "api.internal", 443), "https://api.internal/1"),
    ("https://api.internal:443/v2/", True, "/orders", "/v2/", "api.internal",
     ("https", "api.internal", 443), "https://api.internal/v2/"),
    ("http://[::1]:9000/base", False, "/orders?q", "/base/orders?q", "[::1]:9000",
     ("http", "::1", 9000), "http://[::1]:9000/base/orders"),
    ("http://[2001:db8::7]/", True, "/orders/7/", "/7/", "[2001:db8::7]",
     ("http", "2001:db8::7", 80), "http://[2001:db8::7]/7/"),
    ("http://Orders.Internal:81/a%20b/", False, "/orders/%C3%A9", "/a%20b/orders/%C3%A9",
     "orders.internal:81", ("http", "orders.internal", 81),
     "http://orders.internal:81/a%20b/orders/%C3%A9"),
    ("https://xn--bcher-kva.example:8443/", False, "/orders?", "/orders",
     "xn--bcher-kva.example:8443", ("https", "xn--bcher-kva.example", 8443),
     "https://xn--bcher-kva.example:8443/orders"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("base", "strip", "raw", "line_target", "host", "pool_key", "shown"), CASES
)
def test_request_line_host_pool_key_and_shown_url(
    base: str, strip: bool, raw: str, line_target: str, host: str,
    pool_key: tuple[str, str, int], shown: str,
) -> None:  # fmt: skip
    upstream = Upstream(name="u", url=yarl.URL(base))
    route = Route(path="/orders", upstream="u", methods=None, strip_prefix=strip)
    forwarded = upstream_url(upstream, route, canonicalize(raw))
    assert forwarded.path_qs == line_target
    origin = forwarded.origin
    assert origin.authority == host
    assert (origin.scheme, origin.host, origin.port) == pool_key
    assert forwarded.without_query == shown
    query = line_target.partition("?")[2]
    assert str(forwarded) == (f"{shown}?{query}" if query else shown)
