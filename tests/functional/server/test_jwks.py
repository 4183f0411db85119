"""Remote keys: discovery, caching, rotation, kid floods and IdP outages, against real servers."""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import jwt
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from cryptography.hazmat.primitives.asymmetric import rsa
from pytest_aiohttp import AiohttpClient, AiohttpServer

from gateway.config import load
from gateway.core.keys import keys_from_jwks, public_jwk
from gateway.jwks.remote import discovery_url
from gateway.server.app import DOOR, METRICS, create_admin_app, create_app
from tests.conftest import GatewayTestServer, LogCapture
from tests.support import (
    DEFAULT_ROUTES,
    ENVIRON,
    NO_AUTH_THROTTLE,
    RecordingUpstream,
    TestKeys,
    gateway_config,
    local_issuer,
    metric_sample,
    write_config,
)

AUDIENCE = "example-api"


def _rsa() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@dataclass
class FakeIdP:
    """A real identity provider on 127.0.0.1: discovery document and JWKS, with failure modes."""

    keys: dict[str, rsa.RSAPrivateKey]
    mode: str = "ok"
    issuer: str = ""
    discovery_issuer: str | None = None
    jwks_path: str = "/jwks"
    jwks_hits: int = 0
    discovery_hits: int = 0
    extra_jwks: list[dict[str, Any]] = field(default_factory=list)
    cache_control: str | None = None
    discovery_jwks_uri: str | None = None  # what discovery names instead of this server's JWKS

    def app(self) -> web.Application:
        """Serve discovery and the JWKS."""
        app = web.Application()
        app.router.add_get("/{prefix:.*}/.well-known/openid-configuration", self._discovery)
        app.router.add_get("/.well-known/openid-configuration", self._discovery)
        app.router.add_get("/{tail:.*jwks}", self._jwks)
        return app

    async def _discovery(self, request: web.Request) -> web.Response:
        self.discovery_hits += 1
        issuer = self.discovery_issuer if self.discovery_issuer is not None else self.issuer
        jwks_uri = self.discovery_jwks_uri or f"http://{request.host}{self.jwks_path}"
        return web.json_response({"issuer": issuer, "jwks_uri": jwks_uri})

    async def _jwks(self, _: web.Request) -> web.StreamResponse:
        self.jwks_hits += 1
        if self.mode == "down":
            return web.Response(status=500, text="down")
        if self.mode == "slow":
            await asyncio.sleep(3)
        if self.mode == "garbage":
            return web.Response(text="<html>not json</html>")
        if self.mode == "huge":
            return web.Response(body=b'{"keys": [' + b" " * (2 * 1024 * 1024) + b"]}")
        if self.mode == "redirect":
            raise web.HTTPFound("http://127.0.0.1:9/elsewhere")
        document = {
            "keys": [
                {**public_jwk(key.public_key()), "kid": kid, "alg": "RS256", "use": "sig"}
                for kid, key in self.keys.items()
            ]
            + self.extra_jwks
        }
        headers = {"Cache-Control": self.cache_control} if self.cache_control else None
        return web.Response(
            text=json.dumps(document), content_type="application/jwk-set+json", headers=headers
        )

    def token(self, kid: str, **claims: Any) -> str:
        """A token signed by this IdP's key ``kid``."""
        now = int(time.time())
        payload = {"iss": self.issuer, "aud": AUDIENCE, "sub": "svc", "iat": now, "exp": now + 300}
        payload.update({"scope": "orders:read", **claims})
        return jwt.encode(payload, self.keys[kid], algorithm="RS256", headers={"kid": kid})


GATEWAY = gateway_config(
    """\
  - name: idp
    issuer: "IDP_ISSUER"
    discovery: true
    audiences: [{audience}]
    algorithms: [RS256]
""",
    local_issuer(),
    extra="""\
jwks:
  timeout: 1s
  kid_miss_cooldown: 10s
  kid_miss_wait: 2s
  retry_min: 100ms
  retry_max: 300ms
"""
    + NO_AUTH_THROTTLE,  # kid floods are measured here; the throttle has tests of its own
)

