"""Live configuration: watch the config directory (and take SIGHUP), validate, swap atomically.

A file watch on routes.yaml itself misses editors' rename-on-save and Kubernetes ConfigMap
updates (which swap a ``..data`` symlink), so the *directories* holding the config files are
watched, and every event leads to a full load. A new table is validated completely before it is
swapped in as one value; requests in flight finish under the table they started with. An invalid
edit keeps the last good table and logs every problem.

Reloading never dies: whatever a load or a swap raises is a rejected reload (a ``config_reload``
event with the reason) and the last good table stays; the watch loop is supervised, so an
unexpected error in it is logged (``config_watch_failed``), and after a short pause it watches
again and reloads once, to catch any edit made while it was not watching.
"""

from __future__ import annotations

import asyncio
import contextlib
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
RESTART_ONLY = ("listen", "admin", "tls", "drain_timeout", "log_level", "tracing")
# After an unexpected error the watch starts again after this pause, doubling up to the maximum
# while it keeps failing (the first pause is well inside the 3 s reload deadline, so a one-off
# failure costs no edit its deadline).
WATCH_RETRY_MIN = 0.5
WATCH_RETRY_MAX = 5.0


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
        """Load, validate and swap in the configuration; False if it was refused or unchanged.

        Never raises (but for cancellation): any failure is a rejected reload, logged.
        """
        async with self._lock:
            current = self._door.policy
            try:
                config = await asyncio.to_thread(load, current.config.file, self._environ)
            except ConfigError as exc:
                self._rejected(current, trigger, [str(issue) for issue in exc.issues])
                return False
            except Exception as exc:  # e.g. a thread that could not start: still not a crash
                self._rejected(current, trigger, [f"cannot load: {_describe(exc)}"])
                return False
            if config.version == current.config.version:
                # An operator's SIGHUP deserves an answer; editor temp files do not.
                log = _log.info if trigger == "sighup" else _log.debug
                log(
                    "config_reload",
                    **{
                        "gateway.reload.result": "unchanged",
                        "gateway.reload.trigger": trigger,
                        "gateway.config.version": config.version,
                    },
                )
                return False
            try:
                policy = await self._prepare(current, config)
            except Exception as exc:
                self._rejected(current, trigger, [f"cannot apply: {_describe(exc)}"])
                return False
            await self._swap(current, policy, trigger)
            return True

    def _rejected(self, current: Policy, trigger: str, problems: list[str]) -> None:
        self._metrics.config_reloads.labels("rejected").inc()
        _log.error(
            "config_reload",
            **{
                "gateway.reload.result": "rejected",
                "gateway.reload.trigger": trigger,
                "gateway.config.version": current.config.version,
                "gateway.config.problems": problems,
            },
        )

    async def _prepare(self, current: Policy, config: Config) -> Policy:
        """The policy for ``config``, its new remote key sets started; raises if it cannot be
        built, with nothing left running."""
        old = current.config
        remote_keys = current.remote_keys
        if config.issuers != old.issuers or config.jwks != old.jwks:
            remote_keys = RemoteKeys(
                config.issuers, config.jwks, events=LoggedKeyEvents(self._metrics)
            )
        policy = self._build(config, remote_keys)
        if remote_keys is not current.remote_keys:
            try:
                await remote_keys.start()
            except BaseException:
                await remote_keys.stop()
                raise
        return policy

    async def _swap(self, current: Policy, policy: Policy, trigger: str) -> None:
        old, config = current.config, policy.config
        restart = [name for name in RESTART_ONLY if getattr(config, name) != getattr(old, name)]
        self._door.policy = policy
        if policy.remote_keys is not current.remote_keys:
            await current.remote_keys.stop()
        self._metrics.config_reloads.labels("applied").inc()
        self._metrics.set_config_version(config.version, self._clock())
        _log.info(
            "config_reload",
            **{
                "gateway.reload.result": "applied",
                "gateway.reload.trigger": trigger,
                "gateway.config.version": config.version,
                "gateway.config.previous_version": old.version,
                "gateway.config.routes": len(config.routes.routes),
            },
        )
        if restart:
            _log.warning(
                "config_restart_required",
                **{
                    "gateway.config.restart_fields": restart,
                    "gateway.config.version": config.version,
                },
            )
        for hook in self.on_applied:
            try:
                await hook(config)
            except Exception as exc:  # the table is applied; a hook's failure is its own
                _log.error(
                    "config_apply_hook_failed",
                    **{"gateway.config.version": config.version, "error.message": _describe(exc)},
                )

    async def watch(self, stop: asyncio.Event) -> None:
        """Reload whenever anything changes in the directories holding the config files, until
        ``stop`` is set; an unexpected error is logged and watching starts again."""
        failures = 0
        while not stop.is_set():
            started = time.monotonic()
            try:
                if failures:
                    await self.reload("watch_restart")  # edits made while nobody watched
                await self._watch(stop)
                if not stop.is_set():
                    raise RuntimeError("the file watch ended on its own")
            except Exception as exc:
                if time.monotonic() - started > 2 * WATCH_RETRY_MAX:
                    failures = 0  # it had been watching well: the backoff starts afresh
                failures += 1
                delay = min(WATCH_RETRY_MAX, WATCH_RETRY_MIN * 2 ** (failures - 1))
                _log.error(
                    "config_watch_failed",
                    exc_info=exc,
                    **{
                        "error.message": _describe(exc),
                        "gateway.reload.failures": failures,
                        "gateway.reload.retry_in_s": delay,
                    },
                )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), delay)

    async def _watch(self, stop: asyncio.Event) -> None:
        directories = watched_directories(self._door.policy.config)
        async for _ in watchfiles.awatch(
            *directories, stop_event=stop, debounce=300, step=50, recursive=False
        ):
            await self.reload("file_change")


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def watched_directories(config: Config) -> list[Path]:
    """The directories a reload watches: the config files' and the TLS certificate's."""
    directories = {config.file.parent, config.routes.file.parent}
    if config.tls is not None:
        directories |= {config.tls.cert.parent, config.tls.key.parent}
    return sorted(directories)
