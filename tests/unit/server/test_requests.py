"""The request factory fills aiohttp's property cache with exactly what aiohttp's own properties
compute, for every form of request target, framing, version and transport (plain TCP, TLS, a
Unix socket), and start-up fails loudly when aiohttp changes how those properties are kept."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import trustme
from aiohttp import web

from gateway.server.aiohttp_overrides import HANDLER, GatewayRunner
from gateway.server.requests import PREFILLED, check_prefilled
from gateway.server.shapes import PrivateShapeChanged

REQUESTS = {
    "origin-form": b"GET /a%2Fb/../c?q=1&r HTTP/1.1\r\nHost: gateway.test\r\n\r\n",
    "absolute-form": b"GET http://other.test:8080/abs?x=1 HTTP/1.1\r\nHost: gateway.test\r\n\r\n",
    "absolute-form https": b"GET https://other.test/abs HTTP/1.1\r\nHost: gateway.test\r\n\r\n",
    "asterisk-form": b"OPTIONS * HTTP/1.1\r\nHost: gateway.test\r\n\r\n",
    "authority-form": b"CONNECT other.test:443 HTTP/1.1\r\nHost: other.test:443\r\n\r\n",
    "HTTP/1.0": b"GET /ten HTTP/1.0\r\n\r\n",
    "HTTP/1.0 keep-alive": b"GET /ten HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
    "Connection: close": b"GET / HTTP/1.1\r\nHost: gateway.test\r\nConnection: close\r\n\r\n",
    "Content-Length body": (
        b"POST /p HTTP/1.1\r\nHost: gateway.test\r\nContent-Length: 3\r\n\r\nabc"
    ),
    "chunked body": (
        b"PUT /p HTTP/1.1\r\nHost: gateway.test\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"3\r\nabc\r\n0\r\n\r\n"
    ),
    "empty Content-Length": b"POST /p HTTP/1.1\r\nHost: gateway.test\r\nContent-Length: 0\r\n\r\n",
    "repeated fields, Upgrade": (
        b"DELETE /x HTTP/1.1\r\nHost: a\r\nX-Twice: 1\r\nX-Twice: 2\r\nUpgrade: h2c\r\n\r\n"
    ),
}

Compared = dict[str, tuple[Any, Any]]


@contextlib.asynccontextmanager
async def _serving(
    site_for: Callable[[web.BaseRunner], web.BaseSite], seen: list[Compared]
) -> AsyncIterator[list[Any]]:
    """A gateway runner whose handler compares each request's prefilled properties with the
    ones a plain request computes from the same message; yields the bound addresses."""

    async def compare(request: web.BaseRequest) -> web.StreamResponse:
        # Filled before anything read them; then each against a plain request's own property.
        missing = [name for name in PREFILLED if name not in request._cache]
        assert not missing, missing
        plain = web.BaseRequest(
            request._message, request._payload, request._protocol,
            request._payload_writer, request._task, asyncio.get_running_loop(),
        )  # fmt: skip
        seen.append({name: (getattr(request, name), getattr(plain, name)) for name in PREFILLED})
        await request.read()
        return web.Response(text="ok")

    app = web.Application()
    app[HANDLER] = compare
    runner = GatewayRunner(app)
    await runner.setup()
    await site_for(runner).start()
    try:
        yield list(runner.addresses)
    finally:
        await runner.cleanup()


async def _exchange(
    connect: Callable[[], Awaitable[tuple[asyncio.StreamReader, asyncio.StreamWriter]]],
    raw: bytes,
) -> bytes:
    reader, writer = await connect()
    writer.write(raw)
    await writer.drain()
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    writer.close()
    return head


def _assert_same(seen: list[Compared]) -> None:
    assert len(seen) == 1
    for name, (prefilled, computed) in seen[0].items():
        assert prefilled == computed, name
        assert type(prefilled) is type(computed), name


@pytest.mark.parametrize("raw", REQUESTS.values(), ids=REQUESTS.keys())
async def test_prefilled_properties_are_aiohttps_own_over_tcp(raw: bytes) -> None:
    seen: list[Compared] = []

    def site_for(runner: web.BaseRunner) -> web.BaseSite:
        return web.TCPSite(runner, "127.0.0.1", 0)

    async with _serving(site_for, seen) as addresses:
        host, port = addresses[0]
        head = await _exchange(lambda: asyncio.open_connection(host, port), raw)
    assert head.startswith(b"HTTP/1.")
    _assert_same(seen)
    assert seen[0]["scheme"][0] == "http"
    assert seen[0]["remote"][0] == "127.0.0.1"


@pytest.mark.parametrize("raw", REQUESTS.values(), ids=REQUESTS.keys())
async def test_prefilled_properties_are_aiohttps_own_over_tls(raw: bytes) -> None:
    ca = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost").configure_cert(server_context)
    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)
    seen: list[Compared] = []

    def site_for(runner: web.BaseRunner) -> web.BaseSite:
        return web.TCPSite(runner, "127.0.0.1", 0, ssl_context=server_context)

    async with _serving(site_for, seen) as addresses:
        host, port = addresses[0]
        head = await _exchange(
            lambda: asyncio.open_connection(
                host, port, ssl=client_context, server_hostname="localhost"
            ),
            raw,
        )
    assert head.startswith(b"HTTP/1.")
    _assert_same(seen)
    assert seen[0]["scheme"][0] == "https"


@pytest.mark.parametrize("raw", list(REQUESTS.values())[:3], ids=list(REQUESTS)[:3])
async def test_prefilled_properties_are_aiohttps_own_over_a_unix_socket(
    raw: bytes, tmp_path: Path
) -> None:
    path = tmp_path / "gateway.sock"
    seen: list[Compared] = []

    def site_for(runner: web.BaseRunner) -> web.BaseSite:
        return web.UnixSite(runner, str(path))

    async with _serving(site_for, seen):
        head = await _exchange(lambda: asyncio.open_unix_connection(str(path)), raw)
    assert head.startswith(b"HTTP/1.")
    _assert_same(seen)


def test_start_up_fails_loudly_when_a_property_is_kept_elsewhere(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A release where ``raw_path`` is a plain property (not kept in ``_cache``) is refused."""
    check_prefilled()
    monkeypatch.setattr(web.BaseRequest, "raw_path", property(lambda self: self._message.path))
    with pytest.raises(PrivateShapeChanged, match=r"BaseRequest\.raw_path"):
        check_prefilled()