Start = Callable[..., Awaitable[TestClient[web.Request, web.Application]]]


@pytest.fixture
def idp() -> FakeIdP:
    """An identity provider with one key, k1."""
    return FakeIdP(keys={"k1": _rsa()})


@pytest.fixture
async def start(
    aiohttp_server: AiohttpServer,
    aiohttp_client: AiohttpClient,
    tmp_path: Path,
    keys: TestKeys,
    idp: FakeIdP,
) -> Start:
    """Start the IdP, then a gateway whose `idp` issuer discovers it."""
    recorder = RecordingUpstream()
    upstream = await aiohttp_server(recorder.app())

    async def go(
        *, trailing_slash: bool = False, wait_ready: bool = True
    ) -> TestClient[web.Request, web.Application]:
        idp_server = await aiohttp_server(idp.app())
        idp.issuer = f"http://127.0.0.1:{idp_server.port}/realm" + ("/" if trailing_slash else "")
        gateway_yaml = GATEWAY.replace("IDP_ISSUER", idp.issuer)
        path = write_config(
            tmp_path,
            keys,
            upstream=str(upstream.make_url("")).rstrip("/"),
            routes=DEFAULT_ROUTES,
            gateway=gateway_yaml,
        )
        test_server = GatewayTestServer(create_app(load(path, ENVIRON)))
        client = cast("TestClient[web.Request, web.Application]", await aiohttp_client(test_server))
        if wait_ready:
            await _until(lambda: client.app[DOOR].policy.remote_keys.ready)
        return client

    return go


async def _until(condition: Callable[[], bool], within: float = 5.0) -> None:
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.mark.parametrize(
    ("issuer", "expected"),
    [
        ("https://idp.example.com", "https://idp.example.com/.well-known/openid-configuration"),
        ("https://idp.example.com/", "https://idp.example.com/.well-known/openid-configuration"),
        (
            "https://idp.example.com/realms/a",
            "https://idp.example.com/realms/a/.well-known/openid-configuration",
        ),
        (
            "https://idp.example.com/realms/a/",
            "https://idp.example.com/realms/a/.well-known/openid-configuration",
        ),
    ],
)
def test_discovery_url_joins_with_and_without_trailing_slash(issuer: str, expected: str) -> None:
    """The discovery URL is the issuer plus /.well-known/openid-configuration, no double slash."""
    assert str(discovery_url(issuer)) == expected


@pytest.mark.parametrize("trailing_slash", [False, True], ids=["plain", "trailing-slash"])
async def test_discovery_then_jwks_validates_tokens(
    start: Start, idp: FakeIdP, trailing_slash: bool
) -> None:
    """The gateway discovers the JWKS URI, fetches the keys, and accepts the IdP's tokens."""
    client = await start(trailing_slash=trailing_slash)
    response = await client.get("/orders/1", headers=_auth(idp.token("k1")))
    assert response.status == 200
    assert idp.discovery_hits == 1
    assert idp.jwks_hits == 1


async def test_issuer_mismatch_in_discovery_gives_no_keys(
    start: Start, idp: FakeIdP, log_capture: LogCapture
) -> None:
    """A discovery document naming another issuer loads no keys: its tokens get 503, never 200."""
    idp.discovery_issuer = "https://evil.example"
    client = await start(wait_ready=False)
    await _until(lambda: bool(log_capture.events("jwks_discovery_mismatch")))
    response = await client.get("/orders/1", headers=_auth(idp.token("k1")))
    assert response.status == 503
    assert response.headers["Retry-After"].isdigit()
    assert (await response.json())["error"] == "temporarily_unavailable"
    assert idp.jwks_hits == 0
    assert log_capture.events("jwks_discovery_mismatch")[0]["gateway.jwks.issuer"] == "idp"


