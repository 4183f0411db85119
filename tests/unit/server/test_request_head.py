"""The request head the upstream client writes: exact bytes, and no line break but its own."""

from __future__ import annotations

import pytest
import yarl
from multidict import CIMultiDict

from gateway.core.models import Origin
from gateway.core.urls import UpstreamTarget
from gateway.server.upstream import _request_head

URL = UpstreamTarget(Origin.of(yarl.URL("http://127.0.0.1:8080/")), "/orders/1?x=%20y")


@pytest.mark.parametrize(
    ("method", "headers", "length", "has_body", "expected"),
    [
        ("GET", {}, None, False, b"GET /orders/1?x=%20y HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n"),
        ("POST", {"A": "1", "B": "2"}, 5, True,
         b"POST /orders/1?x=%20y HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nA: 1\r\nB: 2\r\n"
         b"Content-Length: 5\r\n\r\n"),
        ("PUT", {"A": "caf\udce9"}, None, True,
         b"PUT /orders/1?x=%20y HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nA: caf\xe9\r\n"
         b"Transfer-Encoding: chunked\r\n\r\n"),
        ("DELETE", {"A": "1"}, None, False,
         b"DELETE /orders/1?x=%20y HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nA: 1\r\n"
         b"Content-Length: 0\r\n\r\n"),
    ],
)  # fmt: skip
def test_the_head_is_written_byte_for_byte(
    method: str, headers: dict[str, str], length: int | None, has_body: bool, expected: bytes
) -> None:
    assert _request_head(method, URL, CIMultiDict(headers), length, has_body) == expected


@pytest.mark.parametrize(
    "headers",
    [
        {"X-A": "1\r\nX-Injected: 2"},
        {"X-A": "1\nX-Injected: 2"},
        {"X-A": "1\r"},
        {"X-A\r\nX-Injected": "2"},
        {"X-A": "ok", "X-B": "\n"},
        {"X-A": "\r\n\r\nGET /admin HTTP/1.1"},
    ],
)
@pytest.mark.parametrize(
    ("method", "has_body"), [("GET", False), ("POST", True), ("DELETE", False)]
)
def test_a_line_break_in_a_name_or_value_is_refused(
    headers: dict[str, str], method: str, has_body: bool
) -> None:
    with pytest.raises(ValueError, match="CR or LF"):
        _request_head(method, URL, CIMultiDict(headers), 3 if has_body else None, has_body)
