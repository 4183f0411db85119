"""Pure tests of `gateway.core.headers`: what the upstream and the client get to see."""

from __future__ import annotations

import os
import re

import pytest
from multidict import CIMultiDict, CIMultiDictProxy

from gateway.core.headers import (
    ForwardingContext,
    forwarding_context,
    request_id,
    response_headers,
    upstream_headers,
)
from gateway.core.models import IssuerConfig, Route
from gateway.core.tokens import Claims

ISSUER = IssuerConfig(
    name="local", issuer="https://auth.example.test", algorithms=frozenset({"RS256"})
)
CLAIMS = Claims(
    issuer=ISSUER,
    subject="alice",
    client_id="shop-frontend",
    scopes=frozenset({"orders:write", "orders:read"}),
    expires_at=1_700_000_300.0,
    payload={"sub": "alice"},
)
PEER = "10.0.0.9"
RID = "gw-request-1"
_GENERATED_ID = re.compile(r"[0-9a-f]{32}")


def context(
    *,
    claims: Claims | None = None,
    authorization: str | None = None,
    host: str | None = "api.example.test",
) -> ForwardingContext:
    """A forwarding context for a request from PEER over https."""
    return ForwardingContext(
        peer=PEER,
        proto="https",
        host=host,
        request_id=RID,
        claims=claims,
        authorization=authorization,
    )


def incoming(*pairs: tuple[str, str]) -> CIMultiDictProxy[str]:
    """Request or response headers as aiohttp hands them over."""
    return CIMultiDictProxy(CIMultiDict(pairs))


def gateway_added(*, claims: Claims | None = None) -> list[tuple[str, str]]:
    """The headers the gateway itself adds for `context()` (no client X-Forwarded-For)."""
    added = [
        ("X-Forwarded-For", PEER),
        ("X-Forwarded-Proto", "https"),
        ("X-Forwarded-Host", "api.example.test"),
        ("X-Request-ID", RID),
    ]
    if claims is not None:
        added += [
            ("X-Auth-Issuer", "https://auth.example.test"),
            ("X-Auth-Subject", "alice"),
            ("X-Auth-Scopes", "orders:read orders:write"),
            ("X-Auth-Client-Id", "shop-frontend"),
        ]
    return added


def test_end_to_end_headers_pass_in_order() -> None:
    """Ordinary end-to-end headers reach the upstream unchanged, repeated ones included."""
    headers = incoming(
        ("Accept", "application/json"),
        ("Cookie", "a=1"),
        ("User-Agent", "curl/8"),
        ("Cookie", "b=2"),
        ("Content-Type", "text/plain"),
    )
    assert list(upstream_headers(headers, context()).items()) == [
        ("Accept", "application/json"),
        ("Cookie", "a=1"),
        ("User-Agent", "curl/8"),
        ("Cookie", "b=2"),
        ("Content-Type", "text/plain"),
        *gateway_added(),
    ]


HOP_BY_HOP = [
    pytest.param("Connection", "close", id="connection"),
    pytest.param("Keep-Alive", "timeout=5", id="keep-alive"),
    pytest.param("TE", "trailers", id="te"),
    pytest.param("Trailer", "X-Checksum", id="trailer"),
    pytest.param("Transfer-Encoding", "chunked", id="transfer-encoding"),
    pytest.param("Upgrade", "websocket", id="upgrade"),
    pytest.param("Proxy-Authorization", "Basic dXNlcjpwYXNz", id="proxy-authorization"),
    pytest.param("Proxy-Authenticate", 'Basic realm="x"', id="proxy-authenticate"),
    pytest.param("Proxy-Connection", "keep-alive", id="proxy-connection"),
    pytest.param("HTTP2-Settings", "AAMAAABkAARAAAAA", id="http2-settings"),
    pytest.param("keep-alive", "timeout=5", id="lower-case"),
    pytest.param("TRANSFER-ENCODING", "chunked", id="upper-case"),
]


@pytest.mark.parametrize(("name", "value"), HOP_BY_HOP)
def test_hop_by_hop_removed_upstream(name: str, value: str) -> None:
    """A hop-by-hop request header never reaches the upstream."""
    headers = incoming(("Accept", "*/*"), (name, value))
    assert list(upstream_headers(headers, context()).items()) == [
        ("Accept", "*/*"),
        *gateway_added(),
    ]