async def test_rotation_new_kid_accepted_after_one_refetch_old_kid_refused(
    start: Start, idp: FakeIdP
) -> None:
    """A new kid triggers one refetch and passes; the old kid fails once it left the set."""
    client = await start()
    old_token = idp.token("k1")
    assert (await client.get("/orders/1", headers=_auth(old_token))).status == 200
    idp.keys = {"k2": _rsa()}
    response = await client.get("/orders/1", headers=_auth(idp.token("k2")))
    assert response.status == 200
    assert idp.jwks_hits == 2
    response = await client.get("/orders/1", headers=_auth(old_token))
    assert response.status == 401
    assert "invalid_token" in response.headers["WWW-Authenticate"]


@pytest.mark.slow
async def test_random_kid_flood_costs_at_most_one_fetch(
    start: Start, idp: FakeIdP, keys: TestKeys, log_capture: LogCapture
) -> None:
    """1,000 tokens with distinct unknown kids cost at most one refetch; valid ones keep passing."""
    client = await start()
    fetches_before = idp.jwks_hits
    header = {"alg": "RS256", "typ": "JWT"}
    claims = {"iss": idp.issuer, "aud": AUDIENCE, "sub": "x", "exp": int(time.time()) + 300}
    statuses: list[int] = []
    good = idp.token("k1")
    for batch in range(20):
        forged = [
            jwt.encode(
                claims,
                keys.attacker,
                algorithm="RS256",
                headers={**header, "kid": secrets.token_hex(8)},
            )
            for _ in range(50)
        ]
        responses = await asyncio.gather(
            *(client.get("/orders/1", headers=_auth(token)) for token in forged),
            client.get("/orders/1", headers=_auth(good)),
        )
        statuses.extend(r.status for r in responses[:-1])
        assert responses[-1].status == 200, f"valid token refused during batch {batch}"
    assert statuses == [401] * 1000
    assert idp.jwks_hits - fetches_before <= 1
    reasons = {line["gateway.auth.reason"] for line in log_capture.events("access")}
    assert reasons == {"unknown_kid", None}


async def test_idp_down_at_start_then_recovers(start: Start, idp: FakeIdP, tokens: Any) -> None:
    """While the IdP is down its tokens get 503 and readiness is false; other issuers and public
    routes work; once it is back its tokens pass without a restart."""
    idp.mode = "down"
    client = await start(wait_ready=False)
    await _until(lambda: idp.jwks_hits >= 2)
    response = await client.get("/orders/1", headers=_auth(idp.token("k1")))
    assert response.status == 503
    assert "Retry-After" in response.headers
    assert (await client.get("/orders/1", headers=_auth(tokens.good()))).status == 200
    assert (await client.get("/orders/health")).status == 200
    keys_state = client.app[DOOR].policy.remote_keys
    assert not keys_state.ready
    (state,) = keys_state.states()
    assert state.loaded is False
    assert state.last_error == "http_500"
    idp.mode = "ok"
    await _until(lambda: keys_state.ready)
    assert (await client.get("/orders/1", headers=_auth(idp.token("k1")))).status == 200


async def test_readyz_reports_remote_issuer_state(
    start: Start, idp: FakeIdP, aiohttp_client: AiohttpClient
) -> None:
    """/readyz is 503 until the remote issuer's keys load, then 200 with the issuer's key state."""
    idp.mode = "down"
    client = await start(wait_ready=False)
    serving = asyncio.Event()
    serving.set()
    admin = await aiohttp_client(create_admin_app(serving, client.app[DOOR], client.app[METRICS]))
    response = await admin.get("/readyz")
    assert response.status == 503
    assert (await admin.get("/healthz")).status == 200
    idp.mode = "ok"
    await _until(lambda: client.app[DOOR].policy.remote_keys.ready)
    response = await admin.get("/readyz")
    body = await response.json()
    assert response.status == 200
    assert body["issuers"][0]["issuer"] == "idp"
    assert body["issuers"][0]["kids"] == ["k1"]


