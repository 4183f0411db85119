"""Run ``gateway run`` as a child process on free loopback ports, for functional tests.

`running_gateway` writes a config directory, starts ``python -m gateway run -c <path>`` with the
dev secret in its environment, waits until the admin ``/readyz`` answers 200 and always stops the
process afterwards (SIGTERM, then SIGKILL), whatever happened in the test.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import aiohttp

from tests.support import (
    DEFAULT_GATEWAY,
    DEFAULT_ROUTES,
    DEV_SECRET,
    TestKeys,
    log_line_problems,
    write_config,
)

__all__ = [
    "GatewayProcess",
    "free_port",
    "gateway_yaml",
    "peak_rss_bytes",
    "running_gateway",
    "until_both_ready",
    "wait_for_status",
]

HOST = "127.0.0.1"
READY_TIMEOUT = 20.0
STOP_TIMEOUT = 15.0


def free_port() -> int:
    """A loopback port that was free a moment ago (bound to port 0, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


def gateway_yaml(*, listen_port: int, admin_port: int, drain_timeout: str = "10s") -> str:
    """`tests.support.DEFAULT_GATEWAY` on fixed ports, as a `write_config` template."""
    listen_line = "listen: {{host: 127.0.0.1, port: 0}}"
    admin_line = "admin: {{host: 127.0.0.1, port: 0}}"
    assert listen_line in DEFAULT_GATEWAY
    assert admin_line in DEFAULT_GATEWAY
    # Doubled braces: write_config runs str.format over the result.
    return (
        DEFAULT_GATEWAY.replace(listen_line, f"listen: {{{{host: {HOST}, port: {listen_port}}}}}")
        .replace(admin_line, f"admin: {{{{host: {HOST}, port: {admin_port}}}}}")
        .replace("tokens:\n", f"drain_timeout: {drain_timeout}\ntokens:\n")
    )


def peak_rss_bytes(pid: int) -> int:
    """The peak resident set size of a live process (``VmHWM`` in /proc/<pid>/status)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            value, unit = line.split()[1:3]
            assert unit == "kB", line
            return int(value) * 1024
    raise AssertionError(f"no VmHWM in /proc/{pid}/status")


async def wait_for_status(url: str, status: int, *, within: float) -> None:
    """Poll ``url`` until it answers ``status`` (connection errors count as not yet)."""
    deadline = time.monotonic() + within
    last: object = None
    async with aiohttp.ClientSession() as session:
        while True:
            try:
                async with session.get(url) as response:
                    await response.read()
                    last = response.status
                    if response.status == status:
                        return
            except aiohttp.ClientError as exc:
                last = exc
            assert time.monotonic() < deadline, f"{url} never answered {status} (last: {last!r})"
            await asyncio.sleep(0.05)


@dataclass
class GatewayProcess:
    """A running ``gateway run`` child process and where its output goes."""

    process: asyncio.subprocess.Process
    listen_port: int
    admin_port: int
    stdout_path: Path
    stderr_path: Path

    @property
    def pid(self) -> int:
        """The gateway's process id."""
        return self.process.pid

    def url(self, path: str) -> str:
        """A URL on the public listener."""
        return f"http://{HOST}:{self.listen_port}{path}"

    def admin_url(self, path: str) -> str:
        """A URL on the admin listener."""
        return f"http://{HOST}:{self.admin_port}{path}"

    def stdout_lines(self) -> list[str]:
        """Every non-empty line the gateway wrote to stdout so far."""
        return [line for line in self.stdout_path.read_text().splitlines() if line.strip()]

    def stderr_text(self) -> str:
        """Everything the gateway wrote to stderr so far."""
        return self.stderr_path.read_text()

    def json_lines(self) -> list[dict[str, Any]]:
        """Every stdout line parsed as a JSON object (a line that is not one fails the test)."""
        parsed = []
        for line in self.stdout_lines():
            try:
                value = json.loads(line)
            except ValueError:
                raise AssertionError(f"stdout line is not JSON: {line!r}") from None
            assert isinstance(value, dict), f"stdout line is not a JSON object: {line!r}"
            # The same contract as in-process: catalogue names, declared types (ECS + gateway.*).
            assert not log_line_problems(value), (log_line_problems(value), line)
            parsed.append(value)
        return parsed

    def events(self, action: str) -> list[dict[str, Any]]:
        """The stdout lines whose ``event.action`` is ``action``."""
        return [line for line in self.json_lines() if line.get("event.action") == action]

    async def wait(self) -> int:
        """Wait (up to STOP_TIMEOUT) for the process to exit; its exit code."""
        async with asyncio.timeout(STOP_TIMEOUT):
            return await self.process.wait()


async def _wait_ready(gateway: GatewayProcess) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    url = gateway.admin_url("/readyz")
    async with aiohttp.ClientSession() as session:
        while True:
            if gateway.process.returncode is not None:
                raise AssertionError(
                    f"gateway exited with {gateway.process.returncode} before it was ready:\n"
                    f"{gateway.stderr_text()}\n{gateway.stdout_path.read_text()}"
                )
            with contextlib.suppress(aiohttp.ClientError):
                async with session.get(url) as response:
                    await response.read()
                    if response.status == 200:
                        return
            if time.monotonic() > deadline:
                raise AssertionError(f"{url} did not answer 200 within {READY_TIMEOUT}s")
            await asyncio.sleep(0.05)


async def _stop(process: asyncio.subprocess.Process) -> None:
    if process.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        process.send_signal(signal.SIGTERM)
    try:
        await asyncio.wait_for(process.wait(), STOP_TIMEOUT)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()


@contextlib.asynccontextmanager
async def running_gateway(
    directory: Path,
    keys: TestKeys,
    *,
    upstream: str,
    routes: str = DEFAULT_ROUTES,
    drain_timeout: str = "10s",
    workers: int = 1,
    environ: dict[str, str] | None = None,
    stdout_pipe: bool = False,
) -> AsyncIterator[GatewayProcess]:
    """Write a config into ``directory`` and run ``gateway run`` on it (``--workers``, with
    ``environ`` added to the environment) until the block ends. Its stdout is a file, or with
    ``stdout_pipe`` a pipe (as under a container runtime) copied into that file as it comes."""
    listen_port, admin_port = free_port(), free_port()
    while admin_port == listen_port:
        admin_port = free_port()
    template = gateway_yaml(
        listen_port=listen_port, admin_port=admin_port, drain_timeout=drain_timeout
    )
    path = write_config(directory, keys, upstream=upstream, routes=routes, gateway=template)
    stdout_path = directory / "gateway.stdout"
    stderr_path = directory / "gateway.stderr"
    environ = {**os.environ, "ACCESS_TOKEN_SECRET": DEV_SECRET, **(environ or {})}
    options = ["--workers", str(workers)] if workers > 1 else []
    with stdout_path.open("wb") as stdout, stderr_path.open("wb") as stderr:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "gateway", "run", "-c", str(path), *options,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE if stdout_pipe else stdout, stderr=stderr,
            env=environ, cwd=directory,
        )  # fmt: skip
        copy = None
        if process.stdout is not None:
            copy = asyncio.create_task(_copy(process.stdout, stdout))
        try:
            gateway = GatewayProcess(process, listen_port, admin_port, stdout_path, stderr_path)
            await _wait_ready(gateway)
            yield gateway
        finally:
            await _stop(process)
            if copy is not None:
                await copy


async def _copy(pipe: asyncio.StreamReader, file: BinaryIO) -> None:
    """What the gateway writes to its stdout pipe, into ``file`` as it comes."""
    while data := await pipe.read(65536):
        file.write(data)
        file.flush()


async def until_both_ready(gateway: GatewayProcess, workers: int = 2) -> None:
    """Until every worker has logged `startup` (written once its listeners are bound): until
    then the kernel hands every new connection to the workers already listening. /readyz cannot
    tell, since all its answers may come from the first worker up."""

    def serving() -> int:
        return len({line["process.pid"] for line in gateway.events("startup")})

    async with asyncio.timeout(READY_TIMEOUT):
        while serving() < workers:  # noqa: ASYNC110 - the lines are in a file
            await asyncio.sleep(0.02)
