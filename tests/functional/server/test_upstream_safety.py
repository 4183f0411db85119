"""The upstream client against upstreams that misbehave and clients that stall.

Every upstream here is a real server on 127.0.0.1 written for its test (raw asyncio sockets, or
the standard library's http.server), and every client a raw socket, so that no library smooths
over what the gateway does with the bytes.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.server
import io
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from tests.conftest import GatewayFactory, LogCapture
from tests.functional.server.raw_upstreams import (
    RawUpstream,
    answering,
    ok,
    raw_get,
    raw_get_or_cut,
    raw_status,
    raw_upstream,
)
from tests.raw import http_request
from tests.support import DEFAULT_GATEWAY, TokenFactory

# Every request here, refused or failed, is freed without the cyclic collector.
pytestmark = pytest.mark.usefixtures("no_request_cycles")

ROUTES = """\
upstreams:
  orders: {{url: "{upstream}", timeout: 2s}}
  raw: {{url: "RAW_URL", timeout: 500ms}}
routes:
  - path: /orders
    upstream: orders
  - path: /raw
    upstream: raw
    scopes: [orders:read]
"""
SMALL_POOL = DEFAULT_GATEWAY + "limits:\n  upstream_pool_size_per_host: 4\n"
BIG = 64 * 1024 * 1024

# -- 1. a connection is reused only when nothing can be out of step ------------------------------


@pytest.mark.parametrize("after", ["stray-at-once", "stray-later", "close-later"])
async def test_bytes_after_a_response_never_reach_the_next_request(
    gateway: GatewayFactory, tokens: TokenFactory, after: str
) -> None:
    """An upstream that sends anything after its answer (at once, or while the connection idles
    in the pool) or closes an idle connection never hands those bytes or that close to the next
    request: it gets its own, complete answer."""
    stray = ok(b"stray")

    async def serve(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, up: RawUpstream
    ) -> None:
        while await up.read_head(reader):
            answer = ok(b"answer-%d" % len(up.heads))
            writer.write(answer + stray if after == "stray-at-once" else answer)
            await writer.drain()
            if after != "stray-at-once":
                await asyncio.sleep(0.05)
                if after == "close-later":
                    writer.close()
                    return
                writer.write(stray)

    async with raw_upstream(serve) as upstream:
        client = await gateway(routes=ROUTES.replace("RAW_URL", upstream.url))
        token = tokens.good()
        first = await client.get("/raw/1", headers={"Authorization": f"Bearer {token}"})
        assert (first.status, await first.read()) == (200, b"answer-1")
        await asyncio.sleep(0.2)
        second = await client.get("/raw/2", headers={"Authorization": f"Bearer {token}"})
        assert (second.status, await second.read()) == (200, b"answer-2")
        assert upstream.connections == 2


class _IgnoresGetBodies(http.server.BaseHTTPRequestHandler):
    """Python's http.server as many apps use it: a GET handler that never reads a body."""

    protocol_version = "HTTP/1.1"
    log: list[tuple[int, str]]  # (client port, path) of every request parsed

    def do_GET(self) -> None:
        self.log.append((self.client_address[1], self.path))
        body = self.path.encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        """Quiet."""


class _QuietServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        """A write to a connection the gateway reset is expected here."""


@contextlib.contextmanager
def _threading_http_server() -> Iterator[tuple[str, list[tuple[int, str]]]]:
    log: list[tuple[int, str]] = []
    handler = type("Handler", (_IgnoresGetBodies,), {"log": log})
    server = _QuietServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", log
    finally:
        server.shutdown()
        server.server_close()


