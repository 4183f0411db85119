"""`gateway explain`: the running gateway's decision, offline, step by step, never the token."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from gateway.cli import main
from gateway.config import Config, load
from gateway.core.keys import public_jwk
from gateway.tools.explain import ExplainRequest, explain
from gateway.tools.keygen import SigningKey, mint
from gateway.tools.throwaway_keys import ThrowawayKeys
from tests.conftest import GatewayFactory, LogCapture
from tests.support import ENVIRON, TokenFactory

REPO = Path(__file__).resolve().parents[3]
SHIPPED = REPO / "config" / "gateway.yaml"
VERDICT = re.compile(r"^decision: (?:(?P<status>\d{3}) |forward).*auth\.result: (?P<result>\w+)")

Make = Callable[[TokenFactory], dict[str, str]]


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _verdict(lines: list[str]) -> tuple[int, str, str | None]:
    """(status, auth.result, auth.reason) from explain's decision line."""
    (line,) = [line for line in lines if line.startswith("decision: ")]
    match = VERDICT.match(line)
    assert match, line
    reason = re.search(r"auth\.reason: (\w+)", line)
    status = int(match["status"]) if match["status"] else 200
    return status, match["result"], reason[1] if reason else None


REQUESTS = [
    pytest.param("GET", "/orders/7", lambda t: _bearer(t.good()), id="allowed"),
    pytest.param("GET", "/orders/health", lambda t: {}, id="public"),
    pytest.param("GET", "/orders/7", lambda t: {}, id="missing"),
    pytest.param("GET", "/orders/7", lambda t: {"Authorization": "Basic eDp5"}, id="basic"),
    pytest.param("GET", "/orders/7", lambda t: {"Authorization": "Bearer a b"}, id="malformed"),
    pytest.param("GET", "/orders/7?access_token=x", lambda t: {}, id="query-token"),
    pytest.param("GET", "/orders/7", lambda t: _bearer(t.good(exp=1)), id="expired"),
    pytest.param("GET", "/orders/7", lambda t: _bearer(t.good(nbf=time.time() + 900)), id="nbf"),
    pytest.param("GET", "/orders/7", lambda t: _bearer(t.good(aud="x")), id="audience"),
    pytest.param("GET", "/orders/7", lambda t: _bearer(t.good(iss="nobody")), id="issuer"),
    pytest.param("GET", "/orders/7", lambda t: _bearer(t.good(exp="9")), id="exp-string"),
    pytest.param("GET", "/orders/7", lambda t: _bearer(t.dev()), id="hs256-dev"),
    pytest.param("GET", "/orders/7", lambda t: _bearer(t.good()[:-4] + "AAAA"), id="signature"),
    pytest.param("POST", "/orders/7", lambda t: _bearer(t.good()), id="scope"),
    pytest.param("TRACE", "/orders/7", lambda t: {}, id="method"),
    pytest.param("GET", "/nowhere", lambda t: {}, id="no-route"),
]


@pytest.mark.parametrize(("method", "target", "headers"), REQUESTS)
async def test_explain_decides_as_the_running_gateway(
    gateway: GatewayFactory,
    tokens: TokenFactory,
    log_capture: LogCapture,
    tmp_path: Path,
    method: str,
    target: str,
    headers: Make,
) -> None:
    """For each request, explain's status, auth.result and auth.reason are the ones a real
    gateway on the same config answers and logs."""
    client = await gateway()
    sent = headers(tokens)
    response = await client.request(method, target, headers=sent)
    (logged,) = log_capture.events("access")
    config = load(tmp_path / "gateway.yaml", ENVIRON)
    request = ExplainRequest(
        method=method, target=target, headers=tuple(sent.items()), now=time.time()
    )
    lines = await explain(config, request)
    status = 200 if logged["gateway.auth.result"] in {"allowed", "public"} else response.status
    assert _verdict(lines) == (status, logged["gateway.auth.result"], logged["gateway.auth.reason"])


async def _explain_token(
    config: Config, token: str, target: str = "/orders/7", now: float | None = None
) -> list[str]:
    request = ExplainRequest(
        method="GET", target=target, headers=(("Authorization", f"Bearer {token}"),),
        now=time.time() if now is None else now,
    )  # fmt: skip
    return await explain(config, request)


def _check(lines: list[str], name: str) -> str:
    (line,) = [line for line in lines if line.startswith(f"  {name}: ")]
    return line


