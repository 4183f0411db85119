"""The aiohttp internals the gateway overrides are where it expects them, and a change fails
loudly rather than quietly bringing back aiohttp's own error pages or connection handling."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from aiohttp import web

from gateway.server.aiohttp_overrides import (
    PRIVATE_SHAPES,
    GatewayRunner,
    PrivateShapeChanged,
    check_private_shapes,
    missing_shapes,
    private_owners,
)


async def _ok(request: web.BaseRequest) -> web.StreamResponse:
    return web.Response()


async def test_the_installed_aiohttp_has_every_overridden_internal() -> None:
    """A runner builds its server with every private attribute the overrides use (the runner
    runs the same check at start-up)."""
    runner = GatewayRunner(web.Application())
    await runner.setup()
    try:
        assert runner.server is not None
        check_private_shapes(runner.server)
        assert missing_shapes(private_owners(runner.server)) == []
        assert type(runner.server).__name__ == "_GatewayHTTPServer"
    finally:
        await runner.cleanup()


@pytest.mark.parametrize(("owner", "name", "use"), PRIVATE_SHAPES)
async def test_each_missing_internal_is_named(owner: str, name: str, use: str) -> None:
    """An aiohttp without any one of the internals is reported, naming it and its use."""
    owners = private_owners(web.Server(_ok))
    real = owners[owner]
    kept = {n: getattr(real, n) for o, n, _ in PRIVATE_SHAPES if o == owner and n != name}
    owners[owner] = SimpleNamespace(**kept)
    assert missing_shapes(owners) == [f"{owner}.{name} ({use})"]


@pytest.mark.parametrize("name", ["handle_error", "_handle_request"])
async def test_a_changed_method_signature_is_named(name: str) -> None:
    """`handle_error` or `_handle_request` taking other parameters is a changed shape too."""

    def changed(self: object, request: web.BaseRequest) -> None:
        raise AssertionError("never called")

    owners = private_owners(web.Server(_ok))
    real = owners["RequestHandler"]
    kept = {n: getattr(real, n) for o, n, _ in PRIVATE_SHAPES if o == "RequestHandler"}
    owners["RequestHandler"] = SimpleNamespace(**{**kept, name: changed})
    assert missing_shapes(owners) == [f"RequestHandler.{name} (its parameters changed)"]


async def test_start_up_fails_loudly_when_an_internal_is_gone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The runner refuses to build a server on an aiohttp that lacks an internal."""
    monkeypatch.setattr(
        "gateway.server.aiohttp_overrides.missing_shapes", lambda owners: ["Server._kwargs (x)"]
    )
    runner = GatewayRunner(web.Application())
    with pytest.raises(PrivateShapeChanged, match=r"Server\._kwargs"):
        await runner.setup()
    await runner.cleanup()
