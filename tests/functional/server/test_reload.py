"""Live reload: edits to routes.yaml apply within seconds, invalid edits keep the old table,
ConfigMap-style symlink swaps are seen, and requests keep succeeding throughout; no file and no
error ends the watcher."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, cast

import pytest
import watchfiles
from aiohttp import web
from aiohttp.test_utils import TestClient
from pytest_aiohttp import AiohttpClient, AiohttpServer

from gateway.config import load
from gateway.server.app import DOOR, METRICS, RELOADER, create_app
from gateway.server.handler import Policy
from tests.conftest import GatewayTestServer, LogCapture
from tests.support import (
    DEFAULT_ROUTES,
    ENVIRON,
    RecordingUpstream,
    TestKeys,
    TokenFactory,
    write_config,
)

Client = TestClient[web.Request, web.Application]
RELOAD_DEADLINE = 3.0  # the spec: a saved change takes effect within 3 seconds

ADMIN_ROUTES = DEFAULT_ROUTES.replace("scopes: [orders:read]", "scopes: [orders:admin]")
BROKEN_ROUTES = DEFAULT_ROUTES.replace("scopes: [orders:read]", "scope: [orders:admin]")


async def _until(condition: Callable[[], Awaitable[bool]], within: float) -> float:
    """Poll ``condition`` until true; return how long it took (fails past ``within``)."""
    started = time.monotonic()
    while not await condition():
        assert time.monotonic() - started < within, "condition not reached in time"
        await asyncio.sleep(0.05)
    return time.monotonic() - started


@pytest.fixture
async def upstream_url(aiohttp_server: AiohttpServer) -> str:
    """A recording upstream's base URL."""
    server = await aiohttp_server(RecordingUpstream().app())
    return str(server.make_url("")).rstrip("/")


@pytest.fixture
def start(aiohttp_client: AiohttpClient, upstream_url: str) -> Callable[[Path], Awaitable[Client]]:
    """Start a watching gateway on the gateway.yaml at a path."""

    async def go(path: Path) -> Client:
        app = create_app(load(path, ENVIRON), watch=True, environ=ENVIRON)
        client = cast("Client", await aiohttp_client(GatewayTestServer(app)))
        await asyncio.sleep(0.3)  # let the watcher settle on the directory
        return client

    return go


async def _status(client: Client, token: str) -> int:
    response = await client.get("/orders/1", headers={"Authorization": f"Bearer {token}"})
    await response.read()
    return response.status


async def test_scope_edit_applies_under_load_without_failed_requests(
    tmp_path: Path,
    keys: TestKeys,
    tokens: TokenFactory,
    upstream_url: str,
    start: Callable[[Path], Awaitable[Client]],
    log_capture: LogCapture,
) -> None:
    """Editing a route's scope while requests run applies within 3 s; every request meanwhile
    gets either the old decision or the new one, never an error."""
    client = await start(write_config(tmp_path, keys, upstream=upstream_url))
    token = tokens.good()
    old_version = client.app[DOOR].policy.config.version
    statuses: list[int] = []
    stop = asyncio.Event()

    async def load_loop() -> None:
        while not stop.is_set():
            statuses.extend(await asyncio.gather(*(_status(client, token) for _ in range(5))))

    runner = asyncio.create_task(load_loop())
    await asyncio.sleep(0.2)
    (tmp_path / "routes.yaml").write_text(ADMIN_ROUTES.format(upstream=upstream_url))

    async def refused() -> bool:
        return await _status(client, token) == 403

    took = await _until(refused, RELOAD_DEADLINE)
    stop.set()
    await runner
    assert took < RELOAD_DEADLINE
    assert set(statuses) <= {200, 403}
    first_403 = statuses.index(403) if 403 in statuses else len(statuses)
    assert statuses[:first_403] == [200] * first_403
    (event,) = [
        e for e in log_capture.events("config_reload") if e["gateway.reload.result"] == "applied"
    ]
    assert event["gateway.config.previous_version"] == old_version
    assert event["gateway.config.version"] == client.app[DOOR].policy.config.version != old_version


async def test_invalid_edit_keeps_the_last_good_table(
    tmp_path: Path,
    keys: TestKeys,
    tokens: TokenFactory,
    upstream_url: str,
    start: Callable[[Path], Awaitable[Client]],
    log_capture: LogCapture,
) -> None:
    """A broken routes.yaml is refused with every file:line problem logged; the old rule stays."""
    client = await start(write_config(tmp_path, keys, upstream=upstream_url))
    routes = tmp_path / "routes.yaml"
    routes.write_text(BROKEN_ROUTES.format(upstream=upstream_url))

    async def rejected() -> bool:
        return any(
            e["gateway.reload.result"] == "rejected" for e in log_capture.events("config_reload")
        )

    await _until(rejected, RELOAD_DEADLINE)
    (event,) = [
        e for e in log_capture.events("config_reload") if e["gateway.reload.result"] == "rejected"
    ]
    assert any(f"{routes}:7: unknown key 'scope'" in p for p in event["gateway.config.problems"])
    assert await _status(client, tokens.good()) == 200
    metrics = client.app[METRICS].render().decode()
    assert 'gateway_config_reloads_total{result="rejected"} 1.0' in metrics


