"""`gateway test`'s `peer:`, `expect.client_ip`, `expect.upstream_headers` and
`expect.challenge`: trusted_proxies, claims_to_headers, forward_token and RFC 9728 challenges,
checked offline, and checked against what a real gateway does with the same request."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from gateway.cli import main
from gateway.config import Config
from gateway.core.outcomes import Forward, Refuse
from gateway.tools import offline
from tests.conftest import GatewayFactory, LogCapture
from tests.support import (
    DEFAULT_GATEWAY,
    ENVIRON,
    RecordingUpstream,
    TestKeys,
    TokenFactory,
    route_table,
    write_config,
)

METADATA = "https://api.example.test/.well-known/oauth-protected-resource"
GATEWAY = DEFAULT_GATEWAY + (
    "trusted_proxies: [127.0.0.1/32, 10.0.0.0/8]\n"
    "protected_resource:\n  resource: https://api.example.test\n"
)
ROUTES = route_table(
    """\
  - path: /orders
    upstream: orders
    scopes: [orders:read]
    claims_to_headers: {{X-Auth-Tenant: tenant_id}}
  - path: /relay
    upstream: orders
    forward_token: true
  - path: /public
    upstream: orders
    auth: none
"""
)

PASSING = """\
cases:
  - name: behind a trusted proxy the rightmost untrusted hop is the client
    method: GET
    path: /public
    peer: 10.1.2.3
    headers: {X-Forwarded-For: "6.6.6.6, 198.51.100.7, 10.9.9.9"}
    expect:
      status: 200
      client_ip: 198.51.100.7
      upstream_headers: {X-Forwarded-For: "6.6.6.6, 198.51.100.7, 10.9.9.9, 10.1.2.3"}
  - name: an untrusted peer is the client whatever it says
    method: GET
    path: /public
    peer: 203.0.113.5
    headers: {X-Forwarded-For: 198.51.100.7}
    expect: {status: 200, client_ip: 203.0.113.5}
  - name: the default peer is no proxy
    method: GET
    path: /public
    headers: {X-Forwarded-For: 198.51.100.7}
    expect: {status: 200, client_ip: 192.0.2.1}
  - name: an IPv6 peer is compared in its normal form
    method: GET
    path: /public
    peer: "2001:DB8:0::1"
    expect: {status: 200, client_ip: "2001:db8::1"}
  - name: the tenant claim is mapped, the client's own spellings are not
    method: GET
    path: /orders/7
    claims: {scope: orders:read, tenant_id: acme}
    headers: {x-auth-tenant: evil, X_Auth_Tenant: evil, X-Request-ID: trace-1}
    expect:
      status: 200
      upstream_headers: {X-AUTH-TENANT: acme, X_Auth_Tenant: null, Authorization: null,
                         X-Request-ID: trace-1, X-Forwarded-Proto: http}
  - name: forward_token passes the token on
    method: GET
    path: /relay
    claims: {}
    expect: {status: 200, upstream_headers: {Authorization: true, X-Auth-Subject: policy-test}}
  - name: every challenge names the metadata document
    method: GET
    path: /orders/7
    expect: {status: 401, challenge: 'Bearer realm="gateway", resource_metadata="METADATA_URL"'}
  - name: a report of no challenge on a forwarded request
    method: GET
    path: /public
    expect: {status: 200, challenge: null}
""".replace("METADATA_URL", METADATA)

FAILING = """\
  - name: wrong client_ip on purpose
    method: GET
    path: /public
    peer: 203.0.113.5
    headers: {X-Forwarded-For: 198.51.100.7}
    expect: {status: 200, client_ip: 198.51.100.7}
  - name: wrong headers on purpose
    method: GET
    path: /orders/7
    claims: {scope: orders:read, tenant_id: acme}
    headers: {X-Auth-Tenant: evil}
    expect:
      status: 200
      upstream_headers: {X-Auth-Tenant: other, X-Auth-Client-Id: true, X-Auth-Subject: null}
  - name: the token is never printed
    method: GET
    path: /relay
    claims: {}
    expect: {status: 200, upstream_headers: {Authorization: null}}
  - name: a secret's expected value is never printed
    method: GET
    path: /relay
    claims: {}
    expect: {status: 200, upstream_headers: {Authorization: "Bearer NOT-THE-TOKEN"}}
  - name: upstream headers of a refused request
    method: GET
    path: /orders/7
    expect: {status: 401, upstream_headers: {X-Auth-Tenant: null}}
  - name: wrong challenge on purpose
    method: GET
    path: /orders/7
    expect: {status: 401, challenge: 'Bearer realm="gateway"'}
  - name: a challenge expected where there is none
    method: GET
    path: /public
    expect: {status: 200, challenge: 'Bearer realm="gateway"'}
