"""What the upstream receives, and what the access log says, through a real gateway.

The route table has a public catch-all ``/`` next to a protected ``/admin``: any path the gateway
authorised in one form and forwarded in another would show up here as a request to ``/admin``
that skipped its scope check. Requests go over a raw socket wherever a client library would
normalise the target or drop a header.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import os
import re
import socket
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field

import pytest
from multidict import CIMultiDictProxy

from tests.conftest import GatewayFactory, LogCapture
from tests.raw import (
    Answer,
    Client,
    RawRequest,
    close,
    http_request,
    open_connection,
    read_request,
    send_raw,
    socket_upstream,
)
from tests.support import (
    ISSUER,
    ORDERS_HEALTH,
    ORDERS_READ_WRITE,
    PUBLIC_CATCH_ALL,
    RecordingUpstream,
    TokenFactory,
    identity_headers,
    public_route,
    route_table,
    upstream_line,
)

# The catch-all table, plus a prefix-stripping route, a token-forwarding route and ``/raw`` on
# a socket-level upstream that shows the bytes the gateway sends.
EXTRA_ROUTES = """\
  - path: /strip
    upstream: orders
    auth: none
    strip_prefix: true
  - path: /relay
    upstream: orders
    scopes: [orders:read]
    forward_token: true
"""


def routes(raw_url: str) -> str:
    """The route table, with the raw upstream at ``raw_url``."""
    return route_table(
        PUBLIC_CATCH_ALL,
        ORDERS_READ_WRITE,
        ORDERS_HEALTH,
        EXTRA_ROUTES,
        public_route("/raw", "raw"),
        upstreams=upstream_line("raw", raw_url),
    )


HOST = "api.example.test"
USER_AGENT = "gateway-tests/1.0"


# -- an upstream that sees the bytes the gateway sends -------------------------------------------


@dataclass
class RawUpstream:
    """A socket-level upstream: records each request's framing and sends ``response`` back."""

    response: bytes = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
    requests: list[RawRequest] = field(default_factory=list)

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Read one request, record it, answer, and close."""
        try:
            self.requests.append(await read_request(reader))
            writer.write(self.response)
            await writer.drain()
        finally:
            await close(writer)


@pytest.fixture
async def raw_upstream() -> AsyncIterator[tuple[RawUpstream, str]]:
    """A running raw upstream and its URL."""
    upstream = RawUpstream()
    async with socket_upstream(upstream.serve) as url:
        yield upstream, url


@pytest.fixture
async def client(gateway: GatewayFactory, raw_upstream: tuple[RawUpstream, str]) -> Client:
    """A gateway with a public catch-all, a protected ``/admin`` and the sample ``/orders``."""
    return await gateway(routes=routes(raw_upstream[1]))


@pytest.fixture
def raw(raw_upstream: tuple[RawUpstream, str]) -> RawUpstream:
    """The raw upstream's recorder."""
    return raw_upstream[0]


def _auth(token: str) -> list[tuple[str, str]]:
    return [("Authorization", f"Bearer {token}")]


async def _get(
    client: Client, target: str, headers: Sequence[tuple[str, str]] = (), method: str = "GET"
) -> Answer:
    return await send_raw(client, http_request(method, target, headers, host=HOST))


# -- paths --------------------------------------------------------------------------------------

TRAVERSALS = [
    pytest.param("/orders/../admin", id="dot-dot-out-of-orders"),
    pytest.param("/public/%2e%2e/admin", id="encoded-dot-dot"),
    pytest.param("/public/%2E%2E/admin", id="encoded-dot-dot-upper"),
    pytest.param("/public/.%2e/admin", id="half-encoded-dot-dot"),
    pytest.param("/orders/7/../../admin", id="two-levels"),
    pytest.param("//admin", id="double-slash"),
    pytest.param("/./admin", id="dot-segment"),
    pytest.param("/%61dmin", id="encoded-unreserved"),
    pytest.param("/public/..//./admin", id="mixed"),
]


@pytest.mark.parametrize("target", TRAVERSALS)
async def test_traversal_needs_the_resolved_routes_token(
    client: Client, recorder: RecordingUpstream, target: str
) -> None:
    """A path that resolves to ``/admin`` is protected like ``/admin``: no token is 401."""
    answer = await _get(client, target)
    assert answer.status == 401
    assert recorder.requests == []