async def test_a_request_smuggled_in_a_get_body_is_never_read_on_a_reused_connection(
    gateway: GatewayFactory, tokens: TokenFactory
) -> None:
    """A GET body that the upstream ignores (http.server) holds a second request: whatever the
    upstream makes of it, no later request shares that connection or gets its answer."""
    with _threading_http_server() as (url, log):
        client = await gateway(routes=ROUTES.replace("RAW_URL", url))
        auth = {"Authorization": f"Bearer {tokens.good()}"}
        smuggled = b"GET /raw/smuggled HTTP/1.1\r\nHost: upstream\r\n\r\n"
        first = await client.get("/raw/first", headers=auth, data=smuggled)
        assert (first.status, await first.read()) == (200, b"/raw/first")
        await asyncio.sleep(0.1)
        for number in range(3):
            answer = await client.get(f"/raw/next{number}", headers=auth)
            assert (answer.status, await answer.read()) == (200, f"/raw/next{number}".encode())
        await asyncio.sleep(0.1)
    smuggled_ports = {port for port, path in log if path == "/raw/smuggled"}
    later_ports = {port for port, path in log if path.startswith("/raw/next")}
    assert not smuggled_ports & later_ports, log
    first_port = next(port for port, path in log if path == "/raw/first")
    assert first_port not in later_ports, log


# -- 2. every wait is bounded ----------------------------------------------------------------


