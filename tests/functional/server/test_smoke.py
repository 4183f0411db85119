"""The gateway lets a good token through and refuses a missing one."""

from __future__ import annotations

from tests.conftest import GatewayFactory, LogCapture
from tests.support import RecordingUpstream, TokenFactory


async def test_good_token_reaches_upstream(
    gateway: GatewayFactory, tokens: TokenFactory, recorder: RecordingUpstream
) -> None:
    """A valid RS256 token with the route's scope is forwarded with identity headers."""
    client = await gateway()
    response = await client.get("/orders/7", headers={"Authorization": f"Bearer {tokens.good()}"})
    assert response.status == 200
    assert recorder.last.raw_path == "/orders/7"
    assert recorder.last.headers["X-Auth-Subject"] == "alice"
    assert "Authorization" not in recorder.last.headers


async def test_missing_token_never_reaches_upstream(
    gateway: GatewayFactory, recorder: RecordingUpstream
) -> None:
    """No Authorization header on a protected route is a 401 and the upstream sees nothing."""
    client = await gateway()
    response = await client.get("/orders/7")
    assert response.status == 401
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="gateway"'
    assert recorder.requests == []


async def test_access_log_line_has_spec_fields(
    gateway: GatewayFactory, tokens: TokenFactory, log_capture: LogCapture
) -> None:
    """Each request writes one JSON access line with the spec's field names and no token."""
    client = await gateway()
    token = tokens.good()
    await client.get("/orders/7?secret=1", headers={"Authorization": f"Bearer {token}"})
    (line,) = log_capture.events("access")
    assert line["url.path"] == "/orders/7"
    assert line["gateway.route"] == "/orders"
    assert line["gateway.auth.result"] == "allowed"
    assert line["user.id"] == "alice"
    assert token not in log_capture.text
    assert "secret=1" not in log_capture.text
