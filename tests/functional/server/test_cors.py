"""CORS through a real gateway in front of a real upstream that sends its own CORS fields:
preflights answered by the gateway (the upstream never sees them), the gateway's fields on every
answer for an allowed origin (forwarded, buffered or streamed, and refused), none for any other
spelling of an origin, and routes without a policy left exactly as before."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from multidict import CIMultiDict
from pytest_aiohttp import AiohttpClient, AiohttpServer

from gateway.config import Config
from gateway.server.app import create_app
from tests.conftest import GatewayTestServer, LogCapture
from tests.support import TokenFactory

Client = TestClient[web.Request, web.Application]

APP = "https://app.example.com"
ROUTES = """\
upstreams:
  orders: {{url: "{upstream}", timeout: 2s}}
  gone: {{url: "http://127.0.0.1:9", timeout: 2s}}
defaults:
  cors:
    origins: [https://app.example.com, "https://*.example.org"]
    headers: [Content-Type]
    expose_headers: [X-Upstream]
    credentials: true
    max_age: 10m
routes:
  - path: /orders
    upstream: orders
    methods: [GET, POST]
    scopes: [orders:read]
    max_body_size: 10
  - path: /limited
    upstream: orders
    auth: none
    rate_limit: {{rate: 1/min, burst: 1, key: ip}}
  - path: /gone
    upstream: gone
    auth: none
  - path: /legacy
    upstream: orders
    auth: none
    cors: off
"""
BIG = 200 * 1024  # over the gateway's buffered-answer size: streamed


class CorsUpstream:
    """An upstream with its own (too generous) CORS: ``*``, credentials, an exposed header."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        return app

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.seen.append((request.method, request.path))
        headers = {
            "Access-Control-Allow-Origin": "*",
            "access-control-allow-credentials": "true",
            "Access-Control-Expose-Headers": "X-Secret",
            "Vary": "Accept-Encoding",
            "X-Upstream": "cors",
        }
        size = BIG if request.path.endswith("/big") else 2
        return web.Response(body=b"x" * size, headers=headers)


@pytest.fixture
def upstream() -> CorsUpstream:
    return CorsUpstream()


@pytest.fixture
async def client(
    aiohttp_server: AiohttpServer,
    aiohttp_client: AiohttpClient,
    make_config: Callable[..., Config],
    upstream: CorsUpstream,
) -> Client:
    server: TestServer = await aiohttp_server(upstream.app())
    config = make_config(upstream=str(server.make_url("")).rstrip("/"), routes=ROUTES)
    made: Any = await aiohttp_client(GatewayTestServer(create_app(config)))
    return cast(Client, made)


def _preflight(origin: str, method: str = "GET", headers: str | None = None) -> dict[str, str]:
    fields = {"Origin": origin, "Access-Control-Request-Method": method}
    if headers is not None:
        fields["Access-Control-Request-Headers"] = headers
    return fields


def _cors_fields(response: Any) -> dict[str, str]:
    return {k: v for k, v in response.headers.items() if k.lower().startswith("access-control-")}


async def test_a_preflight_is_answered_by_the_gateway_without_a_token(
    client: Client, upstream: CorsUpstream, log_capture: LogCapture
) -> None:
    """204 with the policy's fields; the upstream never sees it; the access line says so."""
    response = await client.options(
        "/orders/7", headers=_preflight(APP, "POST", "authorization, content-type")
    )
    assert response.status == 204
    assert _cors_fields(response) == {
        "Access-Control-Allow-Origin": APP,
        "Access-Control-Allow-Credentials": "true",
        "Access-Control-Allow-Methods": "POST",
        "Access-Control-Allow-Headers": "authorization, content-type",
        "Access-Control-Max-Age": "600",
    }
    assert response.headers["Vary"] == (
        "Origin, Access-Control-Request-Method, Access-Control-Request-Headers"
    )
    assert await response.read() == b""
    assert upstream.seen == []
    line = log_capture.lines()[-1]
    assert (line["gateway.auth.result"], line["gateway.auth.reason"], line["gateway.route"]) == (
        "preflight", None, "/orders",
    )  # fmt: skip
    assert line["http.response.status_code"] == 204


REFUSED_ORIGINS = [
    "https://evil.test",
    "http://app.example.com",  # another scheme
    "https://app.example.com:8443",  # another port
    "https://app.example.com.evil.test",  # the allowed one as a prefix
    "https://evilapp.example.com",
    "https://a.b.example.org",  # two labels for the pattern's one
    "https://example.org",  # none
    "null",
    "https://app.example.com/",
    "https://app.example.com, https://evil.test",
    "",
]


@pytest.mark.parametrize("origin", REFUSED_ORIGINS)
async def test_a_preflight_from_any_other_origin_gets_no_cors_fields(
    client: Client, upstream: CorsUpstream, log_capture: LogCapture, origin: str
) -> None:
    """403 without Access-Control-* (the browser blocks), logged with its reason."""
    response = await client.options("/orders", headers=_preflight(origin))
    assert response.status == 403
    assert _cors_fields(response) == {}
    assert (await response.json())["error"] == "forbidden"
    assert upstream.seen == []
    line = log_capture.lines()[-1]
    assert (line["gateway.auth.result"], line["gateway.auth.reason"]) == (
        "denied",
        "cors_origin_not_allowed",
    )


@pytest.mark.parametrize(
    ("origin", "allowed"),
    [("HTTPS://APP.EXAMPLE.COM", APP), ("https://app.example.com:443", APP),
     ("https://shop.example.org", "https://shop.example.org")],
)  # fmt: skip
async def test_other_spellings_of_an_allowed_origin_get_its_canonical_form(
    client: Client, origin: str, allowed: str
) -> None:
    """Case and a default port do not matter; the answer names the canonical origin."""
    response = await client.options("/orders", headers=_preflight(origin))
    assert response.status == 204
    assert response.headers["Access-Control-Allow-Origin"] == allowed


@pytest.mark.parametrize(
    ("preflight", "reason"),
    [(_preflight(APP, "DELETE"), None), (_preflight(APP, "GET", "x-secret"),
      "cors_headers_not_allowed")],
)  # fmt: skip
async def test_a_preflight_for_a_method_or_header_not_allowed_is_refused(
    client: Client, upstream: CorsUpstream, preflight: dict[str, str], reason: str | None
) -> None:
    """A method no route has is the OPTIONS's own 405; an unlisted header a 403; no fields."""
    response = await client.options("/orders", headers=preflight)
    assert response.status == (405 if reason is None else 403)
    assert _cors_fields(response) == {}
    assert upstream.seen == []


@pytest.mark.parametrize("path", ["/orders/7", "/orders/big"])
async def test_an_allowed_request_gets_the_gateways_fields_not_the_upstreams(
    client: Client, tokens: TokenFactory, path: str
) -> None:
    """Buffered or streamed, the upstream's Access-Control-* are replaced and its Vary kept."""
    response = await client.get(
        path, headers={"Origin": APP, "Authorization": f"Bearer {tokens.good()}"}
    )
    assert response.status == 200
    assert _cors_fields(response) == {
        "Access-Control-Allow-Origin": APP,
        "Access-Control-Allow-Credentials": "true",
        "Access-Control-Expose-Headers": (
            "WWW-Authenticate, Retry-After, RateLimit, RateLimit-Policy, X-Upstream"
        ),
    }
    assert response.headers.getall("Vary") == ["Accept-Encoding", "Origin"]
    assert len(await response.read()) == (BIG if path.endswith("big") else 2)


async def test_a_foreign_origin_gets_no_fields_even_the_upstreams(
    client: Client, tokens: TokenFactory
) -> None:
    """CORS is not auth: the request is served, but the page from another origin cannot read
    it (the upstream's ``*`` would have let it)."""
    headers = {"Origin": "https://evil.test", "Authorization": f"Bearer {tokens.good()}"}
    response = await client.get("/orders/7", headers=headers)
    assert response.status == 200
    assert _cors_fields(response) == {}
    assert response.headers.getall("Vary") == ["Accept-Encoding", "Origin"]


Request = Callable[[Client, TokenFactory], Any]
REFUSALS = [
    pytest.param(lambda c, t: c.get("/orders", headers={"Origin": APP}), 401, "unauthorized",
                 id="401-missing"),
    pytest.param(lambda c, t: c.get("/orders", headers={
        "Origin": APP, "Authorization": f"Bearer {t.good(exp=1)}"}), 401, "invalid_token",
                 id="401-expired"),
    pytest.param(lambda c, t: c.get("/orders", headers={
        "Origin": APP, "Authorization": f"Bearer {t.good(scope='x')}"}), 403,
                 "insufficient_scope", id="403-scope"),
    pytest.param(lambda c, t: c.post("/orders", data=b"x" * 11, headers={
        "Origin": APP, "Authorization": f"Bearer {t.good()}"}), 413, "payload_too_large",
                 id="413-body"),
    pytest.param(lambda c, t: c.get("/gone", headers={"Origin": APP}), 502, "bad_gateway",
                 id="502-upstream"),
]  # fmt: skip


@pytest.mark.parametrize(("send", "status", "error"), REFUSALS)
async def test_every_refusal_is_readable_by_an_allowed_origin(
    client: Client, tokens: TokenFactory, upstream: CorsUpstream, send: Request, status: int,
    error: str,
) -> None:  # fmt: skip
    """401, 403, 413, 502: the JSON body and challenge come with the CORS fields."""
    response = await send(client, tokens)
    assert response.status == status
    assert (await response.json())["error"] == error
    assert response.headers["Access-Control-Allow-Origin"] == APP
    assert response.headers["Access-Control-Allow-Credentials"] == "true"
    assert "WWW-Authenticate" in response.headers["Access-Control-Expose-Headers"]
    assert response.headers.getall("Vary") == ["Origin"]
    assert upstream.seen == []


async def test_a_rate_limited_answer_is_readable_with_its_fields(client: Client) -> None:
    """429 with Retry-After and RateLimit, all of them exposed to the page."""
    headers = {"Origin": APP}
    assert (await client.get("/limited", headers=headers)).status == 200
    response = await client.get("/limited", headers=headers)
    assert response.status == 429
    assert response.headers["Access-Control-Allow-Origin"] == APP
    exposed = response.headers["Access-Control-Expose-Headers"]
    assert all(name in exposed for name in ("Retry-After", "RateLimit", "RateLimit-Policy"))


async def test_a_route_without_cors_is_left_to_its_upstream(
    client: Client, upstream: CorsUpstream
) -> None:
    """``cors: off``: the preflight is proxied and the upstream's own fields pass unchanged."""
    response = await client.options("/legacy", headers=_preflight(APP))
    assert response.status == 200
    assert upstream.seen == [("OPTIONS", "/legacy")]
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    assert response.headers["Access-Control-Expose-Headers"] == "X-Secret"
    assert response.headers.getall("Vary") == ["Accept-Encoding"]


@pytest.mark.parametrize(
    ("origin", "logged"),
    [
        pytest.param(APP, True, id="allowed"),
        pytest.param("https://evil.test", False, id="foreign"),
        pytest.param("https://app.example.com.evil.test", False, id="suffix"),
        pytest.param("null", False, id="null"),
        pytest.param(None, None, id="no-origin"),
    ],
)
async def test_the_access_line_says_whether_the_origin_may_read_the_answer(
    client: Client,
    tokens: TokenFactory,
    log_capture: LogCapture,
    origin: str | None,
    logged: bool | None,
) -> None:
    """A browser's request on a CORS route is logged with whether its page may read the answer
    (the request itself is decided as any other); a request without Origin has no such field."""
    headers = {"Authorization": f"Bearer {tokens.good()}"}
    if origin is not None:
        headers["Origin"] = origin
    response = await client.get("/orders/7", headers=headers)
    assert response.status == 200
    (line,) = log_capture.events("access")
    assert line.get("gateway.cors.origin_allowed", "absent") == (
        "absent" if logged is None else logged
    )


@pytest.mark.parametrize(
    "origins", [[APP, "https://evil.test"], ["https://evil.test", APP], [APP, APP]]
)
async def test_two_origin_fields_are_no_allowed_origin(
    client: Client, tokens: TokenFactory, upstream: CorsUpstream, origins: list[str]
) -> None:
    """A browser sends one Origin: with two, neither is taken (not the first a request reads,
    nor the last a preflight reads); the preflight is refused, an actual request gets no
    fields, whatever their order."""
    fields = CIMultiDict(("Origin", origin) for origin in origins)
    preflight = CIMultiDict(fields, **{"Access-Control-Request-Method": "GET"})
    response = await client.options("/orders", headers=preflight)
    assert response.status == 403
    assert _cors_fields(response) == {}
    fields["Authorization"] = f"Bearer {tokens.good()}"
    response = await client.get("/orders/7", headers=fields)
    assert response.status == 200
    assert _cors_fields(response) == {}
    assert upstream.seen == [("GET", "/orders/7")]