CONNECTION_NAMED = [
    pytest.param([("Connection", "X-Foo, X-Bar")], id="two-names"),
    pytest.param([("Connection", "x-foo, X-BAR")], id="list-any-case"),
    pytest.param([("Connection", " X-Foo ,, X-Bar ,")], id="spaces-and-empty-items"),
    pytest.param([("Connection", "close"), ("Connection", "X-Foo, X-Bar")], id="two-headers"),
    pytest.param([("Connection", "keep-alive, X-Foo,X-Bar")], id="no-space"),
]


@pytest.mark.parametrize("connection", CONNECTION_NAMED)
def test_connection_named_headers_removed_upstream(connection: list[tuple[str, str]]) -> None:
    """Every header named in ``Connection`` is removed before forwarding."""
    headers = incoming(
        ("X-Foo", "1"), ("Accept", "*/*"), ("X-Bar", "2"), ("x-foo", "3"), *connection
    )
    assert list(upstream_headers(headers, context()).items()) == [
        ("Accept", "*/*"),
        *gateway_added(),
    ]


def test_connection_cannot_remove_gateway_headers() -> None:
    """Naming the gateway's own headers in ``Connection`` does not remove the values it sets."""
    headers = incoming(
        (
            "Connection",
            "X-Auth-Subject, X-Forwarded-For, X-Request-ID, X-Forwarded-Proto, X-Forwarded-Host,"
            " X-Auth-Issuer, X-Auth-Scopes, X-Auth-Client-Id, Authorization",
        ),
        ("Accept", "*/*"),
    )
    result = upstream_headers(headers, context(claims=CLAIMS, authorization="Bearer t0k"))
    assert sorted(result.items()) == sorted(
        [
            ("Accept", "*/*"),
            ("Authorization", "Bearer t0k"),
            *gateway_added(claims=CLAIMS),
        ]
    )


def test_connection_named_forwarded_for_is_not_kept() -> None:
    """A client X-Forwarded-For named in ``Connection`` is hop-by-hop: only the peer is sent."""
    headers = incoming(("X-Forwarded-For", "203.0.113.7"), ("Connection", "X-Forwarded-For"))
    assert upstream_headers(headers, context()).getall("X-Forwarded-For") == [PEER]


CLIENT_IDENTITY = [
    pytest.param([("X-Auth-Subject", "admin")], id="subject"),
    pytest.param([("x-auth-subject", "admin")], id="lower-case"),
    pytest.param([("X-AUTH-ISSUER", "https://evil")], id="upper-case"),
    pytest.param([("X-Auth-Scopes", "admin"), ("X-Auth-Scopes", "root")], id="repeated"),
    pytest.param([("X-Auth-Client-Id", "evil")], id="client-id"),
    pytest.param([("X-Auth-Roles", "admin")], id="unknown-x-auth"),
    pytest.param([("X-Auth-", "x")], id="bare-prefix"),
    pytest.param(
        [("X-Auth-Subject", "a"), ("X-Auth-Subject", "b"), ("X-Auth-Tenant", "t")],
        id="several",
    ),
]


@pytest.mark.parametrize("sent", CLIENT_IDENTITY)
def test_client_identity_headers_removed_without_claims(sent: list[tuple[str, str]]) -> None:
    """On a public route every client ``X-Auth-*`` header is removed and none is added."""
    headers = incoming(("Accept", "*/*"), *sent)
    assert list(upstream_headers(headers, context()).items()) == [
        ("Accept", "*/*"),
        *gateway_added(),
    ]


@pytest.mark.parametrize("sent", CLIENT_IDENTITY)
def test_client_identity_headers_replaced_with_claims(sent: list[tuple[str, str]]) -> None:
    """On a protected route only the gateway's ``X-Auth-*`` values, from the claims, remain."""
    headers = incoming(("Accept", "*/*"), *sent)
    assert list(upstream_headers(headers, context(claims=CLAIMS)).items()) == [
        ("Accept", "*/*"),
        *gateway_added(claims=CLAIMS),
    ]


IDENTITY = [
    pytest.param(
        CLAIMS,
        {
            "X-Auth-Issuer": "https://auth.example.test",
            "X-Auth-Subject": "alice",
            "X-Auth-Scopes": "orders:read orders:write",
            "X-Auth-Client-Id": "shop-frontend",
        },
        id="all",
    ),
    pytest.param(
        Claims(
            issuer=ISSUER,
            subject=None,
            client_id="svc",
            scopes=frozenset({"b", "a", "c"}),
            expires_at=0.0,
            payload={},
        ),
        {
            "X-Auth-Issuer": "https://auth.example.test",
            "X-Auth-Scopes": "a b c",
            "X-Auth-Client-Id": "svc",
        },
        id="no-subject",
    ),
    pytest.param(
        Claims(
            issuer=ISSUER,
            subject="bob",
            client_id=None,
            scopes=frozenset(),
            expires_at=0.0,
            payload={},
        ),
        {
            "X-Auth-Issuer": "https://auth.example.test",
            "X-Auth-Subject": "bob",
            "X-Auth-Scopes": "",
        },
        id="no-client-no-scopes",
    ),
]


