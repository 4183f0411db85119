"""Headers other systems trust never come from the client, as a real WSGI framework reads them.

The upstream is werkzeug's own server (what `flask run` serves with): it turns header names into
CGI variables, so ``X-Forwarded-User``, ``X_Forwarded_User`` and ``X.Forwarded.User`` would all
be the app's ``HTTP_X_FORWARDED_USER`` if they got through. Header values the gateway cannot
pass on byte for byte are refused, never altered.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from werkzeug.serving import BaseWSGIServer, make_server

from gateway.config import Config
from gateway.server.app import create_app
from tests.conftest import GatewayTestServer, LogCapture
from tests.raw import close, http_request, open_connection, send_raw
from tests.support import TokenFactory

Client = TestClient[web.Request, web.Application]
Environ = dict[str, Any]


class WerkzeugUpstream:
    """A werkzeug server in a thread that records the CGI environ of every request."""

    def __init__(self) -> None:
        self.environs: list[Environ] = []
        self.status = "200 OK"
        self.extra_headers: list[tuple[str, str]] = []  # added to every answer
        self.server: BaseWSGIServer = make_server("127.0.0.1", 0, self._app, threaded=True)
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    def _app(self, environ: Environ, start_response: Callable[..., Any]) -> Iterable[bytes]:
        self.environs.append(dict(environ))
        start_response(self.status, [("Content-Type", "application/json"), *self.extra_headers])
        return [json.dumps({"path": environ["PATH_INFO"]}).encode()]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}"

    def http_headers(self) -> dict[str, str]:
        """The one request's CGI header variables (HTTP_*)."""
        (environ,) = self.environs
        return {key: value for key, value in environ.items() if key.startswith("HTTP_")}


@pytest.fixture
def werkzeug_upstream() -> Iterator[WerkzeugUpstream]:
    upstream = WerkzeugUpstream()
    upstream.thread.start()
    yield upstream
    upstream.server.shutdown()
    upstream.server.server_close()


ROUTES = """\
upstreams:
  app: {{url: "{upstream}"}}
routes:
  - path: /app
    upstream: app
    scopes: [orders:read]
  - path: /open
    upstream: app
    auth: none
"""


@pytest.fixture
async def client(
    aiohttp_client: Any, werkzeug_upstream: WerkzeugUpstream, make_config: Callable[..., Config]
) -> Client:
    config = make_config(upstream=werkzeug_upstream.url, routes=ROUTES)
    started: Client = await aiohttp_client(GatewayTestServer(create_app(config)))
    return started


# Each spelling of a trusted header, and the CGI variable werkzeug would give the app.
SPOOFED = [
    ("X-Forwarded-User", "HTTP_X_FORWARDED_USER"),
    ("X_Forwarded_User", "HTTP_X_FORWARDED_USER"),
    ("X.Forwarded.User", "HTTP_X_FORWARDED_USER"),
    ("X-Forwarded-Email", "HTTP_X_FORWARDED_EMAIL"),
    ("X-Forwarded-Groups", "HTTP_X_FORWARDED_GROUPS"),
    ("X-Forwarded-Preferred-Username", "HTTP_X_FORWARDED_PREFERRED_USERNAME"),
    ("X-Forwarded-Access-Token", "HTTP_X_FORWARDED_ACCESS_TOKEN"),
    ("X-Forwarded-Client-Cert", "HTTP_X_FORWARDED_CLIENT_CERT"),
    ("X-Forwarded-Port", "HTTP_X_FORWARDED_PORT"),
    ("X-Forwarded-Prefix", "HTTP_X_FORWARDED_PREFIX"),
    ("X-Forwarded-Server", "HTTP_X_FORWARDED_SERVER"),
    ("X-Auth-Request-User", "HTTP_X_AUTH_REQUEST_USER"),
    ("X-Auth-Request-Email", "HTTP_X_AUTH_REQUEST_EMAIL"),
    ("X.Auth.Subject", "HTTP_X_AUTH_SUBJECT"),
    ("X_Auth_Scopes", "HTTP_X_AUTH_SCOPES"),
    ("Forwarded", "HTTP_FORWARDED"),
    ("Remote-User", "HTTP_REMOTE_USER"),
    ("Remote_User", "HTTP_REMOTE_USER"),
    ("X-Remote-User", "HTTP_X_REMOTE_USER"),
    ("True-Client-IP", "HTTP_TRUE_CLIENT_IP"),
    ("X-Client-IP", "HTTP_X_CLIENT_IP"),
    ("CF-Connecting-IP", "HTTP_CF_CONNECTING_IP"),
    ("X-Real-IP", "HTTP_X_REAL_IP"),
    ("X-Original-Method", "HTTP_X_ORIGINAL_METHOD"),
    ("X-Original-URL", "HTTP_X_ORIGINAL_URL"),
    ("X-Amzn-Oidc-Identity", "HTTP_X_AMZN_OIDC_IDENTITY"),
    ("X-Goog-Authenticated-User-Email", "HTTP_X_GOOG_AUTHENTICATED_USER_EMAIL"),
    ("Cf-Access-Authenticated-User-Email", "HTTP_CF_ACCESS_AUTHENTICATED_USER_EMAIL"),
    ("X-MS-CLIENT-PRINCIPAL-NAME", "HTTP_X_MS_CLIENT_PRINCIPAL_NAME"),
    ("X-Consumer-Username", "HTTP_X_CONSUMER_USERNAME"),
    ("X-SSL-Client-Verify", "HTTP_X_SSL_CLIENT_VERIFY"),
]


