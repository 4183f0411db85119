"""TLS at both ends, with real certificates from a throwaway CA (trustme)."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import aiohttp
import pytest
import trustme
from aiohttp import web
from pytest_aiohttp import AiohttpServer

from gateway.config import ConfigError, load
from gateway.config.tls import server_context
from gateway.server.app import GatewayServer
from tests.conftest import LogCapture
from tests.raw import http_request
from tests.support import (
    ENVIRON,
    RecordingUpstream,
    TestKeys,
    TokenFactory,
    gateway_config,
    local_issuer,
    write_config,
)

# Every request here, refused or failed, is freed without the cyclic collector.
pytestmark = pytest.mark.usefixtures("no_request_cycles")

TLS_GATEWAY = gateway_config(
    local_issuer(),
    extra="""\
tls:
  cert: tls/server.crt
  key: tls/server.key
  http_redirect: {{host: 127.0.0.1, port: 0}}
""",
)

UPSTREAM_ROUTES = """\
upstreams:
  orders: {{url: "{upstream}", timeout: 2s{tls_options}}}
routes:
  - path: /orders
    upstream: orders
    methods: [GET]
    scopes: [orders:read]
"""


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    """A throwaway certificate authority."""
    return trustme.CA()


def _write_pair(cert: trustme.LeafCert, directory: Path) -> None:
    directory.mkdir(exist_ok=True)
    cert.cert_chain_pems[0].write_to_path(str(directory / "server.crt"))
    for extra in cert.cert_chain_pems[1:]:
        extra.write_to_path(str(directory / "server.crt"), append=True)
    cert.private_key_pem.write_to_path(str(directory / "server.key"))


def _client_context(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


Start = Callable[..., Awaitable[GatewayServer]]


@pytest.fixture
async def start(
    tmp_path: Path, keys: TestKeys, ca: trustme.CA, aiohttp_server: AiohttpServer
) -> AsyncIterator[Start]:
    """Start a real GatewayServer with HTTPS in front of a recording upstream."""
    servers: list[GatewayServer] = []

    async def go(*, recorder: RecordingUpstream) -> GatewayServer:
        upstream = await aiohttp_server(recorder.app())
        _write_pair(ca.issue_cert("127.0.0.1", "localhost"), tmp_path / "tls")
        path = write_config(
            tmp_path, keys, upstream=str(upstream.make_url("")).rstrip("/"), gateway=TLS_GATEWAY
        )
        server = GatewayServer(load(path, ENVIRON), watch=True)
        await server.start()
        servers.append(server)
        return server

    yield go
    for server in servers:
        await server.stop()


async def test_https_request_with_valid_token(
    start: Start, ca: trustme.CA, tokens: TokenFactory
) -> None:
    """A request over a real TLS handshake is authorised and proxied, with HSTS on the response."""
    recorder = RecordingUpstream()
    server = await start(recorder=recorder)
    url = f"https://127.0.0.1:{server.public_port}/orders/1"
    async with aiohttp.ClientSession() as session:
        async with session.get(url, headers=_auth(tokens.good()), ssl=_client_context(ca)) as ok:
            assert ok.status == 200
            assert ok.headers["Strict-Transport-Security"] == "max-age=31536000"
        async with session.get(url, ssl=_client_context(ca)) as refused:
            assert refused.status == 401
            assert "Strict-Transport-Security" in refused.headers
    assert recorder.last.headers["X-Forwarded-Proto"] == "https"


async def test_plain_http_port_only_redirects(
    start: Start, tokens: TokenFactory, log_capture: LogCapture
) -> None:
    """The plain-HTTP listener answers 308 to the HTTPS URL and forwards nothing, token or not."""
    recorder = RecordingUpstream()
    server = await start(recorder=recorder)
    token = tokens.good()
    url = f"http://127.0.0.1:{server.redirect_port}/orders/1?page=2"
    async with (
        aiohttp.ClientSession() as session,
        session.get(url, headers=_auth(token), allow_redirects=False) as response,
    ):
        assert response.status == 308
        assert response.headers["Location"] == (
            f"https://127.0.0.1:{server.public_port}/orders/1?page=2"
        )
    assert recorder.requests == []
    assert token not in log_capture.text
    (line,) = log_capture.events("access")
    assert line["gateway.auth.reason"] == "https_required"


def test_server_context_refuses_versions_below_tls_1_2(tmp_path: Path, ca: trustme.CA) -> None:
    """The public listener's context sets TLS 1.2 as its minimum (older clients cannot connect)."""
    _write_pair(ca.issue_cert("127.0.0.1"), tmp_path)
    context = server_context(tmp_path / "server.crt", tmp_path / "server.key")
    assert context.minimum_version is ssl.TLSVersion.TLSv1_2


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3])
async def test_tls_1_2_and_1_3_handshakes(
    start: Start, ca: trustme.CA, version: ssl.TLSVersion
) -> None:
    """Clients pinned to TLS 1.2 or to TLS 1.3 both complete a handshake."""
    server = await start(recorder=RecordingUpstream())
    context = _client_context(ca)
    context.minimum_version = context.maximum_version = version
    _, writer = await asyncio.open_connection("127.0.0.1", server.public_port, ssl=context)
    ssl_object = writer.get_extra_info("ssl_object")
    assert ssl_object.version() == {"TLSv1_2": "TLSv1.2", "TLSv1_3": "TLSv1.3"}[version.name]
    writer.close()
    await writer.wait_closed()


