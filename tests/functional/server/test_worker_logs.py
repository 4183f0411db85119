"""`gateway run --workers 2` writing to one stdout pipe under concurrent load: every access line
arrives whole, once.

Each worker writes the access lines of one turn of its loop after the first together, in
writes of whole lines of at most PIPE_BUF bytes (`gateway.server.logs.batch_lines`): a pipe
never interleaves such a write with another worker's, and a larger one could be."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from tests.functional.gateway_process import running_gateway, until_both_ready
from tests.support import TestKeys, TokenFactory

pytestmark = pytest.mark.slow

CONNECTIONS = 50
EACH = 20


async def test_concurrent_requests_on_two_workers_log_every_line_whole(
    tmp_path: Path, keys: TestKeys, tokens: TokenFactory, upstream_server: TestServer
) -> None:
    """1,000 requests on 50 keep-alive connections (answered 200 and 401, so lines of two
    sizes), with a User-Agent outside ASCII: as many access lines as requests, each one JSON
    object, each request id once, from both workers."""
    upstream = str(upstream_server.make_url("")).rstrip("/")
    agent = "caf\u00e9-\u6f22\u5b57/" * 40  # 4 bytes a character on average: the bound is bytes
    good = {"Authorization": f"Bearer {tokens.good()}"}
    async with running_gateway(
        tmp_path, keys, upstream=upstream, workers=2, stdout_pipe=True
    ) as gateway:
        await until_both_ready(gateway)

        async def client(number: int) -> list[str]:
            ids = []
            connector = aiohttp.TCPConnector(limit=1)
            async with aiohttp.ClientSession(connector=connector) as session:
                for index in range(EACH):
                    ids.append(f"c{number}-{index}")
                    headers = {**(good if (number + index) % 3 else {}), "User-Agent": agent}
                    headers["X-Request-ID"] = ids[-1]
                    async with session.get(gateway.url(f"/orders/{index}"), headers=headers) as r:
                        await r.read()
                        assert r.status in (200, 401)
            return ids

        clients = await asyncio.gather(*map(client, range(CONNECTIONS)))
        answered = [request_id for ids in clients for request_id in ids]
        async with asyncio.timeout(10):
            while len(gateway.events("access")) < len(answered):  # noqa: ASYNC110 - a file
                await asyncio.sleep(0.05)
        lines = gateway.events("access")  # each stdout line parsed, or the test fails
    assert sorted(line["http.request.id"] for line in lines) == sorted(answered)
    assert len({line["process.pid"] for line in lines}) == 2, "both workers answered"
    assert all(line["user_agent.original"] == agent for line in lines)