@pytest.mark.parametrize("target", TRAVERSALS)
async def test_traversal_is_checked_against_the_resolved_routes_scopes(
    client: Client, tokens: TokenFactory, recorder: RecordingUpstream, target: str
) -> None:
    """A path that resolves to ``/admin`` needs ``admin``: an ``orders:read`` token is 403."""
    answer = await _get(client, target, _auth(tokens.good()))
    assert answer.status == 403
    assert answer.json()["error"] == "insufficient_scope"
    assert recorder.requests == []


@pytest.mark.parametrize("target", TRAVERSALS)
async def test_traversal_is_forwarded_as_the_authorised_path(
    client: Client, tokens: TokenFactory, recorder: RecordingUpstream, target: str
) -> None:
    """With the ``admin`` scope the request is forwarded as exactly ``/admin``."""
    answer = await _get(client, target, _auth(tokens.good(scope="admin")))
    assert answer.status == 200
    assert [r.raw_path for r in recorder.requests] == ["/admin"]


@pytest.mark.parametrize(
    "target",
    [
        pytest.param("/admin;x", id="path-parameter"),
        pytest.param("/public;x/../admin", id="path-parameter-then-dot-dot"),
        pytest.param("/public%2F..%2Fadmin", id="encoded-slashes"),
        pytest.param("/public/..%2Fadmin", id="encoded-slash"),
        pytest.param("/public\\..\\admin", id="backslashes"),
        pytest.param("/public%5C..%5Cadmin", id="encoded-backslashes"),
        pytest.param("http://api.example.test/admin", id="absolute-form"),
        pytest.param("/admin#x", id="fragment"),
        pytest.param("/%2e%2e/admin", id="escapes-root"),
    ],
)
async def test_ambiguous_path_is_400_even_with_a_public_catch_all(
    client: Client, tokens: TokenFactory, recorder: RecordingUpstream, target: str
) -> None:
    """A target the next server could read two ways is 400, never sent to the public route."""
    answer = await _get(client, target, _auth(tokens.good(scope="admin")))
    assert answer.status == 400
    assert answer.json()["error"] == "bad_request"
    assert recorder.requests == []


@pytest.mark.parametrize(
    ("target", "forwarded"),
    [
        pytest.param("/a//b", "/a/b", id="duplicate-slash"),
        pytest.param("/a/./b/", "/a/b/", id="dot-segment-trailing-slash"),
        pytest.param("/a/b/../c", "/a/c", id="dot-dot"),
        pytest.param("/a/%7Euser", "/a/~user", id="unreserved-decoded"),
        pytest.param("/a/caf%c3%a9", "/a/caf%C3%A9", id="escape-hex-upper-cased"),
        pytest.param("/a%20b", "/a%20b", id="space-stays-encoded"),
        pytest.param("/orders/health/../health", "/orders/health", id="public-sample-route"),
        pytest.param("/a?b=%2F&a=1&a=2", "/a?b=%2F&a=1&a=2", id="query-verbatim"),
        pytest.param(
            "/a/./b?q=a+b%20c&empty=&flag&x=%7e&y=../z",
            "/a/b?q=a+b%20c&empty=&flag&x=%7e&y=../z",
            id="query-not-normalised",
        ),
        pytest.param("/a?x=1?y=%zz", "/a?x=1?y=%zz", id="query-odd-but-legal"),
        pytest.param("/stripX/y", "/stripX/y", id="strip-prefix-whole-segments-only"),
    ],
)
async def test_forwarded_path_is_the_canonical_path(
    client: Client,
    recorder: RecordingUpstream,
    log_capture: LogCapture,
    target: str,
    forwarded: str,
) -> None:
    """The upstream gets the normalised path the gateway matched and logged, and the query as
    sent."""
    answer = await _get(client, target)
    assert answer.status == 200
    assert [r.raw_path for r in recorder.requests] == [forwarded]
    (line,) = log_capture.events("access")
    assert line["url.path"] == forwarded.partition("?")[0]


