"""Wiring: the public application, the admin application, and serving both until a signal.

This is the only module that knows how the parts fit together; each part is built from the
validated `Config` here and nowhere else.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import gc
import signal
import ssl
import time
from collections.abc import AsyncIterator, Callable, Mapping
from typing import TYPE_CHECKING

from aiohttp import web

from gateway.config import Config, LimitsConfig
from gateway.config.tls import TlsError, client_context, load_server_chain, server_context
from gateway.core.authenticator import Authenticator
from gateway.core.routes import RouteTable
from gateway.jwks.remote import RemoteKeys
from gateway.server.access import Accounting
from gateway.server.aiohttp_overrides import (
    HANDLER,
    HEADER_TIMEOUT,
    MAX_CONNECTIONS,
    PARSER_REFUSALS,
    GatewayRunner,
    require_c_parser,
)
from gateway.server.drain import CUT_GRACE, InFlight
from gateway.server.handler import Door, Policy
from gateway.server.heap_trim import HeapTrim
from gateway.server.key_events import LoggedKeyEvents
from gateway.server.logs import batch_lines, get_logger
from gateway.server.metrics import CONTENT_TYPE, Metrics
from gateway.server.ratelimit import Limiting
from gateway.server.redirect import redirect_app
from gateway.server.reload import ConfigReloader
from gateway.server.upstream import UpstreamClient

if TYPE_CHECKING:  # OpenTelemetry is imported only when `tracing:` is configured
    from gateway.server.tracing import Tracing

__all__ = [
    "DOOR",
    "IN_FLIGHT",
    "METRICS",
    "RELOADER",
    "SHUTDOWN_MARGIN",
    "GatewayServer",
    "build_policy",
    "create_admin_app",
    "create_app",
    "serve",
]

DOOR = web.AppKey("door", Door)
METRICS = web.AppKey("metrics", Metrics)
RELOADER = web.AppKey("reloader", ConfigReloader)
IN_FLIGHT = web.AppKey("in_flight", InFlight)
# The whole shutdown takes at most drain_timeout plus this: the drain ends at drain_timeout, and
# cutting what is left and closing every listener and session fit in the margin (deployment grace
# periods must cover it: tests/deploy/test_manifests.py checks the shipped ones).
SHUTDOWN_MARGIN = 1.0
# After the drain every request has answered; connections still busy get this long, then aiohttp
# cancels them (it waits up to twice this).
_STRAGGLER_TIMEOUT = 0.1
# The spans still queued at shutdown get this long to reach the collector (inside the margin).
_TRACING_FLUSH_TIMEOUT = 0.5
_log = get_logger()


def server_settings(limits: LimitsConfig) -> dict[str, object]:
    """What every public connection is served with: explicit, so that no default of aiohttp's
    decides it (its keep-alive default is an hour)."""
    return {
        "auto_decompress": False,  # forward request bodies byte for byte
        "keepalive_timeout": limits.keepalive_timeout,
        "max_line_size": limits.max_line_size,
        "max_field_size": limits.max_field_size,
        "max_headers": limits.max_headers,
        # A refused request's unread body is not drained (aiohttp would read and discard it for
        # up to 10 s): the connection is closed instead.
        "lingering_time": 0,
        # Request bodies move in pieces of up to this size (flow control bounds the memory).
        "read_bufsize": 256 * 1024,
    }


def build_policy(
    config: Config,
    remote_keys: RemoteKeys,
    *,
    clock: Callable[[], float] = time.time,
    limiting: Limiting | None = None,
) -> Policy:
    """Everything the door decides with, from one validated config (rate limits counted in
    ``limiting``, which outlives the policy; None: not enforced)."""
    authenticator = Authenticator(
        config.issuers, config.tokens, key_sources=remote_keys.sources, clock=clock,
        mapped_claims=config.routes.mapped_claims,
    )  # fmt: skip
    return Policy(
        config=config,
        table=RouteTable.from_config(config.routes),
        authenticator=authenticator,
        remote_keys=remote_keys,
        upstream_tls=_upstream_tls(config),
        counter=limiting.counter if limiting is not None else None,
        guard=limiting.guard(config.rate_limits) if limiting is not None else None,
    )


def _upstream_tls(config: Config) -> dict[str, ssl.SSLContext]:
    contexts = {}
    for upstream in config.routes.upstreams.values():
        if upstream.url.scheme != "https":
            continue
        if not upstream.tls_verify:
            _log.warning("upstream_tls_verify_disabled", **{"gateway.upstream.name": upstream.name})
        contexts[upstream.name] = client_context(
            ca=upstream.ca,
            client_cert=upstream.client_cert,
            client_key=upstream.client_key,
            verify=upstream.tls_verify,
        )
    return contexts


def create_app(
    config: Config,
    *,
    metrics: Metrics | None = None,
    watch: bool = False,
    environ: Mapping[str, str] | None = None,
    clock: Callable[[], float] = time.time,
    tracing: Tracing | None = None,
) -> web.Application:
    """The public application: the door in front of every upstream.

    With ``watch``, changes in the config directories are reloaded while it runs; reloads read
    ``${VAR}`` values from ``environ`` (default: the process environment). ``tracing`` replaces
    the tracer built from ``config.tracing`` (tests pass one with an in-memory exporter).
    """
    metrics = metrics or Metrics()
    limits = config.limits
    client = UpstreamClient(
        pool_size=limits.upstream_pool_size,
        pool_size_per_host=limits.upstream_pool_size_per_host,
        connect_timeout=limits.upstream_connect_timeout,
    )

    limiting = Limiting(config.rate_limits, metrics)

    def build(new_config: Config, remote_keys: RemoteKeys) -> Policy:
        return build_policy(new_config, remote_keys, clock=clock, limiting=limiting)

    if tracing is None and config.tracing is not None:
        # Imported here, not at the top: without `tracing:` OpenTelemetry is never loaded.
        from gateway.server.tracing import Tracing

        tracing = Tracing(config.tracing)
    in_flight = InFlight()
    accounting = Accounting(metrics)
    door = Door(
        build(config, RemoteKeys(config.issuers, config.jwks, events=LoggedKeyEvents(metrics))),
        client,
        accounting,
        in_flight,
        hsts=config.tls.hsts if config.tls is not None else None,
        tracing=tracing,
    )
    reloader = ConfigReloader(door, metrics, build, environ=environ)
    metrics.set_config_version(config.version, time.time())
    app = web.Application(handler_args=server_settings(limits))
    # Every request goes to the door as aiohttp's low-level handler (GatewayRunner): no router,
    # no middleware. The door adds HSTS itself and sends 100 Continue only once it has decided.
    app[HANDLER] = door.handle
    app[DOOR] = door
    app[METRICS] = metrics
    app[MAX_CONNECTIONS] = limits.max_connections
    app[HEADER_TIMEOUT] = limits.header_timeout
    app[PARSER_REFUSALS] = accounting.count_unparsed
    app[RELOADER] = reloader
    app[IN_FLIGHT] = in_flight

    async def resources(_: web.Application) -> AsyncIterator[None]:
        await client.start()
        await door.policy.remote_keys.start()
        stop_watching = asyncio.Event()
        watcher = asyncio.create_task(reloader.watch(stop_watching)) if watch else None
        yield
        stop_watching.set()
        if watcher is not None:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
        await door.policy.remote_keys.stop()
        await client.close()
        await limiting.close()
        if tracing is not None:
            await tracing.close(within=_TRACING_FLUSH_TIMEOUT)

    app.cleanup_ctx.append(resources)
    return app


def create_admin_app(serving: asyncio.Event, door: Door, metrics: Metrics) -> web.Application:
    """The admin application: liveness, readiness and metrics, never on the public port."""
    app = web.Application()

    def ready() -> bool:
        return serving.is_set() and door.policy.remote_keys.ready

    if metrics.multiprocess:
        # A function gauge is read only in the process that is scraped; with workers, each
        # writes its readiness to the shared files instead (every scrape, and every second).
        app.cleanup_ctx.append(_every_second(lambda: metrics.ready.set(float(ready()))))
    else:
        metrics.ready.set_function(lambda: float(ready()))

    async def healthz(_: web.Request) -> web.Response:
        # Liveness never checks dependencies: an IdP outage must not get the process killed.
        return web.json_response({"status": "ok"})

    async def readyz(_: web.Request) -> web.Response:
        policy = door.policy
        keys = policy.remote_keys
        is_ready = ready()
        body = {
            "status": "ready" if is_ready else "not_ready",
            "serving": serving.is_set(),
            "config_version": policy.config.version,
            "issuers": [dataclasses.asdict(state) for state in keys.states()],
        }
        return web.json_response(body, status=200 if is_ready else 503)

    async def metrics_handler(_: web.Request) -> web.Response:
        if metrics.multiprocess:
            metrics.ready.set(float(ready()))
        response = web.Response(body=metrics.render())
        response.headers["Content-Type"] = CONTENT_TYPE
        return response

    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics_handler)
    return app


def _every_second(
    tick: Callable[[], None],
) -> Callable[[web.Application], AsyncIterator[None]]:
    """A cleanup context that calls ``tick`` now and every second while the app runs."""

    async def run(_: web.Application) -> AsyncIterator[None]:
        async def loop() -> None:
            while True:
                tick()
                await asyncio.sleep(1.0)

        task = asyncio.create_task(loop())
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    return run


class GatewayServer:
    """The listeners of one gateway process: public (HTTP or HTTPS), plain-HTTP redirect, admin."""

    def __init__(self, config: Config, *, watch: bool = True, reuse_port: bool = False) -> None:
        require_c_parser()
        self.config = config
        self._reuse_port = reuse_port or None
        self._serving = asyncio.Event()
        tls = config.tls
        self._ssl = server_context(tls.cert, tls.key) if tls else None
        app = create_app(config, watch=watch)
        self.reloader = app[RELOADER]
        self.reloader.on_applied.append(self._reload_certificate)
        self._in_flight = app[IN_FLIGHT]
        # The drain is ours (stop); aiohttp's own shutdown wait only meets stragglers.
        self._public = GatewayRunner(app, access_log=None, shutdown_timeout=_STRAGGLER_TIMEOUT)
        # GatewayRunner for its parser-error answer (as the redirect listener's, below).
        self._admin = GatewayRunner(
            create_admin_app(self._serving, app[DOOR], app[METRICS]),
            access_log=None,
            shutdown_timeout=_STRAGGLER_TIMEOUT,
        )
        self._redirect: web.AppRunner | None = None

    async def start(self) -> None:
        """Bind every listener and mark the gateway as serving."""
        config = self.config
        await self._public.setup()
        await web.TCPSite(
            self._public,
            config.listen.host,
            config.listen.port,
            ssl_context=self._ssl,
            reuse_port=self._reuse_port,
        ).start()
        if config.tls is not None and config.tls.http_redirect is not None:
            # GatewayRunner for its parser-error answer: aiohttp's own quotes the offending
            # request bytes (a token among them) in the body and in an error log's traceback.
            self._redirect = GatewayRunner(
                redirect_app(self.public_port),
                access_log=None,
                shutdown_timeout=_STRAGGLER_TIMEOUT,
            )
            await self._redirect.setup()
            redirect = config.tls.http_redirect
            await web.TCPSite(self._redirect, redirect.host, redirect.port).start()
        await self._admin.setup()
        await web.TCPSite(
            self._admin, config.admin.host, config.admin.port, reuse_port=self._reuse_port
        ).start()
        self._serving.set()
        _log.info(
            "startup",
            **{
                "gateway.config.version": config.version,
                "gateway.listen.addresses": _addresses(self._public),
                "gateway.listen.tls": self._ssl is not None,
                "gateway.redirect.addresses": _addresses(self._redirect)
                if self._redirect
                else None,
                "gateway.admin.addresses": _addresses(self._admin),
                "gateway.config.routes": len(config.routes.routes),
                "gateway.config.issuers": [issuer.name for issuer in config.issuers],
            },
        )

    @property
    def public_port(self) -> int:
        """The bound public port (useful when the config asked for port 0)."""
        return int(self._public.addresses[0][1])

    @property
    def admin_port(self) -> int:
        """The bound admin port."""
        return int(self._admin.addresses[0][1])

    @property
    def redirect_port(self) -> int | None:
        """The bound plain-HTTP redirect port, if there is one."""
        return int(self._redirect.addresses[0][1]) if self._redirect else None

    async def stop(self) -> None:
        """Turn not-ready, stop accepting, let in-flight requests finish until the drain deadline,
        cut the rest (each still answered and logged), then close: all of it within
        ``drain_timeout`` plus `SHUTDOWN_MARGIN`."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        deadline = started + self.config.drain_timeout
        self._serving.clear()
        _log.info(
            "shutdown",
            **{
                "gateway.shutdown.drain_timeout_s": self.config.drain_timeout,
                "gateway.shutdown.in_flight": len(self._in_flight),
            },
        )
        runners = [runner for runner in (self._redirect, self._public) if runner is not None]
        for runner in runners:
            for site in list(runner.sites):
                await site.stop()  # no new connections
        if self._public.server is not None:
            # Idle keep-alive connections close now; busy ones once their response is out.
            self._public.server.pre_shutdown()
        cut = await self._in_flight.drain(deadline)
        try:
            async with asyncio.timeout(SHUTDOWN_MARGIN - CUT_GRACE):
                for runner in (*runners, self._admin):
                    await runner.cleanup()
        except TimeoutError:
            # Something would not close in time (a stuck session, a hook): the process exits
            # anyway, as promised; what was left is dropped with the event loop.
            _log.error(
                "shutdown_cleanup_timeout",
                **{"gateway.shutdown.cleanup_timeout_s": SHUTDOWN_MARGIN - CUT_GRACE},
            )
        _log.info(
            "stopped",
            **{
                "gateway.shutdown.requests_cut": cut,
                "event.duration": round((loop.time() - started) * 1e9),
            },
        )

    async def _reload_certificate(self, config: Config) -> None:
        """New handshakes get the certificate on disk; established connections keep theirs."""
        if self._ssl is None or config.tls is None:
            return
        try:
            load_server_chain(self._ssl, config.tls.cert, config.tls.key)
        except TlsError as exc:
            _log.error("tls_reload_failed", **{"error.message": str(exc)})
            return
        _log.info("tls_reloaded", **{"gateway.tls.cert": str(config.tls.cert)})


