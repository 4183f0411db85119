"""An upstream's answer read whole and written from its bytes (`whole_answer`, `send`) is byte
for byte what the door wrote before, through a `web.Response` (`response_headers`, the added
fields, `send_whole`), and leaves the connection open or closed the same way.

Differential, as in ``test_send_whole``: one aiohttp low-level server answers each request
both ways; a raw socket sends the case's request, then a closing one on the same connection,
and reads to the end. The two byte streams must be equal once the Date values are blanked."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from gateway.core.headers import response_headers
from gateway.server import wire
from gateway.server.aiohttp_overrides import send_whole
from gateway.server.wire import send, whole_answer
from tests.unit.server.differential import (
    blank_dates,
    exchange,
    low_level_server,
    stays_open,
)

Raw = list[tuple[bytes, bytes]]
NGINX: Raw = [
    (b"Server", b"nginx/1.22.1"), (b"Date", b"Tue, 01 Dec 2026 10:00:00 GMT"),
    (b"Content-Type", b"application/json"), (b"Content-Length", b"11"),
    (b"Last-Modified", b"Tue, 01 Dec 2026 09:00:00 GMT"), (b"Connection", b"keep-alive"),
    (b"ETag", b'"6567-b"'), (b"Accept-Ranges", b"bytes"),
]  # fmt: skip
# name: (status, reason, upstream fields, body)
# fmt: off
ANSWERS: dict[str, tuple[int, bytes, Raw, bytes]] = {
    "nginx": (200, b"OK", NGINX, b'{"ok":true}'),
    "bare": (200, b"OK", [(b"Content-Length", b"5")], b"hello"),
    "empty": (200, b"OK", [(b"Content-Length", b"0")], b""),
    "lower_case": (
        201,
        b"Created",
        [
            (b"content-type", b"text/plain"),
            (b"date", b"x"),
            (b"server", b"s"),
            (b"content-length", b"2"),
        ],
        b"ok",
    ),
    "cookies": (
        200,
        b"OK",
        [
            (b"Set-Cookie", b"a=1; Path=/"),
            (b"X-A", b"1"),
            (b"Set-Cookie", b"b=2"),
            (b"Content-Length", b"1"),
        ],
        b"x",
    ),
    "hop_by_hop": (
        200,
        b"OK",
        [
            (b"Keep-Alive", b"timeout=5"),
            (b"Proxy-Authenticate", b"Basic"),
            (b"Upgrade", b"h2c"),
            (b"Trailer", b"X-T"),
            (b"TE", b"trailers"),
            (b"Content-Length", b"1"),
            (b"X-Kept", b"1"),
        ],
        b"x",
    ),
    "connection_named": (
        200,
        b"OK",
        [
            (b"Connection", b"close, X-Secret"),
            (b"X-Secret", b"s"),
            (b"x-secret", b"t"),
            (b"X-Kept", b"1"),
            (b"Content-Length", b"1"),
        ],
        b"x",
    ),
    "own_reason": (200, b"Fine Thanks", [(b"Content-Length", b"1")], b"x"),
    "no_reason": (404, b"", [(b"Content-Length", b"1")], b"x"),
    "unknown_status": (299, b"", [(b"Content-Length", b"1")], b"x"),
    "server_error": (503, b"Service Unavailable", [(b"Retry-After", b"5")], b"down"),
    "utf8_value": (200, b"OK", [(b"X-Name", "café".encode())], b"x"),
}
# fmt: on
ADDED: dict[str, tuple[tuple[str, str], ...]] = {
    "none": (),
    "hsts": (("Strict-Transport-Security", "max-age=63072000"),),
    "limits": (("RateLimit-Limit", "10"), ("RateLimit-Remaining", "9"), ("RateLimit-Reset", "1")),
}


@pytest.fixture
async def port() -> AsyncIterator[int]:
    """``/{answer}/{rendered|wire}/{added}/{close|open}`` picks the answer and its writer."""

    async def handler(request: web.BaseRequest) -> web.StreamResponse:
        parts = request.path.split("/")
        if len(parts) != 5:
            return web.Response(text="end")
        _, name, writer, added_name, close = parts
        status, reason, raw, body = ANSWERS[name]
        added = ADDED[added_name]
        whole = whole_answer(request.version, status, reason, raw, body, added)
        if writer == "wire" and whole is not None:  # None: the door builds a web.Response too
            return await send(request, whole, close=close == "close")
        # What the door did before: the upstream's fields decoded, ours set, a web.Response.
        headers = response_headers(raw)
        for field, value in added:
            headers[field] = value
        headers.popall("Content-Length", None)
        response = web.Response(
            status=status, reason=reason.decode("utf-8", "surrogateescape") or None,
            headers=headers, body=body,
        )  # fmt: skip
        if close == "close":
            response.force_close()
        await send_whole(request, response)
        return response

    async with low_level_server(handler) as port:
        yield port


@pytest.mark.parametrize("name", sorted(ANSWERS))
@pytest.mark.parametrize("added", sorted(ADDED))
@pytest.mark.parametrize("version", ["1.0", "1.1"])
@pytest.mark.parametrize("connection", [None, "close", "keep-alive"])
@pytest.mark.parametrize("close", ["open", "close"])
async def test_the_same_bytes_and_connection_as_through_a_web_response(
    port: int, name: str, added: str, version: str, connection: str | None, close: str
) -> None:
    field = f"Connection: {connection}\r\n" if connection else ""

    def request(writer: str) -> bytes:
        target = f"/{name}/{writer}/{added}/{close}"
        return f"GET {target} HTTP/{version}\r\nHost: t\r\n{field}\r\n".encode()

    then_close = stays_open(version, connection)
    rendered = await exchange(
        port, request("rendered"), then_close=then_close, closing_target="/end"
    )
    wired = await exchange(port, request("wire"), then_close=then_close, closing_target="/end")
    assert rendered.startswith(f"HTTP/{version} {ANSWERS[name][0]} ".encode())
    assert blank_dates(wired) == blank_dates(rendered)


def test_a_field_the_gateway_sets_is_left_to_the_web_response() -> None:
    """The upstream's own HSTS (any spelling) is replaced in place by a multidict: not here."""
    for spelling in (b"Strict-Transport-Security", b"strict-transport-security"):
        raw = [(spelling, b"max-age=1"), (b"Content-Length", b"1")]
        assert whole_answer((1, 1), 200, b"OK", raw, b"x", ADDED["hsts"]) is None
    raw = [(b"Content-Length", b"1")]
    assert whole_answer((1, 1), 200, b"OK", raw, b"x", ADDED["hsts"]) is not None
    assert whole_answer((2, 0), 200, b"OK", raw, b"x", ()) is None