@pytest.mark.parametrize(
    ("target", "forwarded", "logged"),
    [
        pytest.param("/strip/x/y?z=1", "/x/y?z=1", "/strip/x/y", id="remainder"),
        pytest.param("/strip", "/", "/strip", id="whole"),
        pytest.param("/strip/", "/", "/strip/", id="whole-with-slash"),
        pytest.param("//strip//x/./y", "/x/y", "/strip/x/y", id="after-normalising"),
        pytest.param("/strip/a/../b", "/b", "/strip/b", id="dot-dot-inside"),
    ],
)
async def test_strip_prefix_forwards_the_remainder(
    client: Client,
    recorder: RecordingUpstream,
    log_capture: LogCapture,
    target: str,
    forwarded: str,
    logged: str,
) -> None:
    """A ``strip_prefix`` route forwards what follows its prefix and logs the matched path."""
    answer = await _get(client, target)
    assert answer.status == 200
    assert [r.raw_path for r in recorder.requests] == [forwarded]
    (line,) = log_capture.events("access")
    assert line["url.path"] == logged
    assert line["gateway.route"] == "/strip"


# -- request headers ----------------------------------------------------------------------------

# A public route and a protected one (with a good token): header rules hold on both.
PUBLIC_AND_PROTECTED = [
    pytest.param("/public", False, id="public-route"),
    pytest.param("/orders/7", True, id="protected-route"),
]

FORGED_IDENTITY = [
    ("x-AUTH-subject", "mallory"),
    ("X-Auth-Subject", "eve"),
    ("X-AUTH-ISSUER", "https://evil.test"),
    ("x-auth-scopes", "admin"),
    ("X-Auth-Client-Id", "evil-client"),
    ("X-Auth-Anything", "y"),
]


async def test_client_identity_headers_removed_on_public_route(
    client: Client, recorder: RecordingUpstream
) -> None:
    """Every ``X-Auth-*`` header a client sends is removed on a public route."""
    answer = await _get(client, "/public/x", FORGED_IDENTITY)
    assert answer.status == 200
    assert identity_headers(recorder.last.headers) == []


async def test_client_identity_headers_replaced_on_protected_route(
    client: Client, tokens: TokenFactory, recorder: RecordingUpstream
) -> None:
    """On a protected route the upstream sees only the gateway's identity headers."""
    token = tokens.good(client_id="cli-1")
    answer = await _get(client, "/orders/7", [*FORGED_IDENTITY, *_auth(token)])
    assert answer.status == 200
    headers = recorder.last.headers
    assert headers.getall("X-Auth-Subject") == ["alice"]
    assert headers.getall("X-Auth-Issuer") == [ISSUER]
    assert headers.getall("X-Auth-Scopes") == ["orders:read"]
    assert headers.getall("X-Auth-Client-Id") == ["cli-1"]
    assert sorted(name.lower() for name in identity_headers(headers)) == [
        "x-auth-client-id",
        "x-auth-issuer",
        "x-auth-scopes",
        "x-auth-subject",
    ]


async def test_client_id_header_absent_when_token_has_none(
    client: Client, tokens: TokenFactory, recorder: RecordingUpstream
) -> None:
    """A client's ``X-Auth-Client-Id`` is dropped even when the token has no client id."""
    await _get(client, "/orders/7", [*FORGED_IDENTITY, *_auth(tokens.good())])
    assert "X-Auth-Client-Id" not in recorder.last.headers
    assert recorder.last.headers.getall("X-Auth-Subject") == ["alice"]


@pytest.mark.parametrize(("path", "token"), PUBLIC_AND_PROTECTED)
async def test_underscore_spelling_of_identity_headers_removed(
    client: Client, tokens: TokenFactory, recorder: RecordingUpstream, path: str, token: bool
) -> None:
    """``X_Auth_Subject``, which CGI/WSGI servers read as ``X-Auth-Subject``, is removed too."""
    headers = [("X_Auth_Subject", "mallory"), ("x_auth_scopes", "admin")]
    answer = await _get(client, path, [*headers, *(_auth(tokens.good()) if token else [])])
    assert answer.status == 200
    seen = [name for name in recorder.last.headers if name.lower().startswith("x_auth")]
    assert seen == []


