"""Running the gateway as processes: the event loop choice, and N workers sharing one port.

`gateway run --workers N` starts N worker processes that each bind the public (and admin) port
with ``SO_REUSEPORT``, so the kernel spreads connections across them. Each worker is a whole
gateway (own JWKS cache, own counters); the supervisor forwards SIGTERM/SIGINT/SIGHUP to every
worker and exits when they have all drained. It also gives the workers a fresh metrics directory
(``PROMETHEUS_MULTIPROC_DIR``) for the run, so that whichever worker answers a scrape reports
the whole group, tells prometheus_client when a worker has gone, and removes the directory at
the end.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable

from gateway.compiled import request_path_compiled
from gateway.config import Config, ConfigError, load
from gateway.server.logs import configure, get_logger

__all__ = ["LOOPS", "event_loop_factory", "run_gateway"]

LOOPS = ("auto", "asyncio", "uvloop")
_REUSE_PORT_ENV = "GATEWAY_WORKER_REUSE_PORT"
# prometheus_client's switch to multiprocess mode (gateway.server.metrics.MULTIPROC_ENV; not
# imported from there, which would load prometheus_client before the variable is settled).
_MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


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
    worker = os.environ.get(_REUSE_PORT_ENV) == "1"
    if not worker:
        # Multiprocess metrics are the supervisor's: in a lone process a leftover directory
        # (or a reused pid's file in it) would count an earlier run's values as this one's.
        for name in (_MULTIPROC_ENV, _MULTIPROC_ENV.lower()):
            os.environ.pop(name, None)
    return _serve_one(config, loop, reuse_port=worker)


def _serve_one(config: Config, loop: str, *, reuse_port: bool) -> int:
    from gateway.server.aiohttp_overrides import PurePythonParser
    from gateway.server.app import serve

    loop_name, factory = event_loop_factory(loop)
    get_logger().info(
        "event_loop",
        **{"gateway.event_loop": loop_name, "gateway.compiled": request_path_compiled()},
    )
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
    command = [sys.executable, "-m", "gateway", "run", "-c", config_path, "--loop", loop]
    # A fresh directory per run (under the operator's PROMETHEUS_MULTIPROC_DIR when set, e.g. a
    # writable volume): files left by an earlier run would be added to this one's counters.
    metrics_dir = tempfile.mkdtemp(prefix="gateway-metrics-", dir=os.environ.get(_MULTIPROC_ENV))
    environ = {**os.environ, _REUSE_PORT_ENV: "1", _MULTIPROC_ENV: metrics_dir}
    environ.pop(_MULTIPROC_ENV.lower(), None)
    try:
        return _run_workers(command, environ, workers, grace=grace, metrics_dir=metrics_dir)
    finally:
        shutil.rmtree(metrics_dir, ignore_errors=True)


def _run_workers(
    command: list[str], environ: dict[str, str], workers: int, *, grace: float, metrics_dir: str
) -> int:
    log = get_logger()
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
    gone: set[int] = set()
    while any(child.poll() is None for child in children):
        for child in children:
            code = child.poll()
            if code is not None and child.pid not in gone:
                gone.add(child.pid)
                _forget_worker(child.pid, metrics_dir)
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
    for child in children:
        if child.pid not in gone:
            _forget_worker(child.pid, metrics_dir)
    log.info("workers_stopped", **{"gateway.worker.exit_codes": codes})
    return status or int(any(codes))


def _forget_worker(pid: int, metrics_dir: str) -> None:
    """A worker has exited: its live gauges (in flight, ready, ...) stop counting; its counters
    stay in the totals, as counters must."""
    from prometheus_client.multiprocess import mark_process_dead

    mark_process_dead(pid, metrics_dir)  # type: ignore[no-untyped-call]
