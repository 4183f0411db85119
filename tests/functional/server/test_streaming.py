"""Bodies stream through a `gateway run` process both ways without sitting in its memory."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from pytest_aiohttp import AiohttpServer

from tests.functional.gateway_process import peak_rss_bytes, running_gateway
from tests.support import DEFAULT_ROUTES, TestKeys, TokenFactory

pytestmark = pytest.mark.slow

MIB = 1024 * 1024
TOTAL = 100 * MIB
CHUNK = 256 * 1024
PEAK_RSS_LIMIT = 150 * 1000 * 1000  # the spec: "under 150 MB"
ROUTES = DEFAULT_ROUTES.replace("timeout: 2s", "timeout: 20s")
# A chunk that is not all zeros, so that a dropped or repeated chunk changes the digest.
PATTERN = bytes(range(256)) * (CHUNK // 256)


def _expected_digest() -> str:
    digest = hashlib.sha256()
    for _ in range(TOTAL // CHUNK):
        digest.update(PATTERN)
    return digest.hexdigest()


async def _generate_body() -> AsyncIterator[bytes]:
    """TOTAL bytes, one chunk at a time; never held in memory in full."""
    for _ in range(TOTAL // CHUNK):
        yield PATTERN


class CountingUpstream:
    """An upstream that counts uploaded bytes without keeping them and streams downloads."""

    def app(self) -> web.Application:
        """The aiohttp application to serve."""
        app = web.Application()
        app.router.add_post("/orders/upload", self._upload)
        app.router.add_get("/orders/download", self._download)
        return app

    async def _upload(self, request: web.Request) -> web.Response:
        received = 0
        digest = hashlib.sha256()
        async for chunk in request.content.iter_chunked(CHUNK):
            received += len(chunk)
            digest.update(chunk)
        return web.json_response({"bytes": received, "sha256": digest.hexdigest()})

    async def _download(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
        response.content_length = TOTAL
        await response.prepare(request)
        async for chunk in _generate_body():
            await response.write(chunk)
        await response.write_eof()
        return response


@pytest.fixture
async def counting_upstream(aiohttp_server: AiohttpServer) -> TestServer:
    """The counting upstream on 127.0.0.1."""
    return await aiohttp_server(CountingUpstream().app())


async def test_100_mib_streams_both_ways_in_bounded_memory(
    tmp_path: Path, keys: TestKeys, tokens: TokenFactory, counting_upstream: TestServer
) -> None:
    """A 100 MiB upload and a 100 MiB download arrive complete while the gateway's peak RSS
    stays under 150 MB."""
    expected = _expected_digest()
    base = str(counting_upstream.make_url("")).rstrip("/")
    timeout = aiohttp.ClientTimeout(total=60)
    async with (
        running_gateway(tmp_path, keys, upstream=base, routes=ROUTES) as gateway,
        aiohttp.ClientSession(timeout=timeout, auto_decompress=False) as session,
    ):
        write = {"Authorization": f"Bearer {tokens.good(scope='orders:write')}"}
        async with session.post(
            gateway.url("/orders/upload"), data=_generate_body(), headers=write
        ) as response:
            assert response.status == 200
            assert await response.json() == {"bytes": TOTAL, "sha256": expected}

        read = {"Authorization": f"Bearer {tokens.good(scope='orders:read')}"}
        received = 0
        digest = hashlib.sha256()
        async with session.get(gateway.url("/orders/download"), headers=read) as response:
            assert response.status == 200
            async for chunk in response.content.iter_chunked(CHUNK):
                received += len(chunk)
                digest.update(chunk)
        assert received == TOTAL
        assert digest.hexdigest() == expected

        peak = peak_rss_bytes(gateway.pid)
        assert peak < PEAK_RSS_LIMIT, f"gateway peak RSS {peak / MIB:.1f} MiB"
    (upload, download) = gateway.events("access")
    assert upload["http.request.body.bytes"] == TOTAL
    assert download["http.response.body.bytes"] == TOTAL