async def test_connection_header_cannot_remove_gateway_headers(
    client: Client, tokens: TokenFactory, recorder: RecordingUpstream
) -> None:
    """Naming the gateway's own headers in ``Connection`` does not remove them."""
    named = "X-Auth-Subject, X-Auth-Scopes, X-Request-ID, X-Forwarded-Proto, X-Forwarded-Host"
    headers = [("Connection", named), ("X-Request-ID", "rid-1"), *_auth(tokens.good())]
    answer = await _get(client, "/orders/7", headers)
    assert answer.status == 200
    seen = recorder.last.headers
    assert seen.getall("X-Auth-Subject") == ["alice"]
    assert seen.getall("X-Auth-Scopes") == ["orders:read"]
    assert len(seen.getall("X-Request-ID")) == 1
    assert seen.getall("X-Forwarded-Proto") == ["http"]
    assert seen.getall("X-Forwarded-Host") == [HOST]


@pytest.mark.parametrize(
    ("sent", "expected"),
    [
        pytest.param([], "127.0.0.1", id="none"),
        pytest.param(["10.0.0.1"], "10.0.0.1, 127.0.0.1", id="one"),
        pytest.param(
            ["10.0.0.1", "10.0.0.2, 10.0.0.3"],
            "10.0.0.1, 10.0.0.2, 10.0.0.3, 127.0.0.1",
            id="repeated-header",
        ),
    ],
)
async def test_x_forwarded_for_is_appended(
    client: Client, recorder: RecordingUpstream, sent: list[str], expected: str
) -> None:
    """The peer address is appended to the client's ``X-Forwarded-For`` chain, in one header."""
    await _get(client, "/public", [("X-Forwarded-For", value) for value in sent])
    assert recorder.last.headers.getall("X-Forwarded-For") == [expected]


async def test_x_forwarded_proto_and_host_are_replaced(
    client: Client, recorder: RecordingUpstream
) -> None:
    """``X-Forwarded-Proto`` and ``X-Forwarded-Host`` are the gateway's, never the client's."""
    sent = [("X-Forwarded-Proto", "https"), ("X-Forwarded-Host", "evil.example")]
    await _get(client, "/public", sent)
    assert recorder.last.headers.getall("X-Forwarded-Proto") == ["http"]
    assert recorder.last.headers.getall("X-Forwarded-Host") == [HOST]


@pytest.mark.parametrize(
    ("sent", "kept"),
    [
        pytest.param(["abc-123_X.y"], True, id="well-formed"),
        pytest.param(["a" * 128], True, id="128-characters"),
        pytest.param(["a" * 129], False, id="too-long"),
        pytest.param(["bad id"], False, id="space"),
        pytest.param(['x"y'], False, id="quote"),
        pytest.param([], False, id="none"),
    ],
)
async def test_request_id_kept_only_when_well_formed(
    client: Client,
    recorder: RecordingUpstream,
    log_capture: LogCapture,
    sent: list[str],
    kept: bool,
) -> None:
    """A well-formed ``X-Request-ID`` is kept, anything else replaced; the log names the same."""
    await _get(client, "/public", [("X-Request-ID", value) for value in sent])
    (forwarded,) = recorder.last.headers.getall("X-Request-ID")
    if kept:
        assert [forwarded] == sent
    else:
        assert forwarded not in sent
        assert re.fullmatch(r"[A-Za-z0-9._-]{1,128}", forwarded)
    (line,) = log_capture.events("access")
    assert line["http.request.id"] == forwarded


@pytest.mark.parametrize(
    ("path", "authorization", "forwarded"),
    [
        pytest.param("/orders/7", "good", False, id="protected-default"),
        pytest.param("/public", "good", False, id="public"),
        pytest.param("/public", "Basic dXNlcjpwYXNz", False, id="public-basic"),
        pytest.param("/relay/7", "good", True, id="forward-token"),
    ],
)
async def test_authorization_forwarded_only_when_the_route_says_so(
    client: Client,
    tokens: TokenFactory,
    recorder: RecordingUpstream,
    path: str,
    authorization: str,
    forwarded: bool,
) -> None:
    """``Authorization`` reaches the upstream only on a ``forward_token`` route, unchanged."""
    value = f"Bearer {tokens.good()}" if authorization == "good" else authorization
    answer = await _get(client, path, [("Authorization", value)])
    assert answer.status == 200
    expected = [value] if forwarded else []
    assert recorder.last.headers.getall("Authorization", []) == expected


