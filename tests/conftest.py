"""Shared fixtures: keys, tokens, a recording upstream, and a gateway in front of it."""

from __future__ import annotations

import io
import json
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, cast

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from pytest_aiohttp import AiohttpClient, AiohttpServer

from gateway.compiled import stale_sources
from gateway.config import Config, load
from gateway.server.aiohttp_overrides import GatewayRunner
from gateway.server.app import create_app
from gateway.server.logs import configure
from tests.support import (
    DEFAULT_GATEWAY,
    DEFAULT_ROUTES,
    ENVIRON,
    RecordingUpstream,
    TestKeys,
    TokenFactory,
    log_line_problems,
    write_config,
)

GatewayFactory = Callable[..., Awaitable[TestClient[web.Request, web.Application]]]


class GatewayTestServer(TestServer):
    """A test server that runs the application the way `gateway run` does (GatewayRunner)."""

    async def _make_runner(self, **kwargs: Any) -> GatewayRunner:
        # aiohttp's TestServer asks for handler cancellation (a handler cancelled when its client
        # leaves); `gateway run` leaves aiohttp's default, off, and handles a client that left.
        kwargs.pop("handler_cancellation", None)
        return GatewayRunner(self.app, **kwargs)


def pytest_sessionstart(session: pytest.Session) -> None:
    """Refuse to test a compiled request path older than its source: the extension modules an
    editable install built would run instead of the edited code (setup.py)."""
    stale = stale_sources()
    if stale:
        names = ", ".join(str(path) for path in stale[:5])
        pytest.exit(
            f"compiled modules are older than their sources ({names}): rebuild them with"
            " `.venv/bin/pip install -e .` (scripts/test.sh does), or remove gateway/**/*.so",
            returncode=4,
        )


@pytest.fixture(scope="session")
def keys() -> TestKeys:
    """Keys generated once per test session (RSA generation is slow)."""
    return TestKeys.generate()


@pytest.fixture
def tokens(keys: TestKeys) -> TokenFactory:
    """Mints tokens signed with the configured (or an attacker's) keys."""
    return TokenFactory(keys)


@pytest.fixture
def recorder() -> RecordingUpstream:
    """The recording upstream's state (requests it saw)."""
    return RecordingUpstream()


@pytest.fixture
async def upstream_server(aiohttp_server: AiohttpServer, recorder: RecordingUpstream) -> TestServer:
    """A real recording upstream on 127.0.0.1."""
    return await aiohttp_server(recorder.app())


@pytest.fixture
def make_config(tmp_path: Path, keys: TestKeys) -> Callable[..., Config]:
    """Write a config (default: the spec's sample routes) and load it."""

    def make(
        *, upstream: str = "http://127.0.0.1:9", routes: str = DEFAULT_ROUTES,
        gateway: str = DEFAULT_GATEWAY,
    ) -> Config:  # fmt: skip
        path = write_config(tmp_path, keys, upstream=upstream, routes=routes, gateway=gateway)
        return load(path, ENVIRON)

    return make


@pytest.fixture
def gateway(
    aiohttp_client: AiohttpClient,
    upstream_server: TestServer,
    make_config: Callable[..., Config],
) -> GatewayFactory:
    """Start a real gateway in front of the recording upstream; returns a client for it."""

    async def start(
        *, routes: str = DEFAULT_ROUTES, gateway: str = DEFAULT_GATEWAY
    ) -> TestClient[web.Request, web.Application]:
        upstream = str(upstream_server.make_url("")).rstrip("/")
        config = make_config(upstream=upstream, routes=routes, gateway=gateway)
        client: Any = await aiohttp_client(GatewayTestServer(create_app(config)))
        return cast("TestClient[web.Request, web.Application]", client)

    return start


class LogCapture:
    """Everything the gateway logged during one test, as raw text and as parsed JSON lines."""

    def __init__(self) -> None:
        self.stream = io.StringIO()

    @property
    def text(self) -> str:
        """All output so far."""
        return self.stream.getvalue()

    def lines(self) -> list[dict[str, Any]]:
        """Every line parsed as JSON (a line that is not JSON fails the test)."""
        return [json.loads(line) for line in self.text.splitlines() if line.strip()]

    def events(self, action: str) -> list[dict[str, Any]]:
        """The lines whose ``event.action`` is ``action``."""
        return [line for line in self.lines() if line.get("event.action") == action]


@pytest.fixture(autouse=True)
def log_capture() -> Iterator[LogCapture]:
    """Route the gateway's JSON logging into a buffer for each test."""
    capture = LogCapture()
    configure("debug", capture.stream)
    yield capture
    configure("info")
    # Every line the gateway wrote during the test is one JSON object whose fields are all in
    # the catalogue, each with a value of its declared type (the log contract: ECS or gateway.*).
    for line in capture.text.splitlines():
        parsed = json.loads(line)
        assert isinstance(parsed, dict), line
        assert not log_line_problems(parsed), (log_line_problems(parsed), line)
