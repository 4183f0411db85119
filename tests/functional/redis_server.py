"""A real redis-server on a free loopback port, for the shared rate-limit tests.

`RedisServer` runs the Debian ``redis-server`` binary with no persistence, and can be stopped
and started again on the same port (Redis going away mid-run, then coming back). Without the
binary the tests are skipped with the reason, except under ``CI=true``, where they fail:
scripts/test.sh installs redis-server when CI runs as root.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import time
from pathlib import Path

import pytest

from tests.functional.gateway_process import free_port

__all__ = ["RedisServer", "redis_binary"]

START_TIMEOUT = 10.0


def redis_binary() -> str:
    """The redis-server executable: skips the test when missing, fails it under CI=true."""
    found = shutil.which("redis-server") or (
        "/usr/bin/redis-server" if Path("/usr/bin/redis-server").exists() else None
    )
    if found is None:
        message = "redis-server is not installed (apt-get install redis-server)"
        if os.environ.get("CI") == "true":
            pytest.fail(message + "; CI must have it (scripts/test.sh installs it)")
        pytest.skip(message)
    return found


class RedisServer:
    """A redis-server child process on 127.0.0.1:``port``."""

    def __init__(self, binary: str, directory: Path) -> None:
        self.binary = binary
        self.directory = directory
        self.port = free_port()
        self.process: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        """The redis:// URL the gateway is given."""
        return f"redis://127.0.0.1:{self.port}/0"

    async def start(self) -> None:
        """Start it (again) on the same port and wait until it accepts commands."""
        self.process = await asyncio.create_subprocess_exec(
            self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
            "--appendonly", "no", "--dir", str(self.directory), "--protected-mode", "no",
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + START_TIMEOUT
        while not await self._pong():
            assert self.process.returncode is None, "redis-server exited at start"
            assert time.monotonic() < deadline, "redis-server did not answer PING"
            await asyncio.sleep(0.05)

    async def stop(self) -> None:
        """Stop it for good (SIGKILL: a crash, not a goodbye) and wait for the exit."""
        if self.process is not None and self.process.returncode is None:
            self.process.kill()
            await self.process.wait()

    async def command(self, *words: str) -> bytes:
        """Send one inline command and return the raw reply line(s)."""
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        try:
            writer.write((" ".join(words) + "\r\n").encode())
            await writer.drain()
            async with asyncio.timeout(2):
                return await reader.readline()
        finally:
            writer.close()

    async def _pong(self) -> bool:
        try:
            return (await self.command("PING")).startswith(b"+PONG")
        except OSError:
            return False