@pytest.mark.parametrize(("claims", "expected"), IDENTITY)
def test_identity_headers_from_claims(claims: Claims, expected: dict[str, str]) -> None:
    """Identity headers carry the issuer, subject, sorted scopes and client id of the claims."""
    result = upstream_headers(incoming(), context(claims=claims))
    identity = {name: value for name, value in result.items() if name.startswith("X-Auth-")}
    assert identity == expected


FORWARDED_FOR = [
    pytest.param([], PEER, id="none"),
    pytest.param([("X-Forwarded-For", "203.0.113.7")], f"203.0.113.7, {PEER}", id="one"),
    pytest.param(
        [("X-Forwarded-For", "203.0.113.7, 198.51.100.2")],
        f"203.0.113.7, 198.51.100.2, {PEER}",
        id="list",
    ),
    pytest.param(
        [("X-Forwarded-For", "203.0.113.7"), ("x-forwarded-for", " 198.51.100.2 ")],
        f"203.0.113.7, 198.51.100.2, {PEER}",
        id="two-headers",
    ),
    pytest.param([("X-Forwarded-For", "  ")], PEER, id="blank"),
]


@pytest.mark.parametrize(("sent", "expected"), FORWARDED_FOR)
def test_forwarded_for_appended(sent: list[tuple[str, str]], expected: str) -> None:
    """X-Forwarded-For keeps the client's values and appends the peer, as one header."""
    result = upstream_headers(incoming(*sent), context())
    assert result.getall("X-Forwarded-For") == [expected]


def test_forwarded_host_and_proto_replaced() -> None:
    """The client's X-Forwarded-Host and X-Forwarded-Proto are replaced by the gateway's."""
    headers = incoming(
        ("X-Forwarded-Host", "evil.example"),
        ("X-Forwarded-Proto", "http"),
        ("X-Forwarded-Proto", "ftp"),
        ("X-Forwarded-Port", "1"),
    )
    result = upstream_headers(headers, context())
    assert result.getall("X-Forwarded-Host") == ["api.example.test"]
    assert result.getall("X-Forwarded-Proto") == ["https"]
    assert "X-Forwarded-Port" not in result


def test_forwarded_host_absent_without_host() -> None:
    """Without a known host the client's X-Forwarded-Host is removed and none is added."""
    result = upstream_headers(incoming(("X-Forwarded-Host", "evil.example")), context(host=None))
    assert "X-Forwarded-Host" not in result


REMOVED = [
    pytest.param("Forwarded", "for=1.2.3.4;host=evil", id="forwarded"),
    pytest.param("X-Real-IP", "127.0.0.1", id="x-real-ip"),
    pytest.param("X-HTTP-Method-Override", "DELETE", id="x-http-method-override"),
    pytest.param("X-HTTP-Method", "DELETE", id="x-http-method"),
    pytest.param("X-Method-Override", "DELETE", id="x-method-override"),
    pytest.param("X-Original-URL", "/admin", id="x-original-url"),
    pytest.param("X-Rewrite-URL", "/admin", id="x-rewrite-url"),
    pytest.param("X-Original-URI", "/admin", id="x-original-uri"),
    pytest.param("X-Forwarded-Uri", "/admin", id="x-forwarded-uri"),
    pytest.param("X-Forwarded-Prefix", "/admin", id="x-forwarded-prefix"),
    pytest.param("X-Envoy-Original-Path", "/admin", id="x-envoy-original-path"),
    pytest.param("x-http-method-override", "PUT", id="lower-case"),
    pytest.param("Host", "evil.example", id="host"),
    pytest.param("Content-Length", "5", id="content-length"),
    pytest.param("Expect", "100-continue", id="expect"),
]


@pytest.mark.parametrize(("name", "value"), REMOVED)
def test_override_and_forwarding_headers_removed(name: str, value: str) -> None:
    """Headers that would tell the upstream something the gateway never checked are removed."""
    headers = incoming((name, value), ("Accept", "*/*"))
    assert list(upstream_headers(headers, context()).items()) == [
        ("Accept", "*/*"),
        *gateway_added(),
    ]