async def test_token_checks_show_times_and_stop_at_the_failing_one(
    make_config: Callable[..., Config], tokens: TokenFactory
) -> None:
    """An expired token shows exp FAILED with its time, the earlier checks ok, the later ones
    not reached, and the scopes needed."""
    now = time.time()
    lines = await _explain_token(make_config(), tokens.good(exp=now - 3600), now=now)
    assert _check(lines, "signature").startswith("  signature: ok - kid 'k1'")
    exp = _check(lines, "exp")
    assert exp.startswith("  exp: FAILED - ")
    assert re.search(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ \(1h ago\); leeway 30s -> expired", exp)
    assert _check(lines, "aud").startswith("  aud: not reached - ")
    assert "decision: 401 invalid_token" in lines[-1]


async def test_scopes_needed_and_present_are_listed(
    make_config: Callable[..., Config], tokens: TokenFactory
) -> None:
    """A valid token without the scope shows what is needed and what the token has."""
    lines = await _explain_token(make_config(), tokens.good(scope="orders:readX other"))
    (scopes,) = [line for line in lines if line.startswith("scopes: ")]
    assert scopes == "scopes: FAILED - needs all of: orders:read; token has: orders:readX other"


async def test_routes_that_did_not_match_say_why(
    make_config: Callable[..., Config], tokens: TokenFactory
) -> None:
    """Every route is listed with why it matched or did not."""
    lines = await _explain_token(make_config(), tokens.good(), "/orders/health/deep")
    routes = [line.strip() for line in lines if line.startswith("    /orders")]
    assert routes == [
        "/orders [GET, HEAD] (line 4): a more specific route owns this path "
        "(/orders/health [any method] (line 12))",
        "/orders [DELETE, PATCH, POST, PUT] (line 8): a more specific route owns this path "
        "(/orders/health [any method] (line 12))",
        "/orders/health [any method] (line 12): MATCHES",
    ]


REMOTE_GATEWAY = """\
listen: {{host: 127.0.0.1, port: 0}}
routes: routes.yaml
issuers:
  - name: idp
    issuer: https://idp.example.test
    jwks_uri: https://idp.example.test/jwks
    audiences: [example-api]
    algorithms: [RS256]
"""


@pytest.fixture
def idp_key() -> ThrowawayKeys:
    """An RS256 key standing in for the remote IdP's."""
    return ThrowawayKeys.generate(frozenset({"RS256"}))


def _idp_token(signer: SigningKey, **extra: Any) -> str:
    return mint(signer, issuer="https://idp.example.test", audience="example-api",
                subject="svc", scope="orders:read", ttl=300, extra=extra)  # fmt: skip


async def test_remote_issuer_without_keys_checks_all_but_the_signature(
    make_config: Callable[..., Config], idp_key: ThrowawayKeys
) -> None:
    """Without a JWKS file, a remote issuer's token is checked except for its signature, and
    explain says so; a claim failure is still found by the real checks."""
    config = make_config(gateway=REMOTE_GATEWAY)
    lines = await _explain_token(config, _idp_token(idp_key.signers["RS256"]))
    assert _check(lines, "signature").startswith("  signature: NOT CHECKED")
    (decision,) = [line for line in lines if line.startswith("decision: ")]
    assert decision.startswith("decision: forward")
    assert decision.endswith("(signature NOT checked)")
    expired = await _explain_token(config, _idp_token(idp_key.signers["RS256"], exp=5))
    assert _verdict(expired) == (401, "denied", "expired")


def test_remote_issuer_with_a_jwks_file_checks_the_signature(
    make_config: Callable[..., Config], idp_key: ThrowawayKeys, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    """`--jwks FILE` is used for remote issuers: the IdP's key verifies, another key does not."""
    config = make_config(gateway=REMOTE_GATEWAY)
    public = idp_key.keys.keys[0].key
    jwks = tmp_path / "idp.json"
    jwks.write_text(json.dumps({"keys": [{**public_jwk(public), "kid": "i1"}]}))
    other = ThrowawayKeys.generate(frozenset({"RS256"})).signers["RS256"]
    for signer, expected in ((idp_key.signers["RS256"], "allowed"), (other, "bad_signature")):
        token = _idp_token(signer)
        argv = ["explain", "GET", "/orders/1", "--token", token, "--jwks", str(jwks)]
        assert main([*argv, "-c", str(config.file)]) == 0
        out = capsys.readouterr().out
        assert expected in _verdict(out.splitlines())
        assert "NOT CHECKED" not in out
        assert token not in out


def test_the_token_is_never_printed(
    tmp_path: Path, tokens: TokenFactory, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    """Neither the token, its signature, nor a query-string token appears in the output."""
    monkeypatch.setenv("ACCESS_TOKEN_SECRET", "s" * 40)
    token = tokens.good(exp=1)
    (tmp_path / "token").write_text(token + "\n")
    argv = [
        "explain", "GET", "/orders/7?access_token=SECRETQ", "--token-file",
        str(tmp_path / "token"), "--header", "X-Auth-Subject: mallory", "-c", str(SHIPPED),
    ]  # fmt: skip
    assert main(argv) == 0
    out = capsys.readouterr().out
    for secret in (token, token.split(".")[2], "SECRETQ"):
        assert secret not in out
    assert "request: GET /orders/7?<query>" in out
    assert _verdict(out.splitlines()) == (400, "denied", "malformed")


def test_a_bad_header_option_is_one_line_and_exit_1(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`--header` without a colon is a usage problem the user can fix (exit 1, one line)."""
    monkeypatch.setenv("ACCESS_TOKEN_SECRET", "s" * 40)
    assert main(["explain", "GET", "/", "--header", "NoColon", "-c", str(SHIPPED)]) == 1
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1
    assert err.startswith("gateway: --header")


EXACT_ROUTES = """\
upstreams:
  app: {{url: "http://127.0.0.1:9001"}}
routes:
  - {{path: /status, upstream: app, exact: true, methods: [GET], auth: none}}
  - {{path: /status, upstream: app, methods: [GET]}}
"""


async def test_a_route_that_allows_the_method_but_loses_says_who_won(
    make_config: Callable[..., Config],
) -> None:
    """At one path, the exact route is tried first, and the prefix route's line says so."""
    request = ExplainRequest(method="GET", target="/status", now=time.time())
    lines = await explain(make_config(routes=EXACT_ROUTES), request)
    routes = [line.strip() for line in lines if line.startswith("    /status")]
    assert routes == [
        "/status (exact) [GET] (line 4): MATCHES",
        "/status [GET] (line 5): allows GET, but /status (exact) [GET] (line 4) is tried first",
    ]
    assert _verdict(lines) == (200, "public", None)


async def test_cors_preflights_and_fields_are_explained() -> None:
    """A preflight on the sample's CORS policy shows the cors step and its 204 or 403; an
    actual request shows the fields its Origin gets."""
    shipped = load(SHIPPED, {"ACCESS_TOKEN_SECRET": "s" * 40})
    ask = {"Origin": "https://app.example.com", "Access-Control-Request-Method": "GET"}
    allowed = await explain(
        shipped, ExplainRequest(method="OPTIONS", target="/orders/7",
                                headers=tuple(ask.items()), now=time.time()),
    )  # fmt: skip
    assert "cors: ok - preflight allowed, answered by the gateway (no token, no upstream)" in (
        allowed
    )
    assert _verdict(allowed) == (204, "preflight", None)
    foreign = {**ask, "Origin": "https://evil.test"}
    refused = await explain(
        shipped, ExplainRequest(method="OPTIONS", target="/orders/7",
                                headers=tuple(foreign.items()), now=time.time()),
    )  # fmt: skip
    assert _verdict(refused) == (403, "denied", "cors_origin_not_allowed")
    actual = await explain(
        shipped, ExplainRequest(method="GET", target="/orders/7",
                                headers=(("Origin", "https://app.example.com"),), now=time.time()),
    )  # fmt: skip
    (line,) = [line for line in actual if line.startswith("cors: ")]
    assert "Access-Control-Allow-Origin: https://app.example.com" in line
    assert _verdict(actual) == (401, "denied", "missing")


TENANT_ROUTES = """\
upstreams:
  orders: {{url: "{upstream}"}}
routes:
  - path: /tenants/{{tenant}}/orders
    upstream: orders
    bind: {{tenant: tenant_id}}
"""


async def test_the_bind_step_names_segment_and_claim_but_never_the_claim_value(
    make_config: Callable[..., Config], tokens: TokenFactory
) -> None:
    """explain shows which segment was compared with which claim and the verdict; the claim's
    value stays out of the output."""
    config = make_config(routes=TENANT_ROUTES)
    token = tokens.good(tenant_id="secret-tenant-value")
    refused = await _explain_token(config, token, "/tenants/other/orders")
    (bind,) = [line for line in refused if line.startswith("bind: ")]
    assert bind.startswith("bind: FAILED - {tenant} = 'other' must be allowed by claim 'tenant_id'")
    assert _verdict(refused) == (403, "denied", "claim_mismatch")
    assert not any("secret-tenant-value" in line for line in refused)
    allowed = await _explain_token(config, tokens.good(tenant_id="acme"), "/tenants/%61cme/orders")
    assert "bind: ok - {tenant} = 'acme' must be allowed by claim 'tenant_id': allowed" in allowed
    assert _verdict(allowed) == (200, "allowed", None)