@pytest.mark.parametrize("failure", ["down", "slow", "garbage", "huge", "redirect"])
async def test_failed_refresh_keeps_cached_keys(
    start: Start, idp: FakeIdP, log_capture: LogCapture, failure: str
) -> None:
    """After a good fetch, a failing refresh (500, timeout, not JSON, oversized, redirect) keeps
    the last good keys and logs a failure event."""
    client = await start()
    source = client.app[DOOR].policy.remote_keys.sources["idp"]
    idp.mode = failure
    assert await source.refresh() is False
    (event, *_) = log_capture.events("jwks_fetch_failed")
    assert event["gateway.jwks.issuer"] == "idp"
    assert event["gateway.jwks.keeping_cached_keys"] is True
    assert (await client.get("/orders/1", headers=_auth(idp.token("k1")))).status == 200


@pytest.mark.parametrize(
    ("failure", "reason"),
    [
        ("garbage", "not_json"),
        ("huge", "too_large"),
        ("redirect", "http_302"),
        ("down", "http_500"),
    ],
)
async def test_bad_jwks_at_start_never_lets_a_token_through(
    start: Start, idp: FakeIdP, failure: str, reason: str
) -> None:
    """A JWKS that cannot be used at start gives 503 for its tokens, with the reason recorded."""
    idp.mode = failure
    client = await start(wait_ready=False)
    await _until(lambda: idp.jwks_hits >= 1)
    await _until(lambda: client.app[DOOR].policy.remote_keys.states()[0].last_error is not None)
    assert client.app[DOOR].policy.remote_keys.states()[0].last_error == reason
    assert (await client.get("/orders/1", headers=_auth(idp.token("k1")))).status == 503


async def test_slow_jwks_does_not_delay_other_issuers(
    start: Start, idp: FakeIdP, tokens: Any
) -> None:
    """While one issuer's JWKS endpoint hangs past its timeout, other issuers answer at once."""
    idp.mode = "slow"
    client = await start(wait_ready=False)
    await _until(lambda: idp.jwks_hits >= 1)
    started = time.monotonic()
    response = await client.get("/orders/1", headers=_auth(tokens.good()))
    assert response.status == 200
    assert time.monotonic() - started < 0.5


async def test_jku_header_never_causes_a_fetch(
    start: Start, idp: FakeIdP, keys: TestKeys, aiohttp_server: AiohttpServer
) -> None:
    """A token's jku (a listener, or the real JWKS URI) is never fetched or trusted."""
    hits: list[str] = []

    async def record(request: web.Request) -> web.Response:
        hits.append(request.path)
        return web.json_response({"keys": [public_jwk(keys.attacker.public_key())]})

    listener_app = web.Application()
    listener_app.router.add_get("/{tail:.*}", record)
    listener = await aiohttp_server(listener_app)
    client = await start()
    fetches = idp.jwks_hits
    claims = {"iss": idp.issuer, "aud": AUDIENCE, "sub": "x", "exp": int(time.time()) + 300}
    for jku in (str(listener.make_url("/jwks.json")), f"{idp.issuer}/jwks"):
        token = jwt.encode(
            claims, keys.attacker, algorithm="RS256", headers={"kid": "k1", "jku": jku}
        )
        assert (await client.get("/orders/1", headers=_auth(token))).status == 401
    assert hits == []
    assert idp.jwks_hits == fetches