HOP_BY_HOP_REQUEST = [
    ("Connection", "keep-alive, Foo"),
    ("Foo", "bar"),
    ("Keep-Alive", "timeout=5"),
    ("TE", "trailers"),
    ("Upgrade", "h2c"),
    ("Proxy-Authorization", "Basic cHJveHk6c2VjcmV0"),
    ("Proxy-Connection", "keep-alive"),
    ("Trailer", "X-Checksum"),
    ("X-Kept", "yes"),
]


@pytest.mark.parametrize(("path", "token"), PUBLIC_AND_PROTECTED)
async def test_hop_by_hop_request_headers_never_reach_upstream(
    client: Client, tokens: TokenFactory, recorder: RecordingUpstream, path: str, token: bool
) -> None:
    """Hop-by-hop headers, and those the client names in ``Connection``, are not forwarded."""
    headers = [*HOP_BY_HOP_REQUEST, *(_auth(tokens.good()) if token else [])]
    answer = await _get(client, path, headers)
    assert answer.status == 200
    seen = recorder.last.headers
    for name in ("Foo", "Keep-Alive", "TE", "Upgrade", "Proxy-Authorization", "Trailer"):
        assert name not in seen, name
    assert "Proxy-Connection" not in seen
    assert "foo" not in seen.get("Connection", "").lower()
    assert seen["X-Kept"] == "yes"


OVERRIDES = [
    ("X-HTTP-Method-Override", "DELETE"),
    ("X-HTTP-Method", "DELETE"),
    ("X-Method-Override", "DELETE"),
    ("X-Original-URL", "/admin"),
    ("X-Rewrite-URL", "/admin"),
    ("X-Original-URI", "/admin"),
]


@pytest.mark.parametrize(("path", "token"), PUBLIC_AND_PROTECTED)
async def test_method_and_url_override_headers_are_stripped(
    client: Client, tokens: TokenFactory, recorder: RecordingUpstream, path: str, token: bool
) -> None:
    """Headers asking the upstream for another method or URL than the one authorised are
    removed."""
    headers = [*OVERRIDES, *(_auth(tokens.good()) if token else [])]
    answer = await _get(client, path, headers)
    assert answer.status == 200
    assert recorder.last.method == "GET"
    for name, _ in OVERRIDES:
        assert name not in recorder.last.headers, name


async def test_hop_by_hop_response_headers_never_reach_client(
    client: Client, raw: RawUpstream
) -> None:
    """The upstream's hop-by-hop headers, and those it names in ``Connection``, are removed."""
    raw.response = (
        b"HTTP/1.1 200 OK\r\n"
        b"Content-Length: 2\r\n"
        b"Connection: close, X-Secret\r\n"
        b"X-Secret: 1\r\n"
        b"Keep-Alive: timeout=5\r\n"
        b"Proxy-Authenticate: Basic realm=x\r\n"
        b"Proxy-Connection: keep-alive\r\n"
        b"Trailer: X-Checksum\r\n"
        b"X-Kept: yes\r\n"
        b"\r\n"
        b"ok"
    )
    answer = await _get(client, "/raw/x", [("Connection", "close")])
    assert answer.status == 200
    assert answer.body == b"ok"
    for name in ("X-Secret", "Keep-Alive", "Proxy-Authenticate", "Proxy-Connection", "Trailer"):
        assert name not in answer.headers, name
    assert "x-secret" not in answer.headers.get("Connection", "").lower()
    assert answer.headers["X-Kept"] == "yes"


async def test_response_bytes_that_are_not_utf8_reach_the_client_as_sent(
    client: Client, raw: RawUpstream
) -> None:
    """obs-text (RFC 9110 section 5.5: bytes 0x80-0xFF, legacy latin-1 values) in a small
    answer's fields and reason phrase reaches the client byte for byte, as nginx passes it on;
    none is dropped (aiohttp's own serializer drops them from a decoded value)."""
    raw.response = (
        b"HTTP/1.1 200 Tr\xe8s Bien\r\n"
        b"Content-Length: 2\r\n"
        b"X-Legacy: caf\xe9 cr\xe8me\r\n"
        b'Content-Disposition: attachment; filename="r\xe9sum\xe9.txt"\r\n'
        b"X-Utf8: caf\xc3\xa9\r\n"
        b"\r\n"
        b"ok"
    )
    head, body = await _raw_get(client)
    assert head.startswith(b"HTTP/1.1 200 Tr\xe8s Bien\r\n")
    assert b"\r\nX-Legacy: caf\xe9 cr\xe8me\r\n" in head + b"\r\n"
    assert b'\r\nContent-Disposition: attachment; filename="r\xe9sum\xe9.txt"' in head
    assert b"\r\nX-Utf8: caf\xc3\xa9" in head
    assert body == b"ok"


