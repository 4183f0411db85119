"""A refusal written from its bytes made once (`gateway.server.wire`) is byte for byte the
refusal the door renders and writes whole (`render`, the door's own fields, `send_whole`), and
leaves the connection open or closed the same way.

Differential, as in ``test_send_whole``: one aiohttp low-level server answers each request
both ways; a raw socket sends the case's request, then a closing one on the same connection,
and reads to the end. The two byte streams must be equal once the Date values are blanked."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from gateway.core.errors import InsufficientScope, InvalidToken, MissingCredentials, TokenCheck
from gateway.core.models import ScopeRule
from gateway.core.refusals import (
    EXPECTATION_FAILED,
    INTERNAL_ERROR,
    Refusal,
    auth_throttled,
    claim_mismatch,
    from_auth_error,
    method_not_allowed,
    not_found,
    payload_too_large,
    too_many_requests,
    upstream_failed,
    websocket_handshake_refused,
)
from gateway.server.aiohttp_overrides import send_whole
from gateway.server.render import render
from gateway.server.wire import added_fields, send, wire_for
from tests.unit.server.differential import (
    blank_dates,
    exchange,
    low_level_server,
    stays_open,
)

METADATA = "https://api.example.com/.well-known/oauth-protected-resource"
REFUSALS: dict[str, Refusal] = {
    "missing_401": from_auth_error(MissingCredentials()),
    "missing_401_metadata": from_auth_error(MissingCredentials(), METADATA),
    "expired_401": from_auth_error(InvalidToken("expired", TokenCheck.EXP)),
    "scope_403": from_auth_error(InsufficientScope(ScopeRule(scopes=("a:read", "b")), "s", None)),
    "claim_403": claim_mismatch(),
    "not_found_404": not_found(),
    "method_405": method_not_allowed(("GET", "POST")),
    "too_large_413": payload_too_large(),
    "expectation_417": EXPECTATION_FAILED,
    "rate_429": too_many_requests({"Retry-After": "3", "RateLimit-Limit": "10"}),
    "throttled_429": auth_throttled(2.5),
    "handshake_400": websocket_handshake_refused(),
    "internal_500": INTERNAL_ERROR,
    "bad_gateway_502": upstream_failed(timed_out=False),
    "busy_503": upstream_failed(timed_out=False, busy=True),
}
HSTS = (("Strict-Transport-Security", "max-age=63072000; includeSubDomains"),)


@pytest.fixture
async def port() -> AsyncIterator[int]:
    """``/{refusal}/{rendered|wire}/{hsts|plain}/{close|open}`` picks the answer and its writer."""

    async def handler(request: web.BaseRequest) -> web.StreamResponse:
        parts = request.path.split("/")
        if len(parts) != 5:
            return web.Response(text="end")
        _, name, writer, fields, close = parts
        refusal, added = REFUSALS[name], HSTS if fields == "hsts" else ()
        if writer == "wire":
            whole = wire_for(refusal).whole(request.version, "id-1.2_3", added_fields(added))
            assert whole is not None
            return await send(request, whole, close=close == "close")
        response = render(refusal, "id-1.2_3")
        if close == "close":
            response.force_close()
        for field, value in added:
            response.headers[field] = value
        await send_whole(request, response)
        return response

    async with low_level_server(handler) as port:
        yield port


@pytest.mark.parametrize("name", sorted(REFUSALS))
@pytest.mark.parametrize("method", ["GET", "HEAD"])
@pytest.mark.parametrize("version", ["1.0", "1.1"])
@pytest.mark.parametrize("connection", [None, "close", "keep-alive"])
@pytest.mark.parametrize("fields", ["plain", "hsts"])
@pytest.mark.parametrize("close", ["open", "close"])
async def test_the_same_bytes_and_connection_as_the_rendered_refusal(
    port: int, name: str, method: str, version: str, connection: str | None, fields: str,
    close: str,
) -> None:  # fmt: skip
    field = f"Connection: {connection}\r\n" if connection else ""

    def request(writer: str) -> bytes:
        target = f"/{name}/{writer}/{fields}/{close}"
        return f"{method} {target} HTTP/{version}\r\nHost: t\r\n{field}\r\n".encode()

    then_close = stays_open(version, connection)
    rendered = await exchange(
        port, request("rendered"), then_close=then_close, closing_target="/end"
    )
    wired = await exchange(port, request("wire"), then_close=then_close, closing_target="/end")
    assert rendered.startswith(f"HTTP/{version} {REFUSALS[name].status} ".encode())
    assert blank_dates(wired) == blank_dates(rendered)


@pytest.mark.parametrize("request_id", ['a"b', "a\\b", "é", "a b", "a\x7fb"])
async def test_an_id_that_json_escapes_is_left_to_the_renderer(request_id: str) -> None:
    assert wire_for(not_found()).whole((1, 1), request_id, b"") is None
    assert wire_for(not_found()).whole((1, 1), "plain-id", b"") is not None


@pytest.mark.parametrize("version", [(0, 9), (2, 0), (1, 2)])
def test_another_version_is_left_to_the_renderer(version: tuple[int, int]) -> None:
    assert wire_for(not_found()).whole(version, "plain-id", b"") is None


def test_a_catalogue_refusal_keeps_one_wire() -> None:
    assert wire_for(not_found()) is wire_for(not_found())
    challenge = from_auth_error(MissingCredentials(), METADATA)
    assert challenge is from_auth_error(MissingCredentials(), METADATA)
    assert wire_for(challenge) is wire_for(from_auth_error(MissingCredentials(), METADATA))
    assert from_auth_error(MissingCredentials()) is not challenge


def test_a_line_break_in_an_added_field_is_refused() -> None:
    with pytest.raises(ValueError, match="control character"):
        added_fields((("Strict-Transport-Security", "max-age=1\r\nSet-Cookie: a=b"),))
