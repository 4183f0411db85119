"""Live configuration: watch the config directory (and take SIGHUP), validate, swap atomically.

A file watch on routes.yaml itself misses editors' rename-on-save and Kubernetes ConfigMap
updates (which swap a ``..data`` symlink), so the *directories* holding the config files are
watched, and every event leads to a full load. A new table is validated completely before it is
swapped in as one value; requests in flight finish under the table they started with. An invalid
edit keeps the last good table and logs every problem.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path

import watchfiles

from gateway.config import Config, ConfigError, load
from gateway.jwks.remote import RemoteKeys
from gateway.server.handler import Door, Policy
from gateway.server.key_events import LoggedKeyEvents
from gateway.server.logs import get_logger
from gateway.server.metrics import Metrics

__all__ = ["RESTART_ONLY", "ConfigReloader", "watched_directories"]

_log = get_logger()
# Fields a running process cannot change: the listeners are bound already.
RESTART_ONLY = ("listen", "admin", "tls", "drain_timeout", "log_level")


class ConfigReloader:
    """Reloads the configuration into a running `Door`."""

    def __init__(
        self,
        door: Door,
        metrics: Metrics,
        build: Callable[[Config, RemoteKeys], Policy],
        *,
        environ: Mapping[str, str] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._door = door
        self._metrics = metrics
        self._build = build
        self._environ = environ
        self._clock = clock
        self._lock = asyncio.Lock()
        # Called with each applied config (e.g. to reload the TLS certificate in place).
        self.on_applied: list[Callable[[Config], Awaitable[None]]] = []

    async def reload(self, trigger: str) -> bool:
        """Load, validate and swap in the configuration; False if it was refused or unchanged."""
        async with self._lock:
            current = self._door.policy
            try:
                config = await asyncio.to_thread(load, current.config.file, self._environ)
            except ConfigError as exc:
                self._metrics.config_reloads.labels("rejected").inc()
                _log.error(
                    "config_reload",
                    result="rejected",
                    trigger=trigger,
                    version=current.config.version,
                    problems=[str(issue) for issue in exc.issues],
                )
                return False
            if config.version == current.config.version:
                # An operator's SIGHUP deserves an answer; editor temp files do not.
                log = _log.info if trigger == "sighup" else _log.debug
                log("config_reload", result="unchanged", trigger=trigger, version=config.version)
                return False
            await self._swap(current, config, trigger)
            return True

    async def _swap(self, current: Policy, config: Config, trigger: str) -> None:
        old = current.config
        restart = [name for name in RESTART_ONLY if getattr(config, name) != getattr(old, name)]
        remote_keys = current.remote_keys
        if config.issuers != old.issuers or config.jwks != old.jwks:
            remote_keys = RemoteKeys(
                config.issuers, config.jwks, events=LoggedKeyEvents(self._metrics)
            )
            await remote_keys.start()
        self._door.policy = self._build(config, remote_keys)
        if remote_keys is not current.remote_keys:
            await current.remote_keys.stop()
        self._metrics.config_reloads.labels("applied").inc()
        self._metrics.set_config_version(config.version, self._clock())
        _log.info(
            "config_reload",
            result="applied",
            trigger=trigger,
            version=config.version,
            previous_version=old.version,
            routes=len(config.routes.routes),
        )
        if restart:
            _log.warning("config_restart_required", fields=restart, version=config.version)
        for hook in self.on_applied:
            await hook(config)

    async def watch(self, stop: asyncio.Event) -> None:
        """Reload whenever anything changes in the directories holding the config files."""
        directories = watched_directories(self._door.policy.config)
        async for _ in watchfiles.awatch(
            *directories, stop_event=stop, debounce=300, step=50, recursive=False
        ):
            await self.reload("file_change")


def watched_directories(config: Config) -> list[Path]:
    """The directories a reload watches: the config files' and the TLS certificate's."""
    directories = {config.file.parent, config.routes.file.parent}
    if config.tls is not None:
        directories |= {config.tls.cert.parent, config.tls.key.parent}
    return sorted(directories)
