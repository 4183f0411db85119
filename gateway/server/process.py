"""Running the gateway as processes: the event loop choice, and N workers sharing one port.

`gateway run --workers N` starts N worker processes that each bind the public (and admin) port
with ``SO_REUSEPORT``, so the kernel spreads connections across them. Each worker is a whole
gateway (own JWKS cache, own metrics); the supervisor forwards SIGTERM/SIGINT/SIGHUP to every
worker and exits when they have all drained.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable

from gateway.config import Config, ConfigError, load
from gateway.server.logs import configure, get_logger

__all__ = ["LOOPS", "event_loop_factory", "run_gateway"]

LOOPS = ("auto", "asyncio", "uvloop")
_REUSE_PORT_ENV = "GATEWAY_WORKER_REUSE_PORT"


def event_loop_factory(choice: str) -> tuple[str, Callable[[], asyncio.AbstractEventLoop]]:
    """The event loop to serve on: uvloop when installed (``auto``) or asked for."""
    if choice == "uvloop" or (choice == "auto" and importlib.util.find_spec("uvloop")):
        import uvloop

        return "uvloop", uvloop.new_event_loop
    return "asyncio", asyncio.new_event_loop


# A worker exits within drain_timeout plus the server's 1 s margin; this adds Python's own exit.
_WORKER_EXIT = 3.0


def run_gateway(config_path: str, *, loop: str = "auto", workers: int = 1) -> int:
    """`gateway run`: serve until a signal, then drain; exit status for the shell."""
    configure("info")
    try:
        config = load(config_path)
    except ConfigError as exc:
        get_logger().error(
            "config_rejected", **{"gateway.config.problems": [str(issue) for issue in exc.issues]}
        )
        return 1
    configure(config.log_level)
    if workers > 1:
        return _supervise(config_path, loop, workers, grace=config.drain_timeout + _WORKER_EXIT)
    return _serve_one(config, loop, reuse_port=os.environ.get(_REUSE_PORT_ENV) == "1")


def _serve_one(config: Config, loop: str, *, reuse_port: bool) -> int:
    from gateway.server.aiohttp_overrides import PurePythonParser
    from gateway.server.app import serve

    loop_name, factory = event_loop_factory(loop)
    get_logger().info("event_loop", **{"gateway.event_loop": loop_name})
    try:
        with asyncio.Runner(loop_factory=factory) as runner:
            runner.run(serve(config, reuse_port=reuse_port))
    except PurePythonParser as exc:
        get_logger().error("startup_failed", **{"error.message": str(exc)})
        return 1
    except OSError as exc:
        get_logger().error("startup_failed", **{"error.message": exc.strerror or str(exc)})
        return 1
    return 0


def _supervise(config_path: str, loop: str, workers: int, *, grace: float) -> int:
    """Run ``workers`` worker processes; on SIGTERM/SIGINT forward it, and kill any worker still
    running ``grace`` seconds later (each bounds its own shutdown, so only a hung one is)."""
    log = get_logger()
    command = [sys.executable, "-m", "gateway", "run", "-c", config_path, "--loop", loop]
    environ = {**os.environ, _REUSE_PORT_ENV: "1"}
    children = [subprocess.Popen(command, env=environ) for _ in range(workers)]  # noqa: S603
    log.info(
        "workers_started",
        **{"gateway.workers": workers, "gateway.worker.pids": [child.pid for child in children]},
    )
    stopping = False
    kill_at = float("inf")

    def forward(signum: int, _: object) -> None:
        nonlocal stopping, kill_at
        if signum in (signal.SIGTERM, signal.SIGINT) and not stopping:
            stopping = True
            kill_at = time.monotonic() + grace
        for child in children:
            if child.poll() is None:
                child.send_signal(signum)

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, forward)
    status = 0
    while any(child.poll() is None for child in children):
        for child in children:
            code = child.poll()
            if code is not None and not stopping:
                # A worker died on its own: stop the rest and let the orchestrator restart us.
                log.error(
                    "worker_exited",
                    **{"gateway.worker.pid": child.pid, "gateway.worker.exit_code": code},
                )
                status = 1
                forward(signal.SIGTERM, None)
        if time.monotonic() > kill_at:
            hung = [child.pid for child in children if child.poll() is None]
            log.error(
                "workers_killed", **{"gateway.worker.pids": hung, "gateway.worker.grace_s": grace}
            )
            for child in children:
                if child.poll() is None:
                    child.kill()
            kill_at = float("inf")
            status = 1
        time.sleep(0.2)
    codes = [child.returncode for child in children]
    log.info("workers_stopped", **{"gateway.worker.exit_codes": codes})
    return status or int(any(codes))