"""


@pytest.fixture
def secret(monkeypatch: pytest.MonkeyPatch) -> None:
    """The dev issuer's secret, as the config reads it."""
    monkeypatch.setenv("ACCESS_TOKEN_SECRET", ENVIRON["ACCESS_TOKEN_SECRET"])


def _run(tmp_path: Path, keys: TestKeys, cases: str) -> int:
    path = write_config(tmp_path, keys, routes=ROUTES, gateway=GATEWAY)
    file = tmp_path / "cases.yaml"
    file.write_text(cases)
    return main(["test", str(file), "-c", str(path)])


@pytest.mark.usefixtures("secret")
def test_the_new_expectations_pass(
    tmp_path: Path, keys: TestKeys, capsys: pytest.CaptureFixture[str]
) -> None:
    """Peer, client_ip, upstream_headers and challenge cases that hold all pass."""
    assert _run(tmp_path, keys, PASSING) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[-1] == "8 passed, 0 failed", out


@pytest.mark.usefixtures("secret")
def test_each_wrong_expectation_fails_saying_what_was_seen(
    tmp_path: Path, keys: TestKeys, capsys: pytest.CaptureFixture[str]
) -> None:
    """A wrong client_ip, header or challenge fails its case with what the gateway would do;
    a token (forward_token) and an expected Authorization value are never printed."""
    assert _run(tmp_path, keys, PASSING + FAILING) == 1
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[-1] == "8 passed, 7 failed"
    failed = [line.partition("): ")[2] for line in lines if line.startswith("FAIL ")]
    assert failed == [
        "expected client_ip 198.51.100.7, got 203.0.113.5",
        "expected upstream header X-Auth-Tenant 'other', got 'acme'; "
        "expected upstream header X-Auth-Client-Id present, got absent; "
        "expected upstream header X-Auth-Subject absent, got 'policy-test'",
        "expected upstream header Authorization absent, got present",
        "expected upstream header Authorization with the value written, got present",
        "expected upstream_headers, but nothing is forwarded",
        f"expected challenge 'Bearer realm=\"gateway\"', got "
        f'\'Bearer realm="gateway", resource_metadata="{METADATA}"\'',
        "expected challenge 'Bearer realm=\"gateway\"', got absent",
    ]
    assert "eyJ" not in out
    assert "NOT-THE-TOKEN" not in out


BAD_VALUES = [
    pytest.param("    peer: localhost\n", 4, "'peer': 'localhost' is not an IP address",
                 id="peer-name"),
    pytest.param("    peer: 10.0.0.0/8\n", 4, "'peer': '10.0.0.0/8' is not an IP address",
                 id="peer-cidr"),
    pytest.param("    expect: {status: 200, client_ip: 1.2.3}\n", 4,
                 "'client_ip': '1.2.3' is not an IP address", id="client-ip"),
    pytest.param("    expect: {status: 200, client_ipp: 1.2.3.4}\n", 4,
                 "unknown key 'client_ipp' in 'expect' (did you mean 'client_ip'?)", id="typo"),
    pytest.param("    expect:\n      status: 200\n      upstream_headers: [X-Auth-Tenant]\n", 6,
                 "'upstream_headers' must be a mapping of header name to value", id="list"),
    pytest.param("    expect:\n      status: 200\n      upstream_headers:\n"
                 "        X-Auth-Level: 3\n", 7,
                 "'X-Auth-Level': write the value as a string (quote numbers)", id="number"),
    pytest.param("    expect:\n      status: 200\n      upstream_headers:\n"
                 "        X-Auth-Level: false\n", 7,
                 "null for absent or true for present", id="false"),
    pytest.param("    expect:\n      status: 200\n      upstream_headers:\n"
                 "        X-A: a\n        x-a: b\n", 8,
                 "header 'x-a' is named twice (names ignore case)", id="twice"),
    pytest.param("    expect:\n      status: 200\n      upstream_headers:\n"
                 "        'X Auth': a\n", 7, "'X Auth' is not a header name", id="name"),
    pytest.param("    expect: {status: 401, challenge: 401}\n", 4,
                 "'challenge': must be the WWW-Authenticate value, or null", id="challenge"),
]  # fmt: skip