AUTHORIZATION = [
    pytest.param([("Authorization", "Bearer abc")], None, [], id="dropped"),
    pytest.param([("Authorization", "Bearer abc")], "Bearer abc", ["Bearer abc"], id="forwarded"),
    pytest.param(
        [("Authorization", "Bearer a"), ("Authorization", "Bearer b")],
        "Bearer a",
        ["Bearer a"],
        id="forwarded-once",
    ),
    pytest.param([], None, [], id="none-sent"),
]


@pytest.mark.parametrize(("sent", "authorization", "expected"), AUTHORIZATION)
def test_authorization_only_when_context_carries_it(
    sent: list[tuple[str, str]], authorization: str | None, expected: list[str]
) -> None:
    """Authorization is dropped unless the context carries the value to forward."""
    result = upstream_headers(incoming(*sent), context(authorization=authorization))
    assert result.getall("Authorization", []) == expected


def test_request_id_from_context() -> None:
    """The upstream gets the context's request id, never the client's header."""
    result = upstream_headers(
        incoming(("X-Request-ID", "client-1"), ("X-Request-ID", "client-2")), context()
    )
    assert result.getall("X-Request-ID") == [RID]


KEPT_IDS = [
    pytest.param("a", id="one-char"),
    pytest.param("req-42", id="dash"),
    pytest.param("A.b_C-9", id="all-classes"),
    pytest.param("x" * 128, id="128-chars"),
    pytest.param("0123456789abcdef0123456789abcdef", id="uuid-hex"),
]


@pytest.mark.parametrize("value", KEPT_IDS)
def test_request_id_kept_when_well_formed(value: str) -> None:
    """A single well-formed client request id (1-128 of A-Za-z0-9._-) is kept."""
    assert request_id([value]) == value


REPLACED_IDS = [
    pytest.param([], id="none"),
    pytest.param([""], id="empty"),
    pytest.param(["x" * 129], id="129-chars"),
    pytest.param(["a b"], id="space"),
    pytest.param(["abc\n"], id="trailing-newline"),
    pytest.param(["a/b"], id="slash"),
    pytest.param(["a:b"], id="colon"),
    pytest.param(["é"], id="non-ascii"),
    pytest.param(["٣"], id="non-ascii-digit"),
    pytest.param(["abc", "abc"], id="duplicate-same"),
    pytest.param(["abc", "def"], id="duplicate-different"),
]


@pytest.mark.parametrize("values", REPLACED_IDS)
def test_request_id_generated_otherwise(values: list[str]) -> None:
    """A missing, malformed, too long or repeated client request id is replaced by a fresh one."""
    first = request_id(values)
    second = request_id(values)
    assert _GENERATED_ID.fullmatch(first)
    assert _GENERATED_ID.fullmatch(second)
    assert first != second
    assert first not in values


RESPONSE = [
    pytest.param([("Connection", "close")], id="connection"),
    pytest.param([("Keep-Alive", "timeout=5")], id="keep-alive"),
    pytest.param([("Transfer-Encoding", "chunked")], id="transfer-encoding"),
    pytest.param([("Trailer", "X-Sum")], id="trailer"),
    pytest.param([("Upgrade", "h2c")], id="upgrade"),
    pytest.param([("TE", "trailers")], id="te"),
    pytest.param([("Proxy-Authenticate", 'Basic realm="x"')], id="proxy-authenticate"),
    pytest.param([("Proxy-Authorization", "Basic eA==")], id="proxy-authorization"),
    pytest.param([("Proxy-Connection", "close")], id="proxy-connection"),
    pytest.param([("HTTP2-Settings", "AAA")], id="http2-settings"),
    pytest.param([("Connection", "X-Internal"), ("X-Internal", "secret")], id="named"),
    pytest.param(
        [("x-internal", "1"), ("Connection", "close, x-INTERNAL, X-Debug"), ("X-Debug", "2")],
        id="named-list",
    ),
    pytest.param(
        [("Connection", "X-Internal"), ("connection", "X-Debug"), ("X-Debug", "2")],
        id="named-two-headers",
    ),
]


@pytest.mark.parametrize("hop", RESPONSE)
def test_response_headers_strip_hop_by_hop(hop: list[tuple[str, str]]) -> None:
    """The client never sees hop-by-hop or Connection-named response headers; the rest pass."""
    raw = [
        (name.encode("latin-1"), value.encode())
        for name, value in [
            ("Content-Type", "application/json"),
            *hop,
            ("Set-Cookie", "a=1"),
            ("Content-Length", "2"),
            ("Set-Cookie", "b=2"),
        ]
    ]
    assert list(response_headers(raw).items()) == [
        ("Content-Type", "application/json"),
        ("Set-Cookie", "a=1"),
        ("Content-Length", "2"),
        ("Set-Cookie", "b=2"),
    ]