async def test_symmetric_and_encryption_keys_in_jwks_are_never_used(
    start: Start, idp: FakeIdP
) -> None:
    """An `oct` key and a `use: enc` key in the JWKS are skipped: tokens naming them get 401."""
    secret = b"s" * 32
    enc_key = _rsa()
    idp.extra_jwks = [
        {"kty": "oct", "kid": "s", "k": jwt.utils.base64url_encode(secret).decode()},
        {**public_jwk(enc_key.public_key()), "kid": "enc", "use": "enc"},
    ]
    client = await start()
    now = int(time.time())
    claims = {"iss": idp.issuer, "aud": AUDIENCE, "sub": "x", "exp": now + 300}
    hs_token = jwt.encode(claims, secret, algorithm="HS256", headers={"kid": "s"})
    enc_token = jwt.encode(claims, enc_key, algorithm="RS256", headers={"kid": "enc"})
    for token in (hs_token, enc_token):
        assert (await client.get("/orders/1", headers=_auth(token))).status == 401
    assert client.app[DOOR].policy.remote_keys.states()[0].kids == ("k1",)


async def test_jwk_alg_binds_the_key(start: Start, idp: FakeIdP) -> None:
    """A key published with alg RS256 never verifies a PS256 or RS384 token, even one it signed."""
    client = await start()
    now = int(time.time())
    claims = {"iss": idp.issuer, "aud": AUDIENCE, "sub": "x", "exp": now + 300}
    for alg in ("PS256", "RS384"):
        token = jwt.encode(claims, idp.keys["k1"], algorithm=alg, headers={"kid": "k1"})
        assert (await client.get("/orders/1", headers=_auth(token))).status == 401


async def test_cache_control_max_age_is_bounded(start: Start, idp: FakeIdP) -> None:
    """`Cache-Control: max-age` sets the refresh interval within the documented floor/ceiling."""
    idp.cache_control = "public, max-age=5"
    client = await start()
    source = client.app[DOOR].policy.remote_keys.sources["idp"]
    assert source._ttl == 30.0  # the 30 s floor
    idp.cache_control = "max-age=999999"
    assert await source.refresh() is True
    assert source._ttl == 86400.0  # the 24 h ceiling


async def test_jwks_metrics(start: Start, idp: FakeIdP) -> None:
    """Key-set fetches count by issuer and result; loaded and skipped keys are exposed."""
    idp.extra_jwks = [{"kty": "oct", "kid": "s", "k": "c2VjcmV0"}]
    client = await start()
    metrics = client.app[METRICS]
    assert metric_sample(metrics, "gateway_jwks_fetches_total", issuer="idp", result="success") == 1
    assert metric_sample(metrics, "gateway_jwks_keys", issuer="idp") == 1
    assert metric_sample(metrics, "gateway_jwks_keys_skipped_total", issuer="idp",
                         reason="symmetric_key") == 1  # fmt: skip
    idp.mode = "down"
    await client.app[DOOR].policy.remote_keys.sources["idp"].refresh()
    assert metric_sample(metrics, "gateway_jwks_fetches_total", issuer="idp", result="failure") == 1


# -- one bad key, or one bad fetch, never disables an issuer -------------------------------------


async def _readyz(client: TestClient[web.Request, web.Application], aiohttp_client: AiohttpClient
                  ) -> tuple[int, dict[str, Any]]:  # fmt: skip
    """/readyz of the admin app in front of ``client``'s gateway: status and JSON body."""
    serving = asyncio.Event()
    serving.set()
    admin = await aiohttp_client(create_admin_app(serving, client.app[DOOR], client.app[METRICS]))
    response = await admin.get("/readyz")
    return response.status, await response.json()