async def _raw_get(client: Client) -> tuple[bytes, bytes]:
    """GET /raw/x over a raw socket (no client library decodes the head); the head and body."""
    reader, writer = await open_connection(client)
    try:
        writer.write(http_request("GET", "/raw/x", [("Connection", "close")], host=HOST))
        received = await asyncio.wait_for(reader.read(), 10)
    finally:
        await close(writer)
    head, _, body = received.partition(b"\r\n\r\n")
    return head, body


# Bytes that are not UTF-8 in a response field: Latin-1 letters, 0xFF, a truncated UTF-8
# sequence, an overlong form, an encoded surrogate, a lone continuation byte.
OBS_TEXT = [
    pytest.param(b"caf\xe9", id="latin1"),
    pytest.param(b"\xff\xfe", id="ff-fe"),
    pytest.param(b"caf\xc3", id="truncated-utf8"),
    pytest.param(b"\xc0\xaf", id="overlong"),
    pytest.param(b"\xed\xa0\x80", id="encoded-surrogate"),
    pytest.param(b"a\x80b", id="lone-continuation"),
]


@pytest.mark.parametrize("value", OBS_TEXT)
@pytest.mark.parametrize("name", [b"X-Legacy", b"Set-Cookie", b"Location", b"content-disposition"])
async def test_each_spelling_of_obs_text_reaches_the_client_as_sent(
    client: Client, raw: RawUpstream, name: bytes, value: bytes
) -> None:
    """Every field and the reason phrase, whatever the non-UTF-8 bytes; a field given twice
    keeps both values, in order."""
    raw.response = (
        b"HTTP/1.1 200 R" + value + b"\r\nContent-Length: 2\r\n"
        + name + b": 1 " + value + b"\r\n" + name + b": 2 " + value + b"\r\n\r\nok"
    )  # fmt: skip
    head, body = await _raw_get(client)
    assert head.startswith(b"HTTP/1.1 200 R" + value + b"\r\n")
    first = head.index(b"\r\n" + name + b": 1 " + value + b"\r\n")
    assert head.index(b"\r\n" + name + b": 2 " + value + b"\r\n") > first
    assert body == b"ok"


def _ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.skipif(not _ipv6_loopback(), reason="no IPv6 loopback (::1) on this machine")
async def test_an_ipv6_literal_upstream_is_reached(gateway: GatewayFactory) -> None:
    """An upstream at ``http://[::1]:port`` gets the request, with its bracketed Host (it
    used to be answered 500: the per-request URL was rebuilt from the bare address)."""
    upstream = RawUpstream()
    async with socket_upstream(upstream.serve, host="::1") as url:
        client = await gateway(routes=routes(url))
        answer = await _get(client, "/raw/x?q=1")
    assert answer.status == 200, answer.body
    assert answer.body == b"ok"
    (seen,) = upstream.requests
    assert seen.request_line == "GET /raw/x?q=1 HTTP/1.1"
    assert seen.headers["Host"] == url.removeprefix("http://")


# -- request bodies -----------------------------------------------------------------------------

BODY = os.urandom(200_000)


def _chunked(body: bytes, sizes: Sequence[int]) -> bytes:
    out = b""
    position = 0
    for size in sizes:
        piece = body[position : position + size]
        position += size
        assert piece, "an empty chunk would end the body early"
        out += f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
    assert position >= len(body)
    return out + b"0\r\n\r\n"


def _assert_one_framing(headers: CIMultiDictProxy[str], length: int) -> None:
    has_length = "Content-Length" in headers
    has_chunked = "Transfer-Encoding" in headers
    assert has_length != has_chunked, dict(headers)
    if has_length:
        assert headers.getall("Content-Length") == [str(length)]
    else:
        assert headers.getall("Transfer-Encoding") == ["chunked"]