async def test_clients_that_stop_reading_cannot_hold_the_pool(
    gateway: GatewayFactory, tokens: TokenFactory, log_capture: LogCapture
) -> None:
    """Four clients that stop reading a 64 MiB answer, with four pooled connections per host:
    a fifth request is answered (200, or 503 when the pool stayed full) within the bound, the
    stalled clients are cut, and the pool serves again afterwards."""
    cut = 0
    all_cut = asyncio.Event()

    async def serve(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, up: RawUpstream
    ) -> None:
        nonlocal cut
        while head := await up.read_head(reader):
            if not head.startswith(b"GET /raw/big"):
                writer.write(ok(b"small"))
                await writer.drain()
                continue
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % BIG)
            piece = b"x" * 256 * 1024
            try:
                for _ in range(BIG // len(piece)):
                    writer.write(piece)
                    await writer.drain()
            except ConnectionError:
                cut += 1
                if cut == 4:
                    all_cut.set()
                return

    async with raw_upstream(serve) as upstream:
        client = await gateway(routes=ROUTES.replace("RAW_URL", upstream.url), gateway=SMALL_POOL)
        token = tokens.good()
        assert client.server.host is not None
        assert client.server.port is not None
        stalled = []
        for _ in range(4):
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.setblocking(False)
            await asyncio.get_running_loop().sock_connect(
                sock, (client.server.host, client.server.port)
            )
            reader, writer = await asyncio.open_connection(sock=sock)
            writer.write(http_request("GET", "/raw/big", [("Authorization", f"Bearer {token}")]))
            stalled.append((reader, writer))
        await asyncio.sleep(0.2)
        started = time.monotonic()
        async with asyncio.timeout(5):
            status, _ = await raw_status(client, "/raw/small", token)
        assert status in (200, 503)
        assert time.monotonic() - started < 2.0
        await asyncio.wait_for(all_cut.wait(), 5)
        async with asyncio.timeout(5):
            assert await raw_status(client, "/raw/small", token) == (200, b"small")
        for _, writer in stalled:
            writer.transport.abort()
    if status == 503:
        access = [line for line in log_capture.events("access") if line["url.path"] == "/raw/small"]
        assert access[0]["http.response.status_code"] == 503


ONE_CONNECTION = (
    DEFAULT_GATEWAY
    + "limits:\n  upstream_pool_size_per_host: 1\n  upstream_connect_timeout: 200ms\n"
)


async def test_full_pool_is_503_at_the_bound(
    gateway: GatewayFactory, tokens: TokenFactory, log_capture: LogCapture
) -> None:
    """With the one pooled connection busy, a second request waits no longer than the bound
    (the upstream's timeout capped by the connect timeout, here 200ms) and is answered 503 with
    Retry-After; the upstream never sees it."""

    async def serve(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, up: RawUpstream
    ) -> None:
        while await up.read_head(reader):
            await asyncio.sleep(0.45)  # inside the route's 500ms
            writer.write(ok(b"slow"))
            await writer.drain()

    async with raw_upstream(serve) as upstream:
        client = await gateway(
            routes=ROUTES.replace("RAW_URL", upstream.url), gateway=ONE_CONNECTION
        )
        auth = {"Authorization": f"Bearer {tokens.good()}"}
        first = asyncio.create_task(client.get("/raw/first", headers=auth))
        await asyncio.sleep(0.05)
        started = time.monotonic()
        second = await client.get("/raw/second", headers=auth)
        elapsed = time.monotonic() - started
        assert second.status == 503
        assert second.headers["Retry-After"] == "1"
        assert (await second.json())["error"] == "temporarily_unavailable"
        assert 0.15 < elapsed < 0.4
        assert (await first).status == 200
    assert [head.split(b" ")[1] for head in upstream.heads] == [b"/raw/first"]
    statuses = {line["url.path"]: line["http.response.status_code"] for line in
                log_capture.events("access")}  # fmt: skip
    assert statuses == {"/raw/first": 200, "/raw/second": 503}


async def test_upstream_that_stops_reading_the_body_is_cut(
    gateway: GatewayFactory, tokens: TokenFactory
) -> None:
    """An upstream that reads a request's head but never its 32 MiB body cannot hold the
    exchange: the client gets a 504 within the route's timeout of the stall."""

    async def serve(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, up: RawUpstream
    ) -> None:
        await up.read_head(reader)
        await asyncio.sleep(10)

    async with raw_upstream(serve) as upstream:
        client = await gateway(routes=ROUTES.replace("RAW_URL", upstream.url))
        auth = {"Authorization": f"Bearer {tokens.good()}"}
        started = time.monotonic()
        async with asyncio.timeout(5):
            response = await client.post(
                "/raw/upload", headers=auth, data=io.BytesIO(b"z" * (BIG // 2))
            )
        assert response.status == 504
        assert time.monotonic() - started < 3


# -- 3. a cut answer is a reset -----------------------------------------------------------------


@pytest.mark.parametrize("version", ["1.0", "1.1"])
async def test_upstream_dying_mid_body_resets_the_client(
    gateway: GatewayFactory, tokens: TokenFactory, version: str
) -> None:
    """An upstream that dies in the middle of a chunked answer leaves the client with a reset
    (or, for HTTP/1.1, a chunked body without its last chunk), never a clean end that an
    HTTP/1.0 client would take for the whole body."""

    async def serve(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, up: RawUpstream
    ) -> None:
        await up.read_head(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        for _ in range(4):
            writer.write(b"4000\r\n" + b"y" * 0x4000 + b"\r\n")
            await writer.drain()
            await asyncio.sleep(0.02)
        # and then the upstream process dies: its kernel closes the socket

    async with raw_upstream(serve) as upstream:
        client = await gateway(routes=ROUTES.replace("RAW_URL", upstream.url))
        try:
            head, body = await raw_get(client, "/raw/dies", tokens.good(), version=version)
        except ConnectionResetError:
            return  # reset before or while the head was read: the cut is plain
        except asyncio.IncompleteReadError:
            return
        assert b"Content-Length" not in head
        if version == "1.0":
            pytest.fail(f"clean end after {len(body)} body bytes of a length-less body")
        assert not body.endswith(b"0\r\n\r\n")


# -- 4. a malformed answer is a 502 ---------------------------------------------------------------

MALFORMED = {
    "bad-status-line": b"HTTP/1.1 2x0 OK\r\nContent-Length: 2\r\n\r\nhi",
    "not-http": b"HTTX/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi",
    "control-in-value": b"HTTP/1.1 200 OK\r\nX-A: a\x01b\r\nContent-Length: 2\r\n\r\nhi",
    "del-in-value": b"HTTP/1.1 200 OK\r\nX-A: a\x7fb\r\nContent-Length: 2\r\n\r\nhi",
    "control-in-name": b"HTTP/1.1 200 OK\r\nX\x01A: ab\r\nContent-Length: 2\r\n\r\nhi",
    "control-in-reason": b"HTTP/1.1 200 O\x01K\r\nContent-Length: 2\r\n\r\nhi",
    "two-lengths": b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nhi",
    "same-length-twice": b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nhi",
    "length-and-chunked": (
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"2\r\nhi\r\n0\r\n\r\n"
    ),
    "lf-only": b"HTTP/1.1 200 OK\nContent-Length: 2\n\nhi",
    "obs-fold": b"HTTP/1.1 200 OK\r\nX-A: b\r\n c\r\nContent-Length: 2\r\n\r\nhi",
    "switching-protocols": b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\n",
    "control-in-a-later-value": (
        b"HTTP/1.1 200 OK\r\n"
        + b"".join(b"X-%d: fine\tvalue\r\n" % n for n in range(6))
        + b"X-Last: a\x1bb\r\nContent-Length: 2\r\n\r\nhi"
    ),
    "control-in-a-later-reason": b"HTTP/1.1 200 Fine\tReason\x0b\r\nContent-Length: 2\r\n\r\nhi",
    "257-fields": (
        b"HTTP/1.1 200 OK\r\n"
        + b"".join(b"X-%d: v\r\n" % n for n in range(256))
        + b"Content-Length: 2\r\n\r\nhi"
    ),
    "head-over-64-kib": (
        b"HTTP/1.1 200 OK\r\n"
        + b"".join(b"X-%d: %s\r\n" % (n, b"v" * 1024) for n in range(65))
        + b"Content-Length: 2\r\n\r\nhi"
    ),
    "one-field-over-64-kib": (
        b"HTTP/1.1 200 OK\r\nX-Big: " + b"v" * (65 * 1024) + b"\r\nContent-Length: 2\r\n\r\nhi"
    ),
}
# At the bounds, and with what a value may hold (HTAB, obs-text): answered as sent.
WITHIN_BOUNDS = {
    "256-fields": b"".join(b"X-%d: v\r\n" % n for n in range(255)),
    "head-of-63-kib": b"".join(b"X-%d: %s\r\n" % (n, b"v" * 1000) for n in range(63)),
    "tabs-and-obs-text": b"X-A: a\tb\r\nX-B: caf\xe9\r\nX-C: \x80\xff\r\n",
}


@pytest.mark.parametrize("fields", WITHIN_BOUNDS.values(), ids=WITHIN_BOUNDS.keys())
async def test_an_answer_within_the_head_bounds_is_relayed(
    gateway: GatewayFactory, tokens: TokenFactory, fields: bytes
) -> None:
    """256 fields, a head under 64 KiB, and values with HTAB and obs-text are answered as the
    upstream sent them (the bounds are not off by one, and the value check is not too wide)."""

    async def serve(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, up: RawUpstream
    ) -> None:
        await up.read_head(reader)
        writer.write(b"HTTP/1.1 200 OK\r\n" + fields + b"Content-Length: 2\r\n\r\nhi")
        await writer.drain()
        await up.read_head(reader)

    async with raw_upstream(serve) as upstream:
        client = await gateway(routes=ROUTES.replace("RAW_URL", upstream.url))
        head, body = await raw_get(client, "/raw/x", tokens.good())
    assert head.startswith(b"HTTP/1.1 200 ")
    assert body == b"hi"
    for line in fields.split(b"\r\n")[:-1]:
        assert b"\r\n" + line + b"\r\n" in head


# Heads that never end, each spelled another way: (what comes first, what repeats forever).
ENDLESS_HEADS = {
    "field-value": (b"HTTP/1.1 200 OK\r\nX-Endless: ", b"v" * 1024),
    "field-name": (b"HTTP/1.1 200 OK\r\nX-", b"n" * 1024),
    "reason-phrase": (b"HTTP/1.1 200 ", b"O" * 1024),
    "interim-heads": (b"", b"HTTP/1.1 100 Continue\r\n\r\n" * 40),
    "fields-of-a-1xx": (b"HTTP/1.1 103 Early Hints\r\nLink: ", b"l" * 1024),
}


@pytest.mark.parametrize("endless", ENDLESS_HEADS.values(), ids=ENDLESS_HEADS.keys())
async def test_a_head_that_never_ends_is_502_at_its_bound(
    gateway: GatewayFactory,
    tokens: TokenFactory,
    log_capture: LogCapture,
    endless: tuple[bytes, bytes],
) -> None:
    """An upstream whose head never ends (a value, a name or a reason that goes on, or 1xx
    heads without end) is answered 502 once 64 KiB of it has come, long before the route's
    timeout (504): the gateway does not keep an endless head."""
    first, again = endless

    async def serve(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, up: RawUpstream
    ) -> None:
        await up.read_head(reader)
        writer.write(first)
        for _ in range(10_000):
            writer.write(again)
            await writer.drain()
            await asyncio.sleep(0.001)

    async with raw_upstream(serve) as upstream:
        client = await gateway(routes=ROUTES.replace("RAW_URL", upstream.url))
        started = time.monotonic()
        response = await client.get("/raw/x", headers={"Authorization": f"Bearer {tokens.good()}"})
        took = time.monotonic() - started
    assert response.status == 502
    assert took < 0.45  # the route's timeout is 500ms
    (access,) = log_capture.events("access")
    assert access["http.response.status_code"] == 502


ENDLESS_TRAILERS = {
    "trailer-value": b"X-Trailer: ",
    "trailer-name": b"X-Trailer-",
}


@pytest.mark.parametrize("start", ENDLESS_TRAILERS.values(), ids=ENDLESS_TRAILERS.keys())
async def test_trailers_that_never_end_cut_the_answer_at_their_bound(
    gateway: GatewayFactory, tokens: TokenFactory, start: bytes
) -> None:
    """A chunked answer whose trailer section never ends (llhttp keeps a field until it is
    whole) is cut once 64 KiB of it has come: the client, which has the head and the body so
    far, sees a reset or a body without its last chunk, before the route's timeout."""

    async def serve(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, up: RawUpstream
    ) -> None:
        await up.read_head(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n")
        writer.write(start)
        for _ in range(10_000):
            writer.write(b"t" * 1024)
            await writer.drain()
            await asyncio.sleep(0.001)

    async with raw_upstream(serve) as upstream:
        client = await gateway(routes=ROUTES.replace("RAW_URL", upstream.url))
        started = time.monotonic()
        head, body = await raw_get_or_cut(client, "/raw/x", tokens.good())
        took = time.monotonic() - started
    assert head == b"" or head.startswith(b"HTTP/1.1 200 ")
    assert not body.endswith(b"0\r\n\r\n")
    assert took < 0.45  # the route's timeout is 500ms


@pytest.mark.parametrize("reply", MALFORMED.values(), ids=MALFORMED.keys())
async def test_malformed_upstream_answer_is_502(
    gateway: GatewayFactory, tokens: TokenFactory, log_capture: LogCapture, reply: bytes
) -> None:
    """An answer that is not valid HTTP/1.1 (status line, control bytes in a header or the
    reason, conflicting framing) is a 502, and the access line says 502."""

    async def serve(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, up: RawUpstream
    ) -> None:
        await up.read_head(reader)
        writer.write(reply)
        await writer.drain()
        await asyncio.sleep(1)

    async with raw_upstream(serve) as upstream:
        client = await gateway(routes=ROUTES.replace("RAW_URL", upstream.url))
        response = await client.get("/raw/x", headers={"Authorization": f"Bearer {tokens.good()}"})
        assert response.status == 502
        assert (await response.json())["error"] == "bad_gateway"
    (access,) = log_capture.events("access")
    assert access["http.response.status_code"] == 502


# -- 5. nothing is retried ---------------------------------------------------------------------


async def test_request_to_an_upstream_that_dies_is_sent_once(
    gateway: GatewayFactory, tokens: TokenFactory
) -> None:
    """An upstream that closes a kept-alive connection on reading the next request gets that
    request exactly once: the client gets a 502, not a silent second attempt."""

    async def serve(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, up: RawUpstream
    ) -> None:
        await up.read_head(reader)
        if len(up.heads) > 1:
            return  # the upstream dies on every request after the first
        writer.write(ok(b"first"))
        await writer.drain()
        await up.read_head(reader)

    async with raw_upstream(serve) as upstream:
        client = await gateway(routes=ROUTES.replace("RAW_URL", upstream.url))
        auth = {"Authorization": f"Bearer {tokens.good()}"}
        first = await client.get("/raw/1", headers=auth)
        assert (first.status, await first.read()) == (200, b"first")
        second = await client.get("/raw/2", headers=auth)
        assert second.status == 502
        await asyncio.sleep(0.1)
        assert len(upstream.heads) == 2
        assert upstream.connections == 1


@pytest.mark.parametrize(
    ("upstream_does", "status"),
    [("refuse", 502), ("reset", 502), ("garbage", 502), ("stall", 504), ("answer-early", 200)],
)
async def test_an_upload_that_fails_upstream_is_freed_at_once(
    gateway: GatewayFactory, tokens: TokenFactory, upstream_does: str, status: int
) -> None:
    """A 1 MiB upload whose upstream refuses the connection, resets it, answers garbage, never
    answers, or answers before reading the body: the request (with what the gateway buffered
    of its body) is freed when it ends, not left in a reference cycle for the collector. (Such
    cycles once held ~0.5 MiB per refused upload: 8 clients uploading to a down upstream took
    the gateway from 62 to 230 MiB.) The module's ``no_request_cycles`` is the check."""

    async def serve(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, up: RawUpstream
    ) -> None:
        await up.read_head(reader)
        if upstream_does == "garbage":
            writer.write(b"SSH-2.0-OpenSSH_9.6\r\n\r\n")
        elif upstream_does == "answer-early":
            writer.write(ok(b"early"))
        elif upstream_does == "stall":
            await asyncio.sleep(2)
        await writer.drain()

    async with raw_upstream(serve) as upstream:
        url = upstream.url
        if upstream_does == "refuse":
            with socket.socket() as unused:
                unused.bind(("127.0.0.1", 0))
                url = f"http://127.0.0.1:{unused.getsockname()[1]}"
        client = await gateway(routes=ROUTES.replace("RAW_URL", url))
        auth = {"Authorization": f"Bearer {tokens.good()}"}
        answer = await client.post("/raw/upload", data=b"x" * (1 << 20), headers=auth)
        assert answer.status == status
        await answer.read()


# -- 7. the client adds nothing ---------------------------------------------------------------


async def test_upstream_receives_no_header_the_client_did_not_send(
    gateway: GatewayFactory, tokens: TokenFactory
) -> None:
    """The request head names only the client's headers and the gateway's documented ones, with
    Host as the upstream URL's host:port."""
    async with raw_upstream(answering(ok(b"ok"))) as upstream:
        client = await gateway(routes=ROUTES.replace("RAW_URL", upstream.url))
        head, _ = await raw_get(client, "/raw/x?q=1", tokens.good())
        assert head.startswith(b"HTTP/1.1 200")
    request_line, *lines = upstream.heads[0].decode("latin-1").strip().split("\r\n")
    assert request_line == "GET /raw/x?q=1 HTTP/1.1"
    names = [line.partition(":")[0].lower() for line in lines]
    assert names[0] == "host"
    assert lines[0] == f"Host: {upstream.url.removeprefix('http://')}"
    assert set(names) == {
        "host", "x-forwarded-for", "x-forwarded-proto", "x-forwarded-host", "x-request-id",
        "x-auth-issuer", "x-auth-subject", "x-auth-scopes",
    }  # fmt: skip
