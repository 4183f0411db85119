"""Wiring: the public application, the admin application, and serving both until a signal.

This is the only module that knows how the parts fit together; each part is built from the
validated `Config` here and nowhere else.
"""

from __future__ import annotations

import asyncio
import dataclasses
import signal
import ssl
import time
from collections.abc import AsyncIterator, Callable, Mapping

from aiohttp import web

from gateway.access import access_log_middleware
from gateway.auth.authenticator import Authenticator, KeySource
from gateway.auth.jwks import RemoteKeys
from gateway.config import Config
from gateway.door import Door, Policy
from gateway.logging import get_logger
from gateway.proxy import UpstreamClient
from gateway.routes import RouteTable
from gateway.server import GatewayRunner

__all__ = [
    "DOOR",
    "REMOTE_KEYS",
    "GatewayServer",
    "build_policy",
    "create_admin_app",
    "create_app",
    "serve",
]

DOOR = web.AppKey("door", Door)
REMOTE_KEYS = web.AppKey("remote_keys", RemoteKeys)
_log = get_logger()

# Passed to every listener: explicit, so that no default of aiohttp's decides it for us.
SERVER_SETTINGS: dict[str, object] = {
    "auto_decompress": False,  # forward request bodies byte for byte
    "keepalive_timeout": 75.0,
    "max_line_size": 8190,
    "max_field_size": 8190,
    "max_headers": 128,
}


def build_policy(
    config: Config,
    *,
    key_sources: Mapping[str, KeySource] | None = None,
    clock: Callable[[], float] = time.time,
) -> Policy:
    """Everything the door decides with, from one validated config."""
    authenticator = Authenticator(
        config.issuers, config.tokens, key_sources=key_sources, clock=clock
    )
    return Policy(
        config=config, table=RouteTable.from_config(config.routes), authenticator=authenticator
    )


def create_app(
    config: Config,
    *,
    remote_keys: RemoteKeys | None = None,
    clock: Callable[[], float] = time.time,
) -> web.Application:
    """The public application: the door in front of every upstream."""
    keys = remote_keys or RemoteKeys(config.issuers, config.jwks)
    client = UpstreamClient()
    door = Door(build_policy(config, key_sources=keys.sources, clock=clock), client)
    app = web.Application(middlewares=[access_log_middleware], handler_args=SERVER_SETTINGS)
    app[DOOR] = door
    app[REMOTE_KEYS] = keys

    async def resources(_: web.Application) -> AsyncIterator[None]:
        await client.start()
        await keys.start()
        yield
        await keys.stop()
        await client.close()

    app.cleanup_ctx.append(resources)
    app.router.add_route("*", "/{tail:.*}", door.handle)
    return app


def create_admin_app(serving: asyncio.Event, keys: RemoteKeys) -> web.Application:
    """The admin application: liveness and readiness, never on the public port."""
    app = web.Application()

    async def healthz(_: web.Request) -> web.Response:
        # Liveness never checks dependencies: an IdP outage must not get the process killed.
        return web.json_response({"status": "ok"})

    async def readyz(_: web.Request) -> web.Response:
        ready = serving.is_set() and keys.ready
        body = {
            "status": "ready" if ready else "not_ready",
            "serving": serving.is_set(),
            "issuers": [dataclasses.asdict(state) for state in keys.states()],
        }
        return web.json_response(body, status=200 if ready else 503)

    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    return app


class GatewayServer:
    """The public and admin listeners of one gateway process."""

    def __init__(self, config: Config, *, remote_keys: RemoteKeys | None = None) -> None:
        self.config = config
        self._serving = asyncio.Event()
        app = create_app(config, remote_keys=remote_keys)
        self._public = GatewayRunner(app, access_log=None, shutdown_timeout=config.drain_timeout)
        self._admin = web.AppRunner(
            create_admin_app(self._serving, app[REMOTE_KEYS]), access_log=None
        )

    async def start(self) -> None:
        """Bind both listeners and mark the gateway as serving."""
        await self._public.setup()
        await self._admin.setup()
        config = self.config
        ssl_context = _ssl_context(config) if config.tls else None
        await web.TCPSite(
            self._public, config.listen.host, config.listen.port, ssl_context=ssl_context
        ).start()
        await web.TCPSite(self._admin, config.admin.host, config.admin.port).start()
        self._serving.set()
        _log.info(
            "startup",
            listen=_addresses(self._public),
            admin=_addresses(self._admin),
            routes=len(config.routes.routes),
            issuers=[issuer.name for issuer in config.issuers],
        )

    @property
    def public_port(self) -> int:
        """The bound public port (useful when the config asked for port 0)."""
        return int(self._public.addresses[0][1])

    @property
    def admin_port(self) -> int:
        """The bound admin port."""
        return int(self._admin.addresses[0][1])

    async def stop(self) -> None:
        """Turn not-ready, stop accepting, let in-flight requests finish (up to the drain
        timeout), then close."""
        self._serving.clear()
        _log.info("shutdown", drain_timeout_s=self.config.drain_timeout)
        await self._public.cleanup()
        await self._admin.cleanup()
        _log.info("stopped")


async def serve(config: Config, *, stop: asyncio.Event | None = None) -> None:
    """Serve until SIGTERM/SIGINT (or ``stop``), then drain in-flight requests and return."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    server = GatewayServer(config)
    try:
        await server.start()
        await stop.wait()
    finally:
        await server.stop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)


def _addresses(runner: web.AppRunner) -> list[str]:
    return [str(address) for address in runner.addresses]


def _ssl_context(config: Config) -> ssl.SSLContext:
    assert config.tls is not None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(config.tls.cert, config.tls.key)
    return context