def _configmap_dir(root: Path, version: str, routes: str) -> None:
    """One timestamped ConfigMap data directory."""
    data = root / f"..{version}"
    data.mkdir()
    (data / "routes.yaml").write_text(routes)


def _swap_data_link(root: Path, version: str) -> None:
    """Atomically point ``..data`` at a new directory, as the kubelet does."""
    tmp_link = root / "..data_tmp"
    tmp_link.symlink_to(f"..{version}")
    os.replace(tmp_link, root / "..data")


async def test_configmap_symlink_swaps_are_each_applied(
    tmp_path: Path,
    keys: TestKeys,
    tokens: TokenFactory,
    upstream_url: str,
    start: Callable[[Path], Awaitable[Client]],
) -> None:
    """Three ConfigMap-style `..data` symlink swaps in a row are each picked up."""
    config_dir = tmp_path
    gateway_yaml = write_config(config_dir, keys, upstream=upstream_url)
    (config_dir / "routes.yaml").unlink()
    variants = [DEFAULT_ROUTES, ADMIN_ROUTES, DEFAULT_ROUTES, ADMIN_ROUTES]
    _configmap_dir(config_dir, "v0", variants[0].format(upstream=upstream_url))
    (config_dir / "..data").symlink_to("..v0")
    (config_dir / "routes.yaml").symlink_to("..data/routes.yaml")
    client = await start(gateway_yaml)
    token = tokens.good()
    assert await _status(client, token) == 200
    for number, routes in enumerate(variants[1:], start=1):
        _configmap_dir(config_dir, f"v{number}", routes.format(upstream=upstream_url))
        _swap_data_link(config_dir, f"v{number}")
        expected = 403 if routes is ADMIN_ROUTES else 200

        async def applied(expected: int = expected) -> bool:
            return await _status(client, token) == expected

        await _until(applied, RELOAD_DEADLINE)


async def test_reload_of_issuers_swaps_keys(
    tmp_path: Path,
    keys: TestKeys,
    tokens: TokenFactory,
    upstream_url: str,
    start: Callable[[Path], Awaitable[Client]],
) -> None:
    """Removing an issuer from gateway.yaml takes effect on reload: its tokens stop passing."""
    path = write_config(tmp_path, keys, upstream=upstream_url)
    client = await start(path)
    assert await _status(client, tokens.dev()) == 200
    text = path.read_text()
    path.write_text(text[: text.index("  - name: dev")] + text[text.index("tokens:") :])

    async def refused() -> bool:
        return await _status(client, tokens.dev()) == 401

    await _until(refused, RELOAD_DEADLINE)
    assert await _status(client, tokens.good()) == 200


async def test_restart_only_change_is_logged(
    tmp_path: Path,
    keys: TestKeys,
    upstream_url: str,
    aiohttp_client: AiohttpClient,
    log_capture: LogCapture,
) -> None:
    """A changed listen address is applied nowhere but logged as needing a restart."""
    path = write_config(tmp_path, keys, upstream=upstream_url)
    app = create_app(load(path, ENVIRON), environ=ENVIRON)
    await aiohttp_client(GatewayTestServer(app))
    path.write_text(path.read_text().replace(
        "listen: {host: 127.0.0.1, port: 0}", "listen: {host: 127.0.0.1, port: 18080}"
    ))  # fmt: skip
    assert await app[RELOADER].reload("sighup") is True
    (event,) = log_capture.events("config_restart_required")
    assert event["gateway.config.restart_fields"] == ["listen"]


async def test_unchanged_sighup_reload_is_answered(
    tmp_path: Path, keys: TestKeys, upstream_url: str, aiohttp_client: AiohttpClient,
    log_capture: LogCapture,
) -> None:  # fmt: skip
    """A reload that finds nothing changed says so (an operator's SIGHUP gets an answer)."""
    app = create_app(
        load(write_config(tmp_path, keys, upstream=upstream_url), ENVIRON), environ=ENVIRON
    )
    await aiohttp_client(GatewayTestServer(app))
    assert await app[RELOADER].reload("sighup") is False
    (event,) = log_capture.events("config_reload")
    assert event["gateway.reload.result"] == "unchanged"
    assert event["gateway.reload.trigger"] == "sighup"


# -- reloads never die --------------------------------------------------------------------------

DEEP_ROUTES = "upstreams: " + "[" * 5000 + "]" * 5000 + "\n"
NUL_PATH_ROUTES = DEFAULT_ROUTES.replace(
    'orders: {{url: "{upstream}", timeout: 2s}}',
    'orders: {{url: "https://127.0.0.1:9", ca: "ca\\0.pem"}}',
)
KTY_LIST_JWKS = '{"keys": [{"kty": ["RSA"]}]}'


