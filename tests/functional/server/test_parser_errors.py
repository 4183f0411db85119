"""Requests aiohttp's HTTP parser rejects are answered and logged in the gateway's shape."""

from __future__ import annotations

import asyncio
import json

import pytest

from tests.conftest import GatewayFactory, LogCapture
from tests.support import RecordingUpstream

SECRET = "eyJSECRETTOKENSECRETTOKEN"


def _request(header_line: str) -> bytes:
    return f"GET /orders HTTP/1.1\r\nHost: a\r\n{header_line}\r\n\r\n".encode()


async def _raw(host: str, port: int, data: bytes) -> bytes:
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(data)
    await writer.drain()
    response = await asyncio.wait_for(reader.read(), timeout=5)
    writer.close()
    await writer.wait_closed()
    return response


@pytest.mark.parametrize(
    "request_bytes",
    [
        pytest.param(
            _request(f"Authorization: Bearer {SECRET}\x00x"),
            id="nul-in-authorization",
        ),
        pytest.param(
            _request(f"Authorization: Bearer {SECRET}{'A' * 9000}"),
            id="authorization-too-long",
        ),
        pytest.param(f"GET /{SECRET}\x01 HTTP/1.1\r\nHost: a\r\n\r\n".encode(), id="ctl-in-target"),
    ],
)
async def test_parser_rejection_is_json_and_never_echoes(
    gateway: GatewayFactory,
    recorder: RecordingUpstream,
    log_capture: LogCapture,
    request_bytes: bytes,
) -> None:
    """A request the parser refuses gets a JSON 400 and one access line, quoting none of it."""
    client = await gateway()
    assert client.server.host is not None
    assert client.server.port is not None
    response = await _raw(client.server.host, client.server.port, request_bytes)
    head, _, body = response.partition(b"\r\n\r\n")
    assert head.startswith((b"HTTP/1.1 400", b"HTTP/1.0 400"))
    assert b"application/json" in head
    assert json.loads(body)["error"] == "bad_request"
    assert SECRET.encode() not in response
    assert SECRET not in log_capture.text
    (line,) = log_capture.events("access")
    assert line["http.response.status_code"] == 400
    assert line["gateway.auth.reason"] == "unparseable_request"
    assert line["client.ip"] == "127.0.0.1"  # the request factory's, as for any request
    assert recorder.requests == []
