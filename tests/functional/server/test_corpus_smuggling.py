"""The hardening corpus' request-smuggling rows (S-01..S-20), over raw sockets.

Every refused input targets the public ``/orders/health`` route, so a parser that accepted it
would forward it: the recording upstream seeing nothing (U0) is the proof that it did not. Each
request also carries a real token, which must never come back in a response or a log line.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.conftest import GatewayFactory, LogCapture
from tests.raw import (
    Answer,
    Client,
    RawRequest,
    assert_refusal,
    close,
    open_connection,
    read_answer,
    read_request,
    send_raw,
    socket_upstream,
)
from tests.support import (
    ENVIRON,
    RecordingUpstream,
    TestKeys,
    TokenFactory,
    identity_headers,
    side_upstream_routes,
    write_config,
)

WAIT = 3.0  # longest wait for the gateway to answer and close
PUBLIC = "/orders/health"


# -- raw exchanges ------------------------------------------------------------------------------


@dataclass
class Exchange:
    """Everything one connection received: the responses, and whether the gateway closed it."""

    answers: list[Answer]
    closed: bool
    raw: bytes


async def exchange(client: Client, data: bytes) -> Exchange:
    """Write ``data`` on a fresh connection, then read every response until the gateway closes
    the connection (or ``WAIT`` passes)."""
    reader, writer = await open_connection(client)
    received = b""
    closed = False
    try:
        writer.write(data)
        with contextlib.suppress(ConnectionError):
            await writer.drain()
        try:
            async with asyncio.timeout(WAIT):
                while chunk := await reader.read(65536):
                    received += chunk
            closed = True
        except TimeoutError:
            pass
        except ConnectionResetError:  # unread request bytes turn the close into a reset
            closed = True
    finally:
        await close(writer)
    answers: list[Answer] = []
    replay = asyncio.StreamReader()
    replay.feed_data(received)
    replay.feed_eof()
    with contextlib.suppress(asyncio.IncompleteReadError):
        while not replay.at_eof():
            answers.append(await read_answer(replay))
    return Exchange(answers, closed, received)


def request_bytes(
    head: str, headers: Sequence[str], body: bytes = b"", *, host: str | None = "a"
) -> bytes:
    """A request written exactly as given: request line, header lines, blank line, body."""
    lines = [head, *([f"Host: {host}"] if host is not None else []), *headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def assert_one_json_400(
    result: Exchange, token: str, log_capture: LogCapture, recorder: RecordingUpstream
) -> None:
    """Exactly one response, a JSON 400 that quotes nothing, the connection closed, and U0."""
    assert [answer.status for answer in result.answers] == [400], result.raw[:300]
    (answer,) = result.answers
    assert_refusal(answer, 400, "bad_request")
    assert result.closed, "the connection must be closed after a framing error"
    assert token.encode() not in result.raw
    assert token not in log_capture.text
    assert recorder.requests == []


@pytest.fixture
async def client(gateway: GatewayFactory) -> Client:
    """A gateway with the sample routes (``/orders/health`` public) before the recorder."""
    return await gateway()


@pytest.fixture
def token(tokens: TokenFactory) -> str:
    """G, sent with every smuggling attempt to check it is never echoed."""
    return tokens.good()


# -- S-01..S-13, S-16: framing the gateway must refuse --------------------------------------------

CHUNKED_ABCD = b"4\r\nabcd\r\n0\r\n\r\n"

REFUSED: list[object] = [
    pytest.param(
        ["Content-Length: 4", "Transfer-Encoding: chunked"], b"0\r\n\r\n", id="S-01-cl-te"
    ),
    pytest.param(
        ["Content-Length: 3", "Transfer-Encoding: chunked"],
        b"8\r\nSMUGGLED\r\n0\r\n\r\n",
        id="S-02-te-cl",
    ),
    pytest.param(["Content-Length: 4", "Content-Length: 5"], b"abcde", id="S-03-two-lengths"),
    pytest.param(["Content-Length: 4", "Content-Length: 4"], b"abcd", id="S-03-same-length-twice"),
    pytest.param(["Content-Length: 4, 4"], b"abcd", id="S-04-list"),
    pytest.param(["Content-Length: +4"], b"abcd", id="S-04-plus"),
    pytest.param(["Content-Length: -1"], b"abcd", id="S-04-negative"),
    pytest.param(["Content-Length: 0x4"], b"abcd", id="S-04-hex"),
    pytest.param(["Content-Length: 4 4"], b"abcd", id="S-04-space-separated"),
    pytest.param(["Transfer-Encoding: xchunked"], CHUNKED_ABCD, id="S-05-xchunked"),
    pytest.param(["Transfer-Encoding: chunked, identity"], CHUNKED_ABCD, id="S-05-then-identity"),
    pytest.param(["Transfer-Encoding: chunked, chunked"], CHUNKED_ABCD, id="S-05-chunked-twice"),
    pytest.param(
        ["Transfer-Encoding: chunked", "Transfer-Encoding: chunked"],
        CHUNKED_ABCD,
        id="S-05-two-te-lines",
    ),
    pytest.param(["Transfer-Encoding : chunked"], CHUNKED_ABCD, id="S-05-space-before-colon"),
    pytest.param(["Transfer-Encoding: \x0bchunked"], CHUNKED_ABCD, id="S-05-vertical-tab-before"),
    pytest.param(["Transfer-Encoding: chunked\x0b"], CHUNKED_ABCD, id="S-05-vertical-tab-after"),
    pytest.param(["X-A: one", " two", "Content-Length: 0"], b"", id="S-08-obs-fold"),
    pytest.param(["X-Abc: \rxTransfer-Encoding: chunked"], CHUNKED_ABCD, id="S-10-cr-in-value"),
    pytest.param(["X-Abc: a\x00b", "Content-Length: 0"], b"", id="S-11-nul-in-value"),
    pytest.param(["X-Abc: a\x01b", "Content-Length: 0"], b"", id="S-11-ctl-in-value"),
    pytest.param(
        ["Transfer-Encoding: chunked"], b"3;x=\nabc\r\n0\r\n\r\n", id="S-12-lf-in-chunk-extension"
    ),
    pytest.param(
        ["Transfer-Encoding: chunked"],
        b"FFFFFFFFFFFFFFFFF1\r\nabc\r\n0\r\n\r\n",
        id="S-13-chunk-size-overflow",
    ),
    pytest.param(["Transfer-Encoding: chunked"], b"0x3\r\nabc\r\n0\r\n\r\n", id="S-13-hex-prefix"),
    pytest.param(
        ["Transfer-Encoding: chunked"], b" 3\r\nabc\r\n0\r\n\r\n", id="S-13-leading-space"
    ),
    pytest.param(["Host: b", "Content-Length: 0"], b"", id="S-16-two-hosts"),
]


@pytest.mark.parametrize(("headers", "body"), REFUSED)
async def test_ambiguous_framing_is_a_json_400_and_never_forwarded(
    client: Client,
    token: str,
    recorder: RecordingUpstream,
    log_capture: LogCapture,
    headers: list[str],
    body: bytes,
) -> None:
    """A request whose framing or header syntax two servers could read differently is one JSON
    400, the connection is closed, and the upstream sees nothing."""
    data = request_bytes(
        f"POST {PUBLIC} HTTP/1.1", [f"Authorization: Bearer {token}", *headers], body
    )
    result = await exchange(client, data)
    assert_one_json_400(result, token, log_capture, recorder)


@pytest.mark.slow
async def test_leading_zero_content_length_is_forwarded_canonical(
    client: Client, token: str, recorder: RecordingUpstream
) -> None:
    """S-04 decision: `Content-Length: 04` is valid RFC 9110 syntax (1*DIGIT); it is accepted and
    the upstream receives the canonical `Content-Length: 4`, so the two cannot disagree."""
    data = request_bytes(
        f"POST {PUBLIC} HTTP/1.1", [f"Authorization: Bearer {token}", "Content-Length: 04"], b"abcd"
    )
    await exchange(client, data)
    assert recorder.last.headers.getall("Content-Length") == ["4"]
    assert recorder.last.body == b"abcd"


async def test_bare_lf_line_endings_are_refused(
    client: Client, token: str, recorder: RecordingUpstream, log_capture: LogCapture
) -> None:
    """S-09: a request whose lines end in a bare LF is one JSON 400 and is not forwarded."""
    data = f"GET {PUBLIC} HTTP/1.1\nHost: a\nAuthorization: Bearer {token}\n\n".encode()
    result = await exchange(client, data)
    assert_one_json_400(result, token, log_capture, recorder)


async def test_http11_request_without_host_is_refused(
    client: Client, token: str, recorder: RecordingUpstream, log_capture: LogCapture
) -> None:
    """S-16: an HTTP/1.1 request without a ``Host`` header is one JSON 400, not forwarded."""
    data = request_bytes(f"GET {PUBLIC} HTTP/1.1", [f"Authorization: Bearer {token}"], host=None)
    result = await exchange(client, data)
    assert_one_json_400(result, token, log_capture, recorder)


# -- S-14: trailers -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "trailers",
    [
        pytest.param(b"X-Auth-Subject: admin\r\nX-Trailer: t\r\n", id="S-14-identity-trailer"),
        pytest.param(
            b"X-Auth-Subject: admin\r\nTransfer-Encoding: x\r\n", id="S-14-framing-trailer"
        ),
    ],
)
async def test_trailers_never_become_upstream_headers(
    client: Client, recorder: RecordingUpstream, trailers: bytes
) -> None:
    """S-14: trailer fields after a chunked body are either refused (JSON 400, U0) or dropped,
    never merged into the headers the upstream receives."""
    body = b"4\r\nabcd\r\n0\r\n" + trailers + b"\r\n"
    data = request_bytes(f"POST {PUBLIC} HTTP/1.1", ["Transfer-Encoding: chunked"], body)
    answer = await send_raw(client, data)
    assert answer.status in (200, 400), answer.body
    if answer.status == 400:
        assert answer.json()["error"] == "bad_request"
        assert recorder.requests == []
        return
    (seen,) = recorder.requests
    assert seen.body == b"abcd"
    assert identity_headers(seen.headers) == []
    assert "X-Trailer" not in seen.headers
    assert "x" not in [value.strip() for value in seen.headers.getall("Transfer-Encoding", [])]


# -- S-17: a body that looks like a request ------------------------------------------------------


@pytest.mark.parametrize(
    "connection",
    [
        pytest.param(None, id="S-17-default"),
        pytest.param("keep-alive", id="S-17-keep-alive"),
    ],
)
async def test_refused_body_is_never_parsed_as_a_request(
    client: Client, recorder: RecordingUpstream, connection: str | None
) -> None:
    """S-17: a refused POST whose body is a whole request gets exactly one JSON 401 and the
    smuggled request is never answered or forwarded."""
    smuggled = f"GET {PUBLIC} HTTP/1.1\r\nHost: a\r\n\r\n".encode()
    headers = [f"Content-Length: {len(smuggled)}"]
    if connection is not None:
        headers.append(f"Connection: {connection}")
    result = await exchange(client, request_bytes("POST /orders HTTP/1.1", headers, smuggled))
    assert [answer.status for answer in result.answers] == [401]
    assert_refusal(result.answers[0], 401, "unauthorized")
    assert result.raw.count(b"HTTP/1.1 ") == 1
    assert recorder.requests == []


# -- S-18: what the upstream receives (control) ------------------------------------------------


@dataclass
class KeepAliveUpstream:
    """A socket-level upstream that keeps connections open and records each request's framing."""

    seen: list[RawRequest] = field(default_factory=list)
    connections: int = 0

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Answer every request on the connection with its sequence number and path."""
        self.connections += 1
        try:
            while True:
                try:
                    seen = await read_request(reader)
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                self.seen.append(seen)
                reply = json.dumps({"n": len(self.seen), "line": seen.request_line}).encode()
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(reply), reply)
                )
                await writer.drain()
        finally:
            await close(writer)


@pytest.fixture
async def keep_alive_upstream() -> AsyncIterator[tuple[KeepAliveUpstream, str]]:
    """A running keep-alive raw upstream and its URL."""
    upstream = KeepAliveUpstream()
    async with socket_upstream(upstream.serve) as url:
        yield upstream, url


def _chunked(body: bytes, size: int) -> bytes:
    pieces = [body[i : i + size] for i in range(0, len(body), size)]
    return b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces) + b"0\r\n\r\n"


async def test_pipelined_uploads_reach_upstream_one_for_one_with_one_framing(
    gateway: GatewayFactory, keep_alive_upstream: tuple[KeepAliveUpstream, str]
) -> None:
    """S-18: pipelined Content-Length and chunked uploads on one keep-alive connection are
    answered in order and reach the upstream one for one, byte for byte, each with exactly one
    framing header."""
    upstream, url = keep_alive_upstream
    client = await gateway(routes=side_upstream_routes("raw", url))
    first, second, third = os.urandom(70_000), os.urandom(50_001), b"x" * 10
    data = b"".join(
        [
            request_bytes("POST /raw/1 HTTP/1.1", [f"Content-Length: {len(first)}"], first),
            request_bytes(
                "POST /raw/2 HTTP/1.1", ["Transfer-Encoding: chunked"], _chunked(second, 7_000)
            ),
            request_bytes("GET /raw/3 HTTP/1.1", []),
            request_bytes(
                "PUT /raw/4 HTTP/1.1", ["Transfer-Encoding: chunked"], _chunked(third, 3)
            ),
            request_bytes("DELETE /raw/5 HTTP/1.1", ["Content-Length: 0", "Connection: close"]),
        ]
    )
    result = await exchange(client, data)
    assert [answer.status for answer in result.answers] == [200] * 5
    lines = [answer.json()["line"] for answer in result.answers]
    assert lines == [
        "POST /raw/1 HTTP/1.1",
        "POST /raw/2 HTTP/1.1",
        "GET /raw/3 HTTP/1.1",
        "PUT /raw/4 HTTP/1.1",
        "DELETE /raw/5 HTTP/1.1",
    ]
    assert [seen.request_line for seen in upstream.seen] == lines
    assert [seen.body for seen in upstream.seen] == [first, second, b"", third, b""]
    for seen in upstream.seen:
        lengths = seen.headers.getall("Content-Length", [])
        encodings = seen.headers.getall("Transfer-Encoding", [])
        assert len(lengths) + len(encodings) <= 1, (seen.request_line, dict(seen.headers))
        if seen.body:
            assert len(lengths) + len(encodings) == 1, seen.request_line
            assert lengths in ([], [str(len(seen.body))])
            assert encodings in ([], ["chunked"])


# -- S-20: the C parser or nothing ---------------------------------------------------------------


@pytest.mark.slow
def test_gateway_refuses_to_start_with_the_pure_python_parser(
    tmp_path: Path, keys: TestKeys
) -> None:
    """S-20: with AIOHTTP_NO_EXTENSIONS=1, ``gateway run`` exits 1 with a JSON
    ``startup_failed`` line instead of serving with the divergent pure-Python parser."""
    config = write_config(tmp_path, keys)
    environ = {**os.environ, **ENVIRON, "AIOHTTP_NO_EXTENSIONS": "1"}
    completed = subprocess.run(
        [sys.executable, "-m", "gateway", "run", "-c", str(config)],
        env=environ,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert completed.returncode == 1, completed.stdout + completed.stderr
    lines = [json.loads(line) for line in completed.stdout.splitlines() if line.strip()]
    assert all(isinstance(line, dict) for line in lines)
    failed = [line for line in lines if line.get("event.action") == "startup_failed"]
    assert len(failed) == 1, completed.stdout
    assert "parser" in failed[0]["error.message"]
    assert completed.stderr.strip() == ""