@pytest.mark.parametrize(
    ("entry", "reason"),
    [
        pytest.param({"kty": ["RSA"], "kid": "bad"}, "unsupported_kty", id="kty-list"),
        pytest.param({"kty": {"RSA": True}, "kid": "bad"}, "unsupported_kty", id="kty-object"),
        pytest.param({"kty": "RSA", "kid": "bad", "n": 12345, "e": "AQAB"}, "unparseable",
                     id="n-number"),
        pytest.param({"kty": "XYZ", "kid": "bad"}, "unsupported_kty", id="kty-unknown"),
    ],
)  # fmt: skip
async def test_one_malformed_key_never_disables_the_issuer(
    start: Start,
    idp: FakeIdP,
    aiohttp_client: AiohttpClient,
    log_capture: LogCapture,
    entry: dict[str, Any],
    reason: str,
) -> None:
    """A malformed entry beside a good key is skipped and reported: the good key verifies, the
    issuer is ready, and /readyz names the skipped entry and why."""
    idp.extra_jwks = [entry]
    client = await start()
    assert (await client.get("/orders/1", headers=_auth(idp.token("k1")))).status == 200
    status, body = await _readyz(client, aiohttp_client)
    assert status == 200
    (state,) = body["issuers"]
    assert state["kids"] == ["k1"]
    assert state["last_error"] is None
    assert state["skipped_keys"] == [{"kid": "bad", "reason": reason}]
    (skipped,) = log_capture.events("jwks_key_skipped")
    assert (skipped["gateway.jwks.kid"], skipped["gateway.reason"]) == ("bad", reason)


async def test_malformed_jwks_uri_in_discovery_is_a_failed_fetch_that_is_retried(
    start: Start, idp: FakeIdP, aiohttp_client: AiohttpClient, log_capture: LogCapture
) -> None:
    """A discovery document whose jwks_uri is not a URL is a failed fetch with its reason, shown
    in /readyz and retried; once the provider fixes it, its tokens pass without a restart."""
    idp.discovery_jwks_uri = "http://[::1"
    client = await start(wait_ready=False)
    await _until(lambda: idp.discovery_hits >= 2)
    status, body = await _readyz(client, aiohttp_client)
    assert status == 503
    assert body["issuers"][0]["last_error"] == "discovery_jwks_uri_invalid"
    assert (
        log_capture.events("jwks_fetch_failed")[0]["gateway.reason"] == "discovery_jwks_uri_invalid"
    )
    idp.discovery_jwks_uri = None
    await _until(lambda: client.app[DOOR].policy.remote_keys.ready)
    assert (await client.get("/orders/1", headers=_auth(idp.token("k1")))).status == 200


async def test_refresher_survives_any_exception_in_a_refresh(
    start: Start,
    idp: FakeIdP,
    aiohttp_client: AiohttpClient,
    log_capture: LogCapture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An exception no check foresaw is a failed fetch (`unexpected:<type>`), logged, shown in
    /readyz and retried with backoff; the refresher keeps running and the keys load."""
    failures = 3

    def flaky(*args: Any, **kwargs: Any) -> Any:
        nonlocal failures
        if failures:
            failures -= 1
            raise RuntimeError("a bug")
        return keys_from_jwks(*args, **kwargs)

    # The one name remote.py parses a key set with: the failure happens inside a real refresh.
    monkeypatch.setattr("gateway.jwks.remote.keys_from_jwks", flaky)
    client = await start(wait_ready=False)
    await _until(lambda: idp.jwks_hits >= 1)
    await _until(lambda: client.app[DOOR].policy.remote_keys.states()[0].last_error is not None)
    status, body = await _readyz(client, aiohttp_client)
    assert status == 503
    assert body["issuers"][0]["last_error"] == "unexpected:RuntimeError"
    await _until(lambda: client.app[DOOR].policy.remote_keys.ready)
    assert idp.jwks_hits == 4
    events = log_capture.events("jwks_fetch_failed")
    assert [event["gateway.reason"] for event in events] == ["unexpected:RuntimeError"] * 3
    assert [event["gateway.jwks.failures"] for event in events] == [1, 2, 3]
    assert (await client.get("/orders/1", headers=_auth(idp.token("k1")))).status == 200
    status, body = await _readyz(client, aiohttp_client)
    assert status == 200
    assert body["issuers"][0]["last_error"] is None