async def test_body_with_content_length_forwarded_byte_for_byte(
    client: Client, raw: RawUpstream, log_capture: LogCapture
) -> None:
    """A ``Content-Length`` body reaches the upstream unchanged, framed one way only."""
    headers = [("Content-Length", str(len(BODY))), ("Content-Type", "application/octet-stream")]
    answer = await send_raw(client, http_request("POST", "/raw/upload", headers, BODY))
    assert answer.status == 200
    (seen,) = raw.requests
    assert seen.request_line == "POST /raw/upload HTTP/1.1"
    assert seen.body == BODY
    _assert_one_framing(seen.headers, len(BODY))
    (line,) = log_capture.events("access")
    assert line["http.request.body.bytes"] == len(BODY)


async def test_chunked_body_forwarded_byte_for_byte(
    client: Client, raw: RawUpstream, log_capture: LogCapture
) -> None:
    """A chunked body reaches the upstream unchanged, framed one way only."""
    headers = [("Transfer-Encoding", "chunked")]
    body = _chunked(BODY, [1, 70_000, 3, 100_000, 29_996])
    answer = await send_raw(client, http_request("POST", "/raw/upload", headers, body))
    assert answer.status == 200
    (seen,) = raw.requests
    assert seen.body == BODY
    _assert_one_framing(seen.headers, len(BODY))
    (line,) = log_capture.events("access")
    assert line["http.request.body.bytes"] == len(BODY)


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
async def test_gzip_body_forwarded_still_compressed(
    client: Client, raw: RawUpstream, framing: str
) -> None:
    """A ``Content-Encoding: gzip`` body is forwarded compressed, never inflated."""
    compressed = gzip.compress(json.dumps(list(range(20_000))).encode())
    headers = [("Content-Encoding", "gzip"), ("Content-Type", "application/json")]
    if framing == "chunked":
        headers.append(("Transfer-Encoding", "chunked"))
        body = _chunked(compressed, [100, len(compressed) - 100])
    else:
        headers.append(("Content-Length", str(len(compressed))))
        body = compressed
    answer = await send_raw(client, http_request("POST", "/raw/gz", headers, body))
    assert answer.status == 200
    (seen,) = raw.requests
    assert seen.body == compressed
    assert seen.headers.getall("Content-Encoding") == ["gzip"]
    _assert_one_framing(seen.headers, len(compressed))


# -- access log ---------------------------------------------------------------------------------

ACCESS_FIELDS = {
    "@timestamp",
    "log.level",
    "event.action",
    "http.request.id",
    "client.ip",
    "http.request.method",
    "url.path",
    "gateway.route",
    "http.response.status_code",
    "event.duration",
    "gateway.upstream.name",
    "gateway.upstream.duration",
    "http.request.body.bytes",
    "http.response.body.bytes",
    "user_agent.original",
    "user.id",
    "gateway.client.id",
    "gateway.auth.result",
    "gateway.auth.reason",
}
RFC3339_UTC = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|\+00:00)")


async def test_access_line_has_every_spec_field(
    client: Client, tokens: TokenFactory, recorder: RecordingUpstream, log_capture: LogCapture
) -> None:
    """An allowed request writes one access line carrying every field the spec names."""
    body = b"x" * 1234
    headers = [
        *_auth(tokens.good(scope="orders:write", client_id="cli-1")),
        ("User-Agent", USER_AGENT),
        ("Content-Length", str(len(body))),
        ("X-Request-ID", "log-test-1"),
    ]
    answer = await send_raw(client, http_request("POST", "/orders/7", headers, body, host=HOST))
    assert answer.status == 200
    (line,) = log_capture.events("access")
    assert set(line) >= ACCESS_FIELDS
    assert RFC3339_UTC.fullmatch(line["@timestamp"])
    assert line["log.level"] == "info"
    assert line["event.action"] == "access"
    assert line["http.request.id"] == "log-test-1" == recorder.last.headers["X-Request-ID"]
    assert line["client.ip"] == "127.0.0.1"
    assert line["http.request.method"] == "POST"
    assert line["url.path"] == "/orders/7"
    assert line["gateway.route"] == "/orders"
    assert line["http.response.status_code"] == 200
    assert isinstance(line["event.duration"], int)
    assert isinstance(line["gateway.upstream.duration"], int)
    assert 0 < line["gateway.upstream.duration"] <= line["event.duration"]
    assert line["gateway.upstream.name"] == "orders"
    assert line["http.request.body.bytes"] == len(body)
    assert line["http.response.body.bytes"] == len(answer.body)
    assert line["user_agent.original"] == USER_AGENT
    assert line["user.id"] == "alice"
    assert line["gateway.client.id"] == "cli-1"
    assert line["gateway.auth.result"] == "allowed"
    assert line["gateway.auth.reason"] is None