@pytest.mark.parametrize(
    ("poison", "problem"),
    [
        pytest.param({"routes.yaml": DEEP_ROUTES}, "nested more than 64 levels deep", id="deep"),
        pytest.param(
            {"routes.yaml": NUL_PATH_ROUTES},
            "'ca': a file name cannot contain a NUL byte",
            id="nul-path",
        ),
        pytest.param(
            {"keys/jwks.json": KTY_LIST_JWKS, "routes.yaml": DEFAULT_ROUTES + "# touched\n"},
            "key 'None' is unusable (unsupported_kty)",
            id="kty-list",
        ),
    ],
)
async def test_poisoned_edit_is_rejected_and_the_next_edit_applies(
    tmp_path: Path,
    keys: TestKeys,
    tokens: TokenFactory,
    upstream_url: str,
    start: Callable[[Path], Awaitable[Client]],
    log_capture: LogCapture,
    poison: dict[str, str],
    problem: str,
) -> None:
    """A file that once ended the watcher is a rejected reload with its problem logged; the old
    table keeps serving and the next valid edit is applied within the reload deadline."""
    client = await start(write_config(tmp_path, keys, upstream=upstream_url))
    originals = {name: (tmp_path / name).read_text() for name in poison}
    for name, text in poison.items():  # the routes file is a template, like DEFAULT_ROUTES
        routes = name == "routes.yaml"
        (tmp_path / name).write_text(text.format(upstream=upstream_url) if routes else text)

    async def rejected() -> bool:
        return any(
            e["gateway.reload.result"] == "rejected" for e in log_capture.events("config_reload")
        )

    await _until(rejected, RELOAD_DEADLINE)
    (event,) = [
        e for e in log_capture.events("config_reload") if e["gateway.reload.result"] == "rejected"
    ]
    assert any(problem in line for line in event["gateway.config.problems"]), event[
        "gateway.config.problems"
    ]
    assert await _status(client, tokens.good()) == 200
    for name, text in originals.items():
        if name != "routes.yaml":
            (tmp_path / name).write_text(text)
    (tmp_path / "routes.yaml").write_text(ADMIN_ROUTES.format(upstream=upstream_url))

    async def applied() -> bool:
        return await _status(client, tokens.good()) == 403

    await _until(applied, RELOAD_DEADLINE)
    assert not log_capture.events("config_watch_failed")


async def test_watch_restarts_after_an_unexpected_error_and_applies_the_missed_edit(
    tmp_path: Path,
    keys: TestKeys,
    tokens: TokenFactory,
    upstream_url: str,
    start: Callable[[Path], Awaitable[Client]],
    log_capture: LogCapture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An exception inside the watch loop is logged, the loop starts again, and the edit it was
    handling is applied within the reload deadline."""
    real_awatch = watchfiles.awatch
    calls = 0

    async def fail_on_first_change(*args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        async with contextlib.aclosing(real_awatch(*args, **kwargs)) as changes:
            async for _ in changes:
                raise RuntimeError("watch backend failed")
        yield  # pragma: no cover - an async generator that never yields

    def flaky_awatch(*args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        nonlocal calls
        calls += 1
        watch = fail_on_first_change if calls == 1 else real_awatch
        return watch(*args, **kwargs)

    monkeypatch.setattr(watchfiles, "awatch", flaky_awatch)
    client = await start(write_config(tmp_path, keys, upstream=upstream_url))
    (tmp_path / "routes.yaml").write_text(ADMIN_ROUTES.format(upstream=upstream_url))

    async def applied() -> bool:
        return await _status(client, tokens.good()) == 403

    await _until(applied, RELOAD_DEADLINE)
    (failure,) = log_capture.events("config_watch_failed")
    assert failure["error.message"] == "RuntimeError: watch backend failed"
    assert failure["log.level"] == "error"
    (event,) = [
        e for e in log_capture.events("config_reload") if e["gateway.reload.result"] == "applied"
    ]
    assert event["gateway.reload.trigger"] == "watch_restart"
    assert calls == 2
    (tmp_path / "routes.yaml").write_text(DEFAULT_ROUTES.format(upstream=upstream_url))

    async def applied_again() -> bool:
        return await _status(client, tokens.good()) == 200

    await _until(applied_again, RELOAD_DEADLINE)


async def test_a_failing_reload_never_escapes(
    tmp_path: Path,
    keys: TestKeys,
    upstream_url: str,
    aiohttp_client: AiohttpClient,
    log_capture: LogCapture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Whatever a load or a swap raises, reload() answers False with the reason logged, and the
    table in use stays."""
    path = write_config(tmp_path, keys, upstream=upstream_url)
    app = create_app(load(path, ENVIRON), environ=ENVIRON)
    await aiohttp_client(GatewayTestServer(app))
    policy = app[DOOR].policy
    (tmp_path / "routes.yaml").write_text(ADMIN_ROUTES.format(upstream=upstream_url))

    def broken_build(*_: object) -> Policy:
        raise OSError("too many open files")

    monkeypatch.setattr(app[RELOADER], "_build", broken_build)
    assert await app[RELOADER].reload("sighup") is False
    assert app[DOOR].policy is policy
    (event,) = log_capture.events("config_reload")
    assert event["gateway.reload.result"] == "rejected"
    assert event["gateway.config.problems"] == ["cannot apply: OSError: too many open files"]