async def _peer_names(port: int, ca: trustme.CA) -> set[str]:
    _, writer = await asyncio.open_connection("127.0.0.1", port, ssl=_client_context(ca))
    certificate = writer.get_extra_info("peercert")
    writer.close()
    await writer.wait_closed()
    return {value for _, value in certificate["subjectAltName"]}


async def test_certificate_rotation_on_disk_needs_no_restart(
    start: Start, ca: trustme.CA, tmp_path: Path, log_capture: LogCapture
) -> None:
    """New handshakes get a certificate replaced on disk, while the old connection keeps working."""
    server = await start(recorder=RecordingUpstream())
    assert "rotated.example" not in await _peer_names(server.public_port, ca)
    _write_pair(ca.issue_cert("127.0.0.1", "rotated.example"), tmp_path / "tls")
    deadline = time.monotonic() + 3
    while "rotated.example" not in await _peer_names(server.public_port, ca):
        assert time.monotonic() < deadline, "the new certificate was not picked up"
        await asyncio.sleep(0.1)
    assert log_capture.events("tls_reloaded")


@pytest.mark.parametrize(
    ("problem", "fragment"),
    [("missing", "no such file"), ("mismatched", "do not belong together")],
)
def test_unusable_certificate_is_a_clear_config_error(
    tmp_path: Path, keys: TestKeys, ca: trustme.CA, problem: str, fragment: str
) -> None:
    """A missing certificate, or a certificate and key that do not match, stops startup with a
    one-line reason."""
    _write_pair(ca.issue_cert("127.0.0.1"), tmp_path / "tls")
    if problem == "missing":
        (tmp_path / "tls" / "server.crt").unlink()
    else:
        ca.issue_cert("other.example").private_key_pem.write_to_path(
            str(tmp_path / "tls" / "server.key")
        )
    path = write_config(tmp_path, keys, gateway=TLS_GATEWAY)
    with pytest.raises(ConfigError) as caught:
        load(path, ENVIRON)
    assert any(fragment in issue.message for issue in caught.value.issues), caught.value.issues


# -- upstream TLS ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def upstream_ca() -> trustme.CA:
    """The CA of the upstream's certificate (not in the system trust store)."""
    return trustme.CA()


async def _https_upstream(
    aiohttp_server: AiohttpServer, ca: trustme.CA, *, require_client_cert: trustme.CA | None = None
) -> tuple[str, RecordingUpstream]:
    recorder = RecordingUpstream()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    if require_client_cert is not None:
        context.verify_mode = ssl.CERT_REQUIRED
        require_client_cert.configure_trust(context)
    server = await aiohttp_server(recorder.app(), ssl=context)
    return f"https://127.0.0.1:{server.port}", recorder


async def _gateway_status(
    tmp_path: Path, keys: TestKeys, tokens: TokenFactory, upstream: str, tls_options: str
) -> int:
    routes = UPSTREAM_ROUTES.replace("{tls_options}", tls_options)
    path = write_config(tmp_path, keys, upstream=upstream, routes=routes)
    server = GatewayServer(load(path, ENVIRON), watch=False)
    await server.start()
    try:
        async with (
            aiohttp.ClientSession() as session,
            session.get(
                f"http://127.0.0.1:{server.public_port}/orders/1", headers=_auth(tokens.good())
            ) as response,
        ):
            body = await response.text()
            if response.status >= 500:
                assert "127.0.0.1" not in body  # no upstream address or TLS error text
            return response.status
    finally:
        await server.stop()


async def test_untrusted_upstream_certificate_is_502(
    tmp_path: Path, keys: TestKeys, tokens: TokenFactory, aiohttp_server: AiohttpServer,
    upstream_ca: trustme.CA, log_capture: LogCapture,
) -> None:  # fmt: skip
    """An https upstream whose certificate the system store does not trust gets no request."""
    url, recorder = await _https_upstream(aiohttp_server, upstream_ca)
    assert await _gateway_status(tmp_path, keys, tokens, url, "") == 502
    assert recorder.requests == []
    (event,) = log_capture.events("upstream_failed")
    assert event["gateway.upstream.name"] == "orders"
    assert event["error.type"] == "ClientConnectorCertificateError"