@pytest.mark.usefixtures("secret")
@pytest.mark.parametrize(("text", "line", "message"), BAD_VALUES)
def test_bad_values_are_file_line_problems(
    tmp_path: Path, keys: TestKeys, capsys: pytest.CaptureFixture[str],
    text: str, line: int, message: str,
) -> None:  # fmt: skip
    """A bad peer, client_ip, upstream_headers or challenge is one `file:line: problem`."""
    cases = "cases:\n  - method: GET\n    path: /public\n"
    if "expect" not in text:
        text += "    expect: {status: 200}\n"
    assert _run(tmp_path, keys, cases + text) == 1
    (printed,) = capsys.readouterr().out.splitlines()
    assert printed.startswith(f"{tmp_path / 'cases.yaml'}:{line}: "), printed
    assert message in printed


async def test_offline_agrees_with_a_real_gateway(
    gateway: GatewayFactory,
    recorder: RecordingUpstream,
    log_capture: LogCapture,
    make_config: Callable[..., Config],
    tokens: TokenFactory,
) -> None:
    """For one request through a real gateway (from 127.0.0.1, a trusted proxy), the offline
    client address is the access line's client.ip, the offline upstream headers are exactly
    what the upstream received (Host aside, which the upstream client sets), and the offline
    challenge is the one the client got."""
    client = await gateway(routes=ROUTES, gateway=GATEWAY)
    config = make_config(upstream="http://127.0.0.1:9", routes=ROUTES, gateway=GATEWAY)
    token = tokens.good(tenant_id="acme", client_id="shop")
    sent = [
        ("Host", "api.example.test"), ("Authorization", f"Bearer {token}"),
        ("X-Forwarded-For", "6.6.6.6, 198.51.100.7"), ("X-Auth-Tenant", "evil"),
        ("X_Auth_Subject", "root"), ("Forwarded", "for=1.2.3.4"), ("Connection", "X-Drop"),
        ("X-Drop", "1"), ("X-Request-ID", "trace-7"), ("X-Kept", "a"), ("X-Kept", "b"),
    ]  # fmt: skip
    skipped = {"User-Agent", "Accept", "Accept-Encoding"}
    response = await client.get("/orders/7", headers=sent, skip_auto_headers=skipped)
    assert response.status == 200
    received = [(k.lower(), v) for k, v in recorder.last.headers.items() if k.lower() != "host"]

    decider = offline.decider(config, clock=time.time)
    address = offline.client_address(config, "127.0.0.1", sent)
    decision = await decider.decide(offline.request_facts("GET", "/orders/7", sent, peer=address))
    assert isinstance(decision, Forward)
    predicted = offline.forwarded_headers(config, decision, sent, peer="127.0.0.1")
    assert sorted((k.lower(), v) for k, v in predicted.items()) == sorted(received)
    assert ("x-auth-tenant", "acme") in received
    assert [line["client.ip"] for line in log_capture.events("access")] == [address]
    assert address == "198.51.100.7"

    refused = await client.get("/orders/7", headers={"Authorization": "Bearer x.y.z"})
    decision = await decider.decide(
        offline.request_facts("GET", "/orders/7", [("Authorization", "Bearer x.y.z")])
    )
    assert isinstance(decision, Refuse)
    assert refused.headers["WWW-Authenticate"] == decision.refusal.headers["WWW-Authenticate"]
    assert f'resource_metadata="{METADATA}"' in refused.headers["WWW-Authenticate"]