@pytest.mark.parametrize(
    "spelling", [b"RateLimit-Remaining", b"ratelimit-remaining", b"RATELIMIT-REMAINING"]
)
def test_an_upstream_field_a_limit_sets_is_left_to_the_web_response(spelling: bytes) -> None:
    """The names of the kept added fields are matched in any case, from the first request on
    and after they were kept."""
    raw = [(spelling, b"1"), (b"Content-Length", b"1")]
    for _ in range(2):
        assert whole_answer((1, 1), 200, b"OK", raw, b"x", ADDED["limits"]) is None
    whole = whole_answer((1, 1), 200, b"OK", [(b"Content-Length", b"1")], b"x", ADDED["limits"])
    assert whole is not None
    assert whole.head.endswith(
        b"RateLimit-Limit: 10\r\nRateLimit-Remaining: 9\r\nRateLimit-Reset: 1\r\n"
    )


def test_the_kept_added_fields_stay_bounded_and_right() -> None:
    """Past the bound the keep is emptied and filled again: every answer keeps its own values,
    in order, and the keep never holds more than the bound."""
    bound = wire._MAX_KEPT_FIELDS
    raw = [(b"Content-Length", b"1")]
    for remaining in range(bound * 2 + 3):
        added = (("RateLimit-Policy", '"ip";q=100;w=1'), ("RateLimit", f'"ip";r={remaining};t=1'))
        whole = whole_answer((1, 1), 200, b"OK", raw, b"x", added)
        assert whole is not None
        assert whole.head.endswith(
            b'RateLimit-Policy: "ip";q=100;w=1\r\nRateLimit: "ip";r=%d;t=1\r\n' % remaining
        )
        assert len(wire._kept_fields) <= bound


@pytest.mark.parametrize(
    "field",
    [
        ("RateLimit", '"ip";r=1;t=1\r\nSet-Cookie: a=b'),
        ("RateLimit", '"ip";r=1;t=1\nSet-Cookie: a=b'),
        ("RateLimit", '"ip";r=1;t=1\rSet-Cookie: a=b'),
        ("RateLimit", '"ip";r=1\r\n'),
        ("Rate\r\nLimit", '"ip";r=1;t=1'),
        ("RateLimit\n", '"ip";r=1;t=1'),
    ],
)
def test_a_refused_added_field_is_never_kept(field: tuple[str, str]) -> None:
    """A CR, an LF or both, in the value or the name, raise every time: refused before the
    field could be kept, alone or after a field that was."""
    kept = ("RateLimit-Policy", '"ip";q=100;w=1')
    raw = [(b"Content-Length", b"1")]
    for _ in range(2):
        with pytest.raises(ValueError, match="control character"):
            whole_answer((1, 1), 200, b"OK", raw, b"x", (field,))
        with pytest.raises(ValueError, match="control character"):
            whole_answer((1, 1), 200, b"OK", raw, b"x", (kept, field))
    assert field not in wire._kept_fields
    assert kept in wire._kept_fields


@pytest.mark.parametrize(
    "connection", [b"close, X-Secret", b"X-Secret", b"keep-alive, Keep-Alive, X-A", b"upgrade"]
)
def test_a_connection_field_that_names_fields_is_left_to_the_web_response(
    connection: bytes,
) -> None:
    """The fields the upstream's Connection names are dropped by `response_headers`, wherever
    they stand; here only Connection values that name none (keep-alive, close) are taken."""
    raw = [(b"X-Secret", b"s"), (b"Connection", connection), (b"Content-Length", b"1")]
    assert whole_answer((1, 1), 200, b"OK", raw, b"x", ()) is None
    for plain in (b"keep-alive", b"Close", b"close, keep-alive"):
        raw = [(b"Connection", plain), (b"Content-Length", b"1")]
        assert whole_answer((1, 1), 200, b"OK", raw, b"x", ()) is not None


def test_bytes_that_are_not_utf8_are_kept() -> None:
    """obs-text (RFC 9110 5.5) in a value or the reason reaches the client as it came;
    aiohttp's serializer would drop it from a decoded value."""
    raw = [(b"X-Legacy", b"caf\xe9 ok"), (b"Content-Length", b"1")]
    whole = whole_answer((1, 1), 200, b"Tr\xe8s Bien", raw, b"x", ())
    assert whole is not None
    assert whole.head.startswith(b"HTTP/1.1 200 Tr\xe8s Bien\r\n")
    assert b"\r\nX-Legacy: caf\xe9 ok\r\n" in whole.head