@pytest.mark.parametrize(
    ("target", "authorization", "status", "result", "reason"),
    [
        pytest.param("/public/x", None, 200, "public", None, id="public"),
        pytest.param("/orders/health", "good", 200, "public", None, id="public-with-token"),
        pytest.param("/orders/7", "good", 200, "allowed", None, id="allowed"),
        pytest.param("/orders/7", None, 401, "denied", "missing", id="missing"),
        pytest.param("/orders/7", "Basic dXNlcjpwYXNz", 401, "denied", "missing", id="basic"),
        pytest.param("/orders/7", "Bearer a b", 400, "denied", "malformed", id="malformed"),
        pytest.param(
            "/orders/7?access_token=x", None, 400, "denied", "malformed", id="token-in-query"
        ),
        pytest.param(
            "/admin", "good", 403, "denied", "insufficient_scope", id="insufficient-scope"
        ),
    ],
)
async def test_access_line_auth_result_and_reason(
    client: Client,
    tokens: TokenFactory,
    log_capture: LogCapture,
    target: str,
    authorization: str | None,
    status: int,
    result: str,
    reason: str | None,
) -> None:
    """``auth.result`` is public, allowed or denied, and a denial says why."""
    headers = [("User-Agent", USER_AGENT)]
    if authorization is not None:
        value = f"Bearer {tokens.good()}" if authorization == "good" else authorization
        headers.append(("Authorization", value))
    answer = await _get(client, target, headers)
    assert answer.status == status
    (line,) = log_capture.events("access")
    assert set(line) >= ACCESS_FIELDS
    assert line["http.response.status_code"] == status
    assert line["gateway.auth.result"] == result
    assert line["gateway.auth.reason"] == reason
    assert line["http.response.body.bytes"] == len(answer.body)
    assert line["user_agent.original"] == USER_AGENT
    if result == "denied":
        assert json.loads(answer.body)["request_id"] == line["http.request.id"]


@pytest.mark.parametrize(
    ("target", "authorization", "logged_path"),
    [
        pytest.param("//orders/./7/../8?secret=QSECRET", "good", "/orders/8", id="allowed"),
        pytest.param("/public/%7Ex?secret=QSECRET", None, "/public/~x", id="public"),
        pytest.param("/orders/7?secret=QSECRET", None, "/orders/7", id="denied"),
        pytest.param("/admin/?secret=QSECRET", "good", "/admin/", id="insufficient-scope"),
        pytest.param("/orders/7?access_token=QSECRET", None, "/orders/7", id="token-in-query"),
        pytest.param("/x/../../y?secret=QSECRET", None, None, id="bad-target"),
    ],
)
async def test_access_line_has_canonical_path_and_no_query(
    client: Client,
    tokens: TokenFactory,
    log_capture: LogCapture,
    target: str,
    authorization: str | None,
    logged_path: str | None,
) -> None:
    """``url.path`` is the canonical path, and the query string appears nowhere in the log."""
    headers = _auth(tokens.good()) if authorization == "good" else []
    await _get(client, target, headers)
    (line,) = log_capture.events("access")
    if logged_path is not None:
        assert line["url.path"] == logged_path
    assert "QSECRET" not in log_capture.text
    assert "secret=" not in log_capture.text


async def test_one_access_line_per_request(
    client: Client, tokens: TokenFactory, log_capture: LogCapture
) -> None:
    """Each request, allowed or refused, writes exactly one access line of its own."""
    targets = ["/public", "/orders/7", "/nowhere/%2F", "/admin", "/orders/health"]
    for number, target in enumerate(targets):
        headers = [("X-Request-ID", f"req-{number}"), *_auth(tokens.good())]
        await _get(client, target, headers)
    lines = log_capture.events("access")
    assert [line["http.request.id"] for line in lines] == [f"req-{n}" for n in range(len(targets))]
    assert [line["http.response.status_code"] for line in lines] == [200, 200, 400, 403, 200]
    assert [line["gateway.route"] for line in lines] == [
        "/",
        "/orders",
        None,
        "/admin",
        "/orders/health",
    ]
