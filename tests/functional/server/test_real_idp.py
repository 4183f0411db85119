"""End to end with a real OpenID provider (oauth2-mock-server, a Node.js package) on 127.0.0.1:
a client-credentials token validated through discovery passes, and a key rotation at the
provider needs no gateway restart."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, cast

import aiohttp
import jwt
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from pytest_aiohttp import AiohttpClient, AiohttpServer

from gateway.config import load
from gateway.server.app import create_app
from tests.conftest import GatewayTestServer
from tests.support import (
    DEFAULT_ROUTES,
    ENVIRON,
    RecordingUpstream,
    TestKeys,
    gateway_config,
    write_config,
)

pytestmark = pytest.mark.slow

IDP_DIR = Path(__file__).resolve().parents[2] / "idp"


@pytest.fixture
def node() -> str:
    """The node binary; CI must have it (the test may only be skipped outside CI)."""
    found = shutil.which("node")
    installed = (IDP_DIR / "node_modules" / "oauth2-mock-server").is_dir()
    if found is None or not installed:
        if os.environ.get("CI"):
            pytest.fail("node and tests/idp/node_modules are required in CI (scripts/test.sh)")
        pytest.skip("node or tests/idp/node_modules missing (scripts/test.sh installs them)")
    return found


class Provider:
    """The running provider process."""

    def __init__(self, process: asyncio.subprocess.Process, issuer: str) -> None:
        self.process = process
        self.issuer = issuer

    async def command(self, line: str) -> dict[str, Any]:
        """Send a control line and read the provider's JSON answer."""
        assert self.process.stdin is not None
        assert self.process.stdout is not None
        self.process.stdin.write(line.encode() + b"\n")
        await self.process.stdin.drain()
        answer = await asyncio.wait_for(self.process.stdout.readline(), 10)
        return cast("dict[str, Any]", json.loads(answer))

    async def token(self, scope: str) -> str:
        """A token from the client-credentials grant of the provider's token endpoint."""
        form = {"grant_type": "client_credentials", "scope": scope, "aud": "example-api"}
        auth = {"Authorization": aiohttp.encode_basic_auth("client-1", "secret-1")}
        async with (
            aiohttp.ClientSession() as session,
            session.post(f"{self.issuer}/token", data=form, headers=auth) as response,
        ):
            assert response.status == 200
            return cast("str", (await response.json())["access_token"])


@pytest.fixture
async def provider(node: str) -> AsyncIterator[Provider]:
    """Start the provider on a free loopback port and stop it afterwards."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = await asyncio.create_subprocess_exec(
        node, str(IDP_DIR / "server.mjs"), str(port),
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        ready = json.loads(await asyncio.wait_for(process.stdout.readline(), 30))
        yield Provider(process, ready["issuer"])
    finally:
        if process.returncode is None:
            process.kill()
        with contextlib.suppress(ProcessLookupError):
            await process.wait()


GATEWAY = gateway_config(
    """\
  - name: provider
    issuer: "PROVIDER"
    discovery: true
    audiences: [example-api]
    algorithms: [RS256]
""",
    extra="",
)


async def test_client_credentials_token_through_discovery_and_rotation(
    provider: Provider,
    aiohttp_server: AiohttpServer,
    aiohttp_client: AiohttpClient,
    tmp_path: Path,
    keys: TestKeys,
) -> None:
    """A provider-issued token passes via discovery; after the provider adds a new signing key,
    tokens signed with it pass too, without a gateway restart."""
    recorder = RecordingUpstream()
    upstream = await aiohttp_server(recorder.app())
    path = write_config(
        tmp_path,
        keys,
        upstream=str(upstream.make_url("")).rstrip("/"),
        routes=DEFAULT_ROUTES,
        gateway=GATEWAY.replace("PROVIDER", provider.issuer),
    )
    client = cast(
        "TestClient[web.Request, web.Application]",
        await aiohttp_client(GatewayTestServer(create_app(load(path, ENVIRON)))),
    )
    token = await provider.token("orders:read")
    response = await client.get("/orders/1", headers={"Authorization": f"Bearer {token}"})
    assert response.status == 200
    assert recorder.last.headers["X-Auth-Scopes"] == "orders:read"
    assert recorder.last.headers["X-Auth-Issuer"] == provider.issuer

    new_kid = (await provider.command("rotate"))["rotated"]
    rotated = [await provider.token("orders:read") for _ in range(4)]
    kids = {jwt.get_unverified_header(t)["kid"] for t in rotated}
    assert new_kid in kids
    for rotated_token in rotated:
        response = await client.get(
            "/orders/1", headers={"Authorization": f"Bearer {rotated_token}"}
        )
        assert response.status == 200

    write_token = await provider.token("orders:write")
    response = await client.get("/orders/1", headers={"Authorization": f"Bearer {write_token}"})
    assert response.status == 403
