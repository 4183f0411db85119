"""`gateway run` reloads on SIGHUP: the signal reaches the reloader and is answered."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

import pytest

from tests.functional.gateway_process import running_gateway
from tests.support import TestKeys

pytestmark = pytest.mark.slow


async def test_sighup_triggers_a_reload(tmp_path: Path, keys: TestKeys) -> None:
    """A SIGHUP to a running gateway produces a config_reload event with trigger sighup."""
    async with running_gateway(tmp_path, keys, upstream="http://127.0.0.1:9") as gateway:
        gateway.process.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 5
        while not gateway.events("config_reload"):
            assert time.monotonic() < deadline, "no config_reload event after SIGHUP"
            await asyncio.sleep(0.05)
        (event,) = gateway.events("config_reload")
        assert event["gateway.reload.trigger"] == "sighup"
        assert event["gateway.reload.result"] == "unchanged"
        assert gateway.process.returncode is None  # SIGHUP does not stop it