@pytest.mark.parametrize(
    ("sent", "forwarded"),
    [
        pytest.param("base64url.bearer.authorization.k8s.io.dG9rZW4", None, id="alone"),
        pytest.param("chat, base64url.bearer.authorization.k8s.io.dG9rZW4", "chat", id="after"),
        pytest.param("BASE64URL.Bearer.Authorization.K8S.IO.dG9rZW4 ,v2", "v2", id="any-case"),
        pytest.param(" base64url.bearer.authorization.k8s.io.x , chat ", "chat", id="spaces"),
        pytest.param("chat, v2", "chat, v2", id="no-bearer-entry"),
    ],
)
def test_bearer_subprotocol_entries_never_forwarded(sent: str, forwarded: str | None) -> None:
    """A plain request (no tunnel) keeps its other subprotocol entries; a token offered as a
    bearer entry never reaches the upstream, on any route."""
    incoming = CIMultiDictProxy(CIMultiDict([("Sec-WebSocket-Protocol", sent)]))
    out = upstream_headers(incoming, context())
    assert out.get("Sec-WebSocket-Protocol") == forwarded
    assert "dG9rZW4" not in str(out)


@pytest.mark.parametrize(
    ("forward_token", "sent", "expected"),
    [
        (False, ("Bearer a.b.c",), None),
        (True, ("Bearer a.b.c",), "Bearer a.b.c"),
        (True, (), None),
        (True, ("Bearer first", "Bearer second"), "Bearer first"),
    ],
)
def test_forwarding_context_follows_the_route(
    forward_token: bool, sent: tuple[str, ...], expected: str | None
) -> None:
    """The route decides whether the client's Authorization goes on and which claims become
    headers; peer, proto, host and request id are passed through as given."""
    route = Route(
        path="/orders", upstream="orders", forward_token=forward_token,
        claims_to_headers=(("X-Auth-Tenant", "tenant_id"),),
    )  # fmt: skip
    built = forwarding_context(
        route, CLAIMS, peer=PEER, proto="https", host="h", request_id=RID, authorization=sent
    )
    assert built == ForwardingContext(
        peer=PEER, proto="https", host="h", request_id=RID, claims=CLAIMS,
        authorization=expected, claims_to_headers=(("X-Auth-Tenant", "tenant_id"),),
    )  # fmt: skip


def test_response_header_bytes_that_are_not_utf8_are_kept_byte_for_byte() -> None:
    """Values are decoded with surrogateescape, so what the client gets is what was sent."""
    raw = [(b"X-Name", b"caf\xe9"), (b"X-Utf8", "café".encode()), (b"ETag", b'W/"\x80"')]
    relayed = response_headers(raw)
    assert [value.encode("utf-8", "surrogateescape") for value in relayed.values()] == [
        value for _, value in raw
    ]
    assert relayed["X-Utf8"] == "café"


def test_connection_tokens_are_matched_without_case_or_spaces() -> None:
    raw = [(b"connection", b" X-Debug ,KEEP-ALIVE,, "), (b"x-debug", b"1"), (b"X-Kept", b"2"),
           (b"Keep-Alive", b"timeout=5")]  # fmt: skip
    assert list(response_headers(raw).items()) == [("X-Kept", "2")]


def test_generated_request_ids_never_repeat_across_batches() -> None:
    """Ids are made 256 at a time; a thousand in a row are all distinct and well-formed."""
    made = [request_id([]) for _ in range(1000)]
    assert len(set(made)) == len(made)
    assert all(_GENERATED_ID.fullmatch(made_id) for made_id in made)


def test_a_forked_worker_makes_ids_its_parent_does_not() -> None:
    """The unused ids of a batch stay with the parent: a child made by fork starts a fresh one
    (else both would hand out the same ids)."""
    request_id([])  # a batch is made, and most of it is unused
    reader, writer = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - the child reports through the pipe
        os.write(writer, "".join(request_id([]) for _ in range(10)).encode())
        os._exit(0)
    os.close(writer)
    with os.fdopen(reader, "rb") as pipe:
        data = pipe.read().decode()
    os.waitpid(child, 0)
    theirs = {data[start : start + 32] for start in range(0, len(data), 32)}
    ours = {request_id([]) for _ in range(300)}
    assert len(theirs) == 10
    assert not theirs & ours
