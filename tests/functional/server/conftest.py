"""Fixtures the server's functional tests share: upstreams that misbehave on purpose."""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections.abc import AsyncIterator, Iterator

import pytest
from aiohttp import web
from pytest_aiohttp import AiohttpServer

from gateway.server.access import RequestRecord
from gateway.server.upstream import _Exchange
from gateway.server.upstream_conn import _NO_PARSER, UpstreamConnection
from tests.raw import fixed_upstream

# The gateway's own per-request and per-connection objects: none may be left to the cyclic
# collector, which the gateway runs rarely (`settle_heap`).
_PER_REQUEST = (RequestRecord, _Exchange)


def _holds_a_request(garbage: object) -> bool:
    if isinstance(garbage, UpstreamConnection):
        # A connection that failed its TLS handshake stays in asyncio's own cycle (the failed
        # future's traceback holds the frame that holds the protocol factory); it holds no
        # request, and its parser was let go. One still holding its parser is the gateway's.
        return garbage._parser is not _NO_PARSER
    return isinstance(garbage, _PER_REQUEST) or type(garbage) is web.BaseRequest


def _in_cycles() -> list[object]:
    """The gateway objects that only the cyclic collector would free, found by a collection."""
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        gc.collect()
        found = [o for o in gc.garbage if _holds_a_request(o)]
    finally:
        gc.garbage.clear()
        gc.set_debug(0)
    return found


@pytest.fixture
def no_request_cycles() -> Iterator[None]:
    """Fail the test if a request left a reference cycle through the gateway's request objects.

    Such a cycle (a kept exception whose traceback holds the frames that hold it, a finished
    task kept by its own coroutine's object) keeps the request, its buffered body and its
    sockets until a full collection; under load that is megabytes per failed request. The
    collector is off for the test so that nothing is freed behind the check's back, and what
    existed before it is frozen: the check looks at this test's objects only (and fast).
    """
    gc.disable()
    gc.freeze()
    try:
        yield
        found = _in_cycles()
    finally:
        gc.unfreeze()
        gc.enable()
    assert not found, f"left to the cyclic collector: {sorted({type(o).__name__ for o in found})}"


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
