"""`send_whole` writes the bytes aiohttp would have written for the same `web.Response`, and
leaves the connection open or closed as aiohttp would have.

Differential: one aiohttp low-level server answers each request twice, once by returning the
response to aiohttp and once through `send_whole`; a raw socket sends the case's request and
then a closing one on the same connection, and reads to the end. The two byte streams must be
equal once the Date values are blanked (so whether the second request was answered, i.e. the
keep-alive decision, is compared too)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest
from aiohttp import web

from gateway.server.aiohttp_overrides import send_whole
from tests.unit.server.differential import blank_dates, exchange, low_level_server

Build = Callable[[], web.Response]

RESPONSES: dict[str, Build] = {
    "json_401": lambda: web.Response(
        status=401,
        body=b'{"error":"unauthorized"}',
        content_type="application/json",
        headers={"WWW-Authenticate": 'Bearer realm="x"', "Cache-Control": "no-store"},
    ),
    "plain_200": lambda: web.Response(body=b"hello", headers={"X-Upstream": "a"}),
    "empty_200": lambda: web.Response(body=b""),
    "no_body_200": lambda: web.Response(),
    "no_content_204": lambda: web.Response(status=204, headers={"Access-Control-Max-Age": "5"}),
    "not_modified_304": lambda: web.Response(status=304, headers={"ETag": '"v1"'}),
    "reason_502": lambda: web.Response(status=502, reason="Bad Gateway", body=b"{}"),
    "own_connection_field": lambda: web.Response(body=b"x", headers={"Connection": "close"}),
    "forced_close": lambda: _forced(web.Response(status=413, body=b"too big")),
}


def _forced(response: web.Response) -> web.Response:
    response.force_close()
    return response


@pytest.fixture
async def server() -> AsyncIterator[tuple[int, dict[str, str]]]:
    """A low-level aiohttp server; ``/{response}/{aiohttp|whole}`` picks the answer and who
    writes it."""
    state: dict[str, str] = {}

    async def handler(request: web.BaseRequest) -> web.StreamResponse:
        _, name, writer = request.path.split("/")
        response = RESPONSES[name]() if name in RESPONSES else web.Response(text="end")
        if writer == "whole":
            await send_whole(request, response)
            assert response.prepared
        return response

    async with low_level_server(handler) as port:
        yield port, state


async def _exchange(port: int, first: bytes, *, then_close: bool = True) -> bytes:
    return await exchange(port, first, then_close=then_close, closing_target="/end/aiohttp")


@pytest.mark.parametrize("name", sorted(RESPONSES))
@pytest.mark.parametrize("method", ["GET", "HEAD"])
@pytest.mark.parametrize("version", ["1.0", "1.1"])
@pytest.mark.parametrize("connection", [None, "close", "keep-alive"])
async def test_the_same_bytes_and_connection_as_aiohttp(
    server: tuple[int, dict[str, str]],
    name: str,
    method: str,
    version: str,
    connection: str | None,
) -> None:
    port, _ = server
    field = f"Connection: {connection}\r\n" if connection else ""

    def request(writer: str) -> bytes:
        return f"{method} /{name}/{writer} HTTP/{version}\r\nHost: t\r\n{field}\r\n".encode()

    # Nothing may follow a request that says close (llhttp refuses it).
    then_close = connection != "close"
    by_aiohttp = await _exchange(port, request("aiohttp"), then_close=then_close)
    by_door = await _exchange(port, request("whole"), then_close=then_close)
    assert by_aiohttp.startswith(f"HTTP/{version} ".encode())
    assert blank_dates(by_door) == blank_dates(by_aiohttp)


@pytest.mark.parametrize(
    "field",
    [
        ("X-Bad", "a\r\nSet-Cookie: b=c"),  # CR LF in a value
        ("X-Bad", "a\nSet-Cookie: b=c"),  # a bare LF (lenient clients split on it)
        ("X-Bad", "a\rSet-Cookie: b=c"),  # a bare CR
        ("X-Bad: 1\r\nSet-Cookie", "b=c"),  # CR LF in a name
        ("X-Bad", "\r\n\r\nSet-Cookie: b=c"),  # an early end of the head, then a body
    ],
)
async def test_a_line_break_in_a_field_is_never_written(
    server: tuple[int, dict[str, str]], field: tuple[str, str]
) -> None:
    """aiohttp's own head serializer is used, so a CR or LF smuggled into a name or value
    raises before a byte is written, as on aiohttp's path. (aiohttp, raising in its own write,
    closes the connection with no answer; raised in the handler, it answers 500.)"""
    port, _ = server
    for writer in ("aiohttp", "whole"):
        RESPONSES["bad_field"] = lambda: web.Response(body=b"x", headers=[field])
        try:
            received = await _exchange(
                port, f"GET /bad_field/{writer} HTTP/1.1\r\nHost: t\r\n\r\n".encode()
            )
        finally:
            del RESPONSES["bad_field"]
        assert b"Set-Cookie" not in received, writer
        assert received == b"" if writer == "aiohttp" else received.startswith(b"HTTP/1.1 500 ")


async def test_bytes_that_are_not_utf8_are_written_as_they_came() -> None:
    """A field decoded from the upstream with surrogateescape (a CORS route's answer, which is
    still a web.Response) is written as the original bytes; aiohttp's serializer drops them."""
    value = b"caf\xe9 \xff".decode("utf-8", "surrogateescape")

    async def handler(request: web.BaseRequest) -> web.StreamResponse:
        response = web.Response(body=b"x", reason="Fine", headers={"X-Legacy": value})
        await send_whole(request, response)
        return response

    async with low_level_server(handler) as port:
        request = b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
        received = await exchange(port, request, then_close=False, closing_target="/")
    assert b"\r\nX-Legacy: caf\xe9 \xff\r\n" in received