async def serve(
    config: Config, *, stop: asyncio.Event | None = None, reuse_port: bool = False
) -> None:
    """Serve until SIGTERM/SIGINT (or ``stop``), reload on SIGHUP, then drain and return."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    server = GatewayServer(config, reuse_port=reuse_port)
    reloads: set[asyncio.Task[bool]] = set()

    def on_hangup() -> None:
        task = asyncio.create_task(server.reloader.reload("sighup"))
        reloads.add(task)
        task.add_done_callback(reloads.discard)

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    loop.add_signal_handler(signal.SIGHUP, on_hangup)
    batch_lines(loop)
    trim: HeapTrim | None = None
    try:
        await server.start()
        settle_heap()
        trim = HeapTrim.start(loop)
        await stop.wait()
    finally:
        if trim is not None:
            trim.cancel()
        await server.stop()
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            loop.remove_signal_handler(signum)
        batch_lines(None)  # the last turn's lines


# The young generation is collected every GC_THRESHOLD[0] container allocations. Python's default
# (700) runs a collection every few requests (each request allocates some hundreds of dicts,
# lists and frames, nearly all freed by reference counting); 10,000 runs one every dozen or so.
GC_THRESHOLD = (10_000, 50, 100)


def settle_heap() -> None:
    """Once serving: move everything built at start-up (modules, config, keys, the app) out of
    the collector's reach, and collect the young generation less often.

    Without this a full collection walks every start-up object (about 60,000 here, some 40 ms on
    this kind of machine) every few thousand requests, and the requests queued behind it set the
    p99; the objects frozen are long-lived anyway, and reference counting still frees any that
    go. Measured under wrk (RS256, 50 connections, one core): p99 47-60 ms -> 26-31 ms, young
    collections ~15 us -> <1 us a request.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLD)


def _addresses(runner: web.AppRunner) -> list[str]:
    return [host_port(address) for address in runner.addresses]


def host_port(address: object) -> str:
    """A socket address as ``host:port`` (``[::1]:8080`` for IPv6); anything else (a Unix
    socket path) as its text."""
    if isinstance(address, tuple) and len(address) >= 2:
        host, port = address[0], address[1]
        return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"
    return str(address)