@pytest.mark.parametrize("path", ["/app/x", "/open/x"], ids=["protected", "public"])
@pytest.mark.parametrize(("name", "variable"), SPOOFED, ids=[name for name, _ in SPOOFED])
async def test_trusted_header_spellings_never_reach_the_app(
    client: Client,
    tokens: TokenFactory,
    werkzeug_upstream: WerkzeugUpstream,
    path: str,
    name: str,
    variable: str,
) -> None:
    """Whatever its spelling, a client's copy of a header the app trusts from a proxy never
    becomes that CGI variable, on protected and public routes alike."""
    headers = [(name, "admin"), ("Authorization", f"Bearer {tokens.good()}")]
    answer = await send_raw(client, http_request("GET", path, headers))
    assert answer.status == 200, answer.body
    seen = werkzeug_upstream.http_headers()
    assert seen.get(variable) != "admin", seen


async def test_the_gateways_own_identity_reaches_the_app(
    client: Client, tokens: TokenFactory, werkzeug_upstream: WerkzeugUpstream
) -> None:
    """The identity headers the app does get are the gateway's, from the verified token."""
    headers = [("X_Auth_Subject", "admin"), ("Authorization", f"Bearer {tokens.good()}")]
    answer = await send_raw(client, http_request("GET", "/app/x", headers))
    assert answer.status == 200
    seen = werkzeug_upstream.http_headers()
    assert seen["HTTP_X_AUTH_SUBJECT"] == "alice"
    assert seen["HTTP_X_FORWARDED_FOR"].endswith("127.0.0.1")


@pytest.mark.parametrize(
    "raw_value",
    [
        pytest.param(b"abc\xffdef", id="ff"),
        pytest.param(b"\x80", id="lone-continuation"),
        pytest.param(b"caf\xc3", id="truncated-utf8"),
        pytest.param(b"\xc3\x28", id="invalid-utf8-pair"),
        pytest.param(b"\xed\xa0\x80", id="encoded-surrogate"),
    ],
)
async def test_a_value_that_cannot_pass_byte_for_byte_is_refused(
    client: Client,
    tokens: TokenFactory,
    werkzeug_upstream: WerkzeugUpstream,
    log_capture: LogCapture,
    raw_value: bytes,
) -> None:
    """A header value with bytes that are not UTF-8 is a 400 ``bad_header``; the upstream never
    sees a request with that header silently changed."""
    head = http_request("GET", "/app/x", [("Authorization", f"Bearer {tokens.good()}")])
    request = head[:-2] + b"X-Note: " + raw_value + b"\r\n\r\n"
    answer = await send_raw(client, request)
    assert answer.status == 400, answer.body
    assert answer.json()["error"] == "bad_request"
    assert werkzeug_upstream.environs == []
    (line,) = log_capture.events("access")
    assert line["gateway.auth.reason"] == "bad_header"


async def test_utf8_values_pass_byte_for_byte(
    client: Client, tokens: TokenFactory, werkzeug_upstream: WerkzeugUpstream
) -> None:
    """A UTF-8 value reaches the app as the same bytes (werkzeug reads them as Latin-1)."""
    raw = "café ☕".encode()
    head = http_request("GET", "/app/x", [("Authorization", f"Bearer {tokens.good()}")])
    answer = await send_raw(client, head[:-2] + b"X-Note: " + raw + b"\r\n\r\n")
    assert answer.status == 200
    assert werkzeug_upstream.http_headers()["HTTP_X_NOTE"].encode("latin-1") == raw


async def test_a_wsgi_apps_latin1_fields_reach_the_client_as_it_sent_them(
    client: Client, tokens: TokenFactory, werkzeug_upstream: WerkzeugUpstream
) -> None:
    """WSGI (PEP 3333) header values are Latin-1 strings, which werkzeug writes as one byte per
    character: a Flask app's ``Content-Disposition`` for ``résumé.txt`` or a German reason
    phrase arrive as obs-text. The client gets those bytes unchanged (aiohttp's serializer
    used to drop them)."""
    werkzeug_upstream.status = "200 Gr\xfc\xdfe"
    werkzeug_upstream.extra_headers = [
        ("Content-Disposition", 'attachment; filename="r\xe9sum\xe9.txt"'),
        ("Set-Cookie", "name=J\xfcrgen; Path=/"),
        ("Link", '</a>; title="\xa9 \xff"'),
    ]
    request = http_request("GET", "/app/x", [("Authorization", f"Bearer {tokens.good()}")])
    reader, writer = await open_connection(client)
    try:
        writer.write(request[:-2] + b"Connection: close\r\n\r\n")
        received = await asyncio.wait_for(reader.read(), 10)
    finally:
        await close(writer)
    head = received.partition(b"\r\n\r\n")[0] + b"\r\n"
    assert head.startswith("HTTP/1.1 200 Gr\xfc\xdfe\r\n".encode("latin-1"))
    for name, value in werkzeug_upstream.extra_headers:
        assert f"\r\n{name}: {value}\r\n".encode("latin-1") in head, name