async def test_upstream_verified_with_configured_ca(
    tmp_path: Path, keys: TestKeys, tokens: TokenFactory, aiohttp_server: AiohttpServer,
    upstream_ca: trustme.CA,
) -> None:  # fmt: skip
    """With `ca:` naming the upstream's CA bundle, the upstream is verified and reached."""
    url, recorder = await _https_upstream(aiohttp_server, upstream_ca)
    upstream_ca.cert_pem.write_to_path(str(tmp_path / "upstream-ca.pem"))
    status = await _gateway_status(tmp_path, keys, tokens, url, ", ca: upstream-ca.pem")
    assert status == 200
    assert recorder.last.raw_path == "/orders/1"


async def test_mtls_upstream_needs_the_client_certificate(
    tmp_path: Path, keys: TestKeys, tokens: TokenFactory, aiohttp_server: AiohttpServer,
    upstream_ca: trustme.CA,
) -> None:  # fmt: skip
    """An upstream that requires a client certificate answers with one (200) and refuses the
    handshake without it (502)."""
    client_ca = trustme.CA()
    url, recorder = await _https_upstream(
        aiohttp_server, upstream_ca, require_client_cert=client_ca
    )
    upstream_ca.cert_pem.write_to_path(str(tmp_path / "upstream-ca.pem"))
    client = client_ca.issue_cert("gateway.example")
    client.cert_chain_pems[0].write_to_path(str(tmp_path / "client.crt"))
    client.private_key_pem.write_to_path(str(tmp_path / "client.key"))
    without = await _gateway_status(tmp_path, keys, tokens, url, ", ca: upstream-ca.pem")
    mtls = ", ca: upstream-ca.pem, client_cert: client.crt, client_key: client.key"
    with_cert = await _gateway_status(tmp_path, keys, tokens, url, mtls)
    assert (without, with_cert) == (502, 200)
    assert len(recorder.requests) == 1


async def test_disabled_verification_is_explicit_and_warned(
    tmp_path: Path, keys: TestKeys, tokens: TokenFactory, aiohttp_server: AiohttpServer,
    upstream_ca: trustme.CA, log_capture: LogCapture,
) -> None:  # fmt: skip
    """`tls_verify: false` on one upstream reaches it without verification, with a warning."""
    url, _ = await _https_upstream(aiohttp_server, upstream_ca)
    assert await _gateway_status(tmp_path, keys, tokens, url, ", tls_verify: false") == 200
    assert log_capture.events("upstream_tls_verify_disabled")


@pytest.mark.parametrize(
    ("upstream", "tls_options", "fragment"),
    [
        ("http://127.0.0.1:9", ", ca: upstream-ca.pem", "need an https:// url"),
        ("https://127.0.0.1:9", ", client_cert: client.crt", "go together"),
        ("https://127.0.0.1:9", ", ca: missing.pem", "not a readable PEM CA bundle"),
    ],
    ids=["tls-options-on-http", "cert-without-key", "missing-ca"],
)
def test_upstream_tls_config_errors(
    tmp_path: Path, keys: TestKeys, upstream_ca: trustme.CA, upstream: str, tls_options: str,
    fragment: str,
) -> None:  # fmt: skip
    """Upstream TLS options are checked when the config loads, each with a clear message."""
    upstream_ca.cert_pem.write_to_path(str(tmp_path / "upstream-ca.pem"))
    routes = UPSTREAM_ROUTES.replace("{tls_options}", tls_options)
    path = write_config(tmp_path, keys, upstream=upstream, routes=routes)
    with pytest.raises(ConfigError) as caught:
        load(path, ENVIRON)
    assert any(fragment in issue.message for issue in caught.value.issues), caught.value.issues


@pytest.mark.parametrize(
    "raw",
    [
        b"GET /orders/1?k=SECRET HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer SECRET\x01\r\n\r\n",
        b"GET /orders/1?k=SECRET HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer SECRET\r\n"
        b"Bad\r\n\r\n",
        b"G(T /orders/1?k=SECRET HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer SECRET\r\n\r\n",
        b"GET /orders/1?k=SECRET HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer SECRET\r\n"
        b"Content-Length: 1\r\nContent-Length: 2\r\n\r\n",
    ],
    ids=["control-byte-in-token", "bad-header-line", "bad-method", "two-content-lengths"],
)
@pytest.mark.parametrize("listener", ["redirect", "admin"])
async def test_the_other_listeners_answer_parser_refusals_without_echoing(
    start: Start, log_capture: LogCapture, raw: bytes, listener: str
) -> None:
    """The plain-HTTP redirect listener's and the admin listener's parser refusals are the
    gateway's JSON 400 and one access line, as on the public port: neither the answer nor any
    log line quotes the request (aiohttp's own error page and its 'Error handling request'
    traceback both do; a scraper's token would be in them)."""
    server = await start(recorder=RecordingUpstream())
    port = server.redirect_port if listener == "redirect" else server.admin_port
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(raw)
    await writer.drain()
    answer = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    assert answer.split(b" ", 2)[1] == b"400"
    assert b"SECRET" not in answer
    assert b"application/json" in answer.partition(b"\r\n\r\n")[0].lower()
    assert "SECRET" not in log_capture.text
    (line,) = log_capture.events("access")
    assert line["gateway.auth.reason"] == "unparseable_request"


