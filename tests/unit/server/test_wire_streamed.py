"""A streamed answer's head (`KeptBytesResponse`) is byte for byte aiohttp's own
(`web.StreamResponse`) for fields aiohttp can write, whatever the framing aiohttp chooses, and
keeps the bytes that are not UTF-8, which aiohttp's serializer drops."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from gateway.server.wire import KeptBytesResponse
from tests.unit.server.differential import blank_dates, exchange, low_level_server, stays_open

FIELDS: dict[str, list[tuple[str, str]]] = {
    "plain": [("Content-Type", "text/plain"), ("X-A", "1"), ("X-A", "2")],
    "length": [("Content-Length", "5"), ("ETag", '"v1"')],
    "utf8": [("X-Name", "café ☕"), ("Set-Cookie", "a=b; Path=/")],
    "no_fields": [],
}


@pytest.fixture
async def port() -> AsyncIterator[int]:
    """``/{fields}/{aiohttp|kept}`` picks the fields and the response class."""

    async def handler(request: web.BaseRequest) -> web.StreamResponse:
        parts = request.path.split("/")
        if len(parts) != 3:
            return web.Response(text="end")
        _, name, writer = parts
        kind = KeptBytesResponse if writer == "kept" else web.StreamResponse
        response = kind(status=200, reason="Fine", headers=FIELDS[name])
        await response.prepare(request)
        await response.write(b"hello")
        await response.write_eof()
        return response

    async with low_level_server(handler) as port:
        yield port


@pytest.mark.parametrize("name", sorted(FIELDS))
@pytest.mark.parametrize("method", ["GET", "HEAD"])
@pytest.mark.parametrize("version", ["1.0", "1.1"])
@pytest.mark.parametrize("connection", [None, "close", "keep-alive"])
async def test_the_same_bytes_as_aiohttps_head(
    port: int, name: str, method: str, version: str, connection: str | None
) -> None:
    field = f"Connection: {connection}\r\n" if connection else ""

    def request(writer: str) -> bytes:
        return f"{method} /{name}/{writer} HTTP/{version}\r\nHost: t\r\n{field}\r\n".encode()

    then_close = stays_open(version, connection)
    by_aiohttp = await exchange(
        port, request("aiohttp"), then_close=then_close, closing_target="/end"
    )
    kept = await exchange(port, request("kept"), then_close=then_close, closing_target="/end")
    assert by_aiohttp.startswith(f"HTTP/{version} 200 Fine\r\n".encode())
    assert blank_dates(kept) == blank_dates(by_aiohttp)


async def test_bytes_that_are_not_utf8_are_kept() -> None:
    """A value and a reason decoded with surrogateescape are written as the bytes that came."""
    value = b'attachment; filename="r\xe9sum\xe9.txt"'.decode("utf-8", "surrogateescape")
    reason = b"Tr\xe8s Bien".decode("utf-8", "surrogateescape")

    async def handler(request: web.BaseRequest) -> web.StreamResponse:
        response = KeptBytesResponse(reason=reason, headers={"Content-Disposition": value})
        await response.prepare(request)
        await response.write_eof(b"ok")
        return response

    async with low_level_server(handler) as port:
        request = b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
        received = await exchange(port, request, then_close=False, closing_target="/")
    assert received.startswith(b"HTTP/1.1 200 Tr\xe8s Bien\r\n")
    assert b'\r\nContent-Disposition: attachment; filename="r\xe9sum\xe9.txt"\r\n' in received


@pytest.mark.parametrize("value", ["a\r\nSet-Cookie: x=y", "a\nb", "a\rb"])
async def test_a_line_break_in_a_field_is_never_written(value: str) -> None:
    async def handler(request: web.BaseRequest) -> web.StreamResponse:
        response = KeptBytesResponse(headers={"X-Bad": value})
        await response.prepare(request)
        return response

    async with low_level_server(handler) as port:
        request = b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
        received = await exchange(port, request, then_close=False, closing_target="/")
    assert b"Set-Cookie" not in received
    assert b"X-Bad" not in received
