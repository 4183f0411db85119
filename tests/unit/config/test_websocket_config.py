"""``websocket:`` on routes and the WebSocket limits in gateway.yaml: typed values, and every
problem at its file:line."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.config import load
from gateway.core.models import WebSocketRoute
from tests.support import ENVIRON, TestKeys
from tests.unit.config.test_load import GATEWAY, ROUTES, problems, swap, write

READ = "    scopes: [orders:read]\n"
WRITE = "    scopes: [orders:write]\n"
HEALTH = "    auth: none\n"


def test_websocket_values(tmp_path: Path, keys: TestKeys) -> None:
    """``true``, a mapping and ``false``; limits default and can be set in gateway.yaml."""
    routes = swap(ROUTES, READ, READ + "    websocket: true\n")
    routes = swap(routes, HEALTH, HEALTH + "    websocket: false\n")
    routes = swap(
        routes, "    scopes: {any: [billing:read, billing:admin]}\n",
        "    scopes: {any: [billing:read, billing:admin]}\n"
        "    websocket: {token_from_subprotocol: true, idle_timeout: 90s,\n"
        "                max_message_size: 64KiB}\n",
    )  # fmt: skip
    gateway = (
        GATEWAY + "limits:\n  websocket_idle_timeout: 2m\n  websocket_max_message_size: 2MiB\n"
    )
    config = load(write(tmp_path, keys, routes=routes, gateway=gateway), ENVIRON)
    read, _, health, billing = config.routes.routes
    assert read.websocket == WebSocketRoute()
    assert health.websocket is None
    assert billing.websocket == WebSocketRoute(
        token_from_subprotocol=True, idle_timeout=90.0, max_message_size=65536
    )
    assert config.limits.websocket_idle_timeout == 120.0
    assert config.limits.websocket_max_message_size == 2 * 1024 * 1024


@pytest.mark.parametrize(
    ("anchor", "value", "fragment"),
    [
        (READ, "always", "write true, false"),
        (READ, "{token_from_subprotocl: true}", "did you mean 'token_from_subprotocol'"),
        (READ, "{idle_timeout: 0s}", "'idle_timeout': must be longer than zero"),
        (READ, "{max_message_size: -1}", "'max_message_size'"),
        (READ, "{token_from_subprotocol: 1}", "must be true or false"),
        (WRITE, "true", "'websocket' needs GET"),
        (HEALTH, "{token_from_subprotocol: true}", "needs a protected route"),
    ],
)
def test_websocket_problems(
    tmp_path: Path, keys: TestKeys, anchor: str, value: str, fragment: str
) -> None:
    """Each bad ``websocket`` is one problem at its line of routes.yaml."""
    routes = swap(ROUTES, anchor, anchor + f"    websocket: {value}\n")
    (issue,) = problems(write(tmp_path, keys, routes=routes))
    assert issue.file.endswith("routes.yaml")
    assert fragment in issue.message
    line = routes.splitlines().index(f"    websocket: {value}") + 1
    assert issue.line == line