BIG_BODY = bytes(range(256)) * 4096  # 1 MiB


async def _big_answers(request: web.Request) -> web.StreamResponse:
    """1 MiB, chunked (/orders/chunked) or with a Content-Length (/orders/length)."""
    response = web.StreamResponse()
    if request.path.endswith("length"):
        response.content_length = len(BIG_BODY)
    else:
        response.enable_chunked_encoding()
    await response.prepare(request)
    for start in range(0, len(BIG_BODY), 16 * 1024):
        await response.write(BIG_BODY[start : start + 16 * 1024])
    await response.write_eof()
    return response


@contextlib.asynccontextmanager
async def _https_gateway(
    tmp_path: Path,
    keys: TestKeys,
    ca: trustme.CA,
    aiohttp_server: AiohttpServer,
    answer: Callable[[web.Request], Awaitable[web.StreamResponse]],
) -> AsyncIterator[GatewayServer]:
    """A real GatewayServer with HTTPS in front of an upstream answering /orders/{name} with
    ``answer``, for the length of the block."""
    app = web.Application()
    app.router.add_get("/orders/{name}", answer)
    upstream = await aiohttp_server(app)
    _write_pair(ca.issue_cert("127.0.0.1", "localhost"), tmp_path / "tls")
    path = write_config(
        tmp_path, keys, upstream=str(upstream.make_url("")).rstrip("/"), gateway=TLS_GATEWAY
    )
    server = GatewayServer(load(path, ENVIRON))
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.mark.parametrize("framing", ["chunked", "length"])
async def test_a_streamed_answer_reaches_an_https_client_whole(
    tmp_path: Path,
    keys: TestKeys,
    ca: trustme.CA,
    aiohttp_server: AiohttpServer,
    tokens: TokenFactory,
    framing: str,
) -> None:
    """A 1 MiB answer, streamed from the upstream's parser to the client's TLS transport, reaches
    an HTTPS client byte for byte, chunked or with its length, and the connection serves the
    next request."""
    https = _https_gateway(tmp_path, keys, ca, aiohttp_server, _big_answers)
    async with https as server:
        url = f"https://127.0.0.1:{server.public_port}/orders/{framing}"
        async with aiohttp.ClientSession() as session:
            for _ in range(2):
                async with session.get(
                    url, headers=_auth(tokens.good()), ssl=_client_context(ca)
                ) as response:
                    assert response.status == 200
                    assert await response.read() == BIG_BODY


async def _endless(request: web.Request) -> web.StreamResponse:
    """64 MiB with a Content-Length (/orders/endless), or 60 KB read whole (/orders/small)."""
    if request.path.endswith("small"):
        return web.Response(body=b"x" * 60_000)
    response = web.StreamResponse()
    response.content_length = 64 << 20
    await response.prepare(request)
    for _ in range(1024):
        await response.write(b"x" * 65536)
    return response


@pytest.mark.parametrize("answer", ["streamed", "whole"])
async def test_an_https_client_that_leaves_while_the_gateway_waits_for_it_leaves_no_cycle(
    tmp_path: Path,
    keys: TestKeys,
    ca: trustme.CA,
    aiohttp_server: AiohttpServer,
    tokens: TokenFactory,
    answer: str,
) -> None:
    """The TLS transport's spelling of a client that leaves while the gateway waits in
    aiohttp's drain (`test_client_leaves` has the plain one): a streamed answer the client
    stopped reading, or pipelined small answers it never reads. The module's
    ``no_request_cycles`` is the check."""
    async with _https_gateway(tmp_path, keys, ca, aiohttp_server, _endless) as server:
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", server.public_port, ssl=_client_context(ca)
        )
        auth = [("Authorization", f"Bearer {tokens.good()}")]
        if answer == "streamed":
            writer.write(http_request("GET", "/orders/endless", auth))
        else:
            writer.write(http_request("GET", "/orders/small", auth) * 400)
        await reader.readuntil(b"\r\n\r\n")
        await asyncio.sleep(1)  # the sockets fill; the gateway waits for this client
        writer.transport.abort()
        await asyncio.sleep(0.5)
