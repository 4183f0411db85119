"""Fixtures the server's functional tests share: upstreams that misbehave on purpose."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from pytest_aiohttp import AiohttpServer

from tests.raw import fixed_upstream


@pytest.fixture
async def stalling_upstream(aiohttp_server: AiohttpServer) -> AsyncIterator[str]:
    """An upstream that answers only when the test ends (or after 5 s): slower than any route
    timeout the tests set. Yields its base URL."""
    release = asyncio.Event()

    async def stall(_: web.Request) -> web.Response:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(release.wait(), timeout=5)
        return web.Response(text="too late")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", stall)
    server = await aiohttp_server(app)
    yield str(server.make_url("")).rstrip("/")
    release.set()


@pytest.fixture
async def resetting_upstream() -> AsyncIterator[str]:
    """An upstream that accepts each connection, reads the request and hangs up without a word."""
    async with fixed_upstream(b"") as (_, url):
        yield url


@pytest.fixture
async def garbage_upstream() -> AsyncIterator[str]:
    """An upstream that answers with bytes that are not HTTP."""
    async with fixed_upstream(b"SSH-2.0-OpenSSH_9.6\r\n\r\n") as (_, url):
        yield url
