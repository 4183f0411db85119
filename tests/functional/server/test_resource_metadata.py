"""RFC 9728 protected-resource metadata served by a running gateway, and named in challenges."""

from __future__ import annotations

import pytest

from tests.conftest import GatewayFactory, LogCapture
from tests.raw import assert_refusal, http_request, send_raw
from tests.support import (
    CATCH_ALL_ROUTES,
    DEFAULT_GATEWAY,
    REPORTS_ROUTES,
    RecordingUpstream,
    TokenFactory,
)

RESOURCE = DEFAULT_GATEWAY + "protected_resource:\n  resource: https://api.example.test\n"
METADATA_URL = "https://api.example.test/.well-known/oauth-protected-resource"
WELL_KNOWN = "/.well-known/oauth-protected-resource"


async def test_the_document_describes_the_resource(
    gateway: GatewayFactory, recorder: RecordingUpstream, log_capture: LogCapture
) -> None:
    """GET needs no token and answers JSON from the config: the resource, the https issuers,
    the routes' scopes, header bearer tokens; cacheable; never forwarded."""
    client = await gateway(routes=REPORTS_ROUTES, gateway=RESOURCE)
    response = await client.get(WELL_KNOWN, headers={"Host": "evil.example"})
    assert response.status == 200
    assert response.headers["Content-Type"] == "application/json"
    assert response.headers["Cache-Control"] == "public, max-age=300"
    assert await response.json() == {
        "resource": "https://api.example.test",
        "authorization_servers": ["https://auth.example.test"],  # 'dev' is not a URL
        "scopes_supported": ["orders:read", "orders:write", "reports:admin", "reports:read"],
        "bearer_methods_supported": ["header"],
    }
    assert recorder.requests == []
    (line,) = log_capture.events("access")
    assert (line["url.path"], line["gateway.auth.result"], line["http.response.status_code"]) == (
        WELL_KNOWN,
        "public",
        200,
    )


async def test_head_and_other_methods(gateway: GatewayFactory) -> None:
    """HEAD answers the headers only; other methods get 405 with Allow."""
    client = await gateway(gateway=RESOURCE)
    head = await client.head(WELL_KNOWN)
    assert head.status == 200
    assert await head.read() == b""
    post = await client.post(WELL_KNOWN)
    assert post.status == 405
    assert post.headers["Allow"] == "GET, HEAD"


@pytest.mark.parametrize(
    "target",
    [
        "/.well-known/%6Fauth-protected-resource",
        "/.well-known//oauth-protected-resource",
        "/x/../.well-known/oauth-protected-resource",
        "/.well-known/oauth-protected-resource?x=1",
    ],
)
async def test_other_spellings_of_the_path_get_the_same_document(
    gateway: GatewayFactory, target: str
) -> None:
    """The path is compared in canonical form, as routes are."""
    client = await gateway(routes=CATCH_ALL_ROUTES, gateway=RESOURCE)
    response = await client.get(target)
    assert response.status == 200
    assert (await response.json())["resource"] == "https://api.example.test"


@pytest.mark.parametrize(
    "path",
    [f"{WELL_KNOWN}/other", f"{WELL_KNOWN}/orders", "/.well-known/x/../oauth-protected-resource/a"],
)
async def test_the_gateway_owns_the_whole_prefix(
    gateway: GatewayFactory, recorder: RecordingUpstream, path: str
) -> None:
    """Under the prefix only the document exists: a public catch-all route cannot hand another
    path there to an upstream (which could publish other authorization servers)."""
    client = await gateway(routes=CATCH_ALL_ROUTES, gateway=RESOURCE)
    assert (await client.get(path)).status == 404
    assert recorder.requests == []


async def test_without_the_setting_nothing_is_served(
    gateway: GatewayFactory, recorder: RecordingUpstream, tokens: TokenFactory
) -> None:
    """Off unless configured: the path is routed like any other, and challenges are unchanged."""
    client = await gateway(routes=CATCH_ALL_ROUTES)
    assert (await client.get(WELL_KNOWN)).status == 200
    assert recorder.last.raw_path == WELL_KNOWN
    response = await client.get("/orders/1")
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="gateway"'


PER_PATH = (
    DEFAULT_GATEWAY
    + """\
protected_resource:
  resource: https://api.example.test/orders
  authorization_servers: [local]
  resource_name: Orders API
  resource_documentation: https://docs.example.test/orders
  max_age: 1h
"""
)


async def test_a_resource_with_a_path_is_served_at_the_per_path_url(
    gateway: GatewayFactory, tokens: TokenFactory
) -> None:
    """RFC 9728 section 3: the well-known path goes between the host and the resource's path;
    scopes are those of the routes a request under it can reach; the challenge names it."""
    client = await gateway(routes=REPORTS_ROUTES, gateway=PER_PATH)
    response = await client.get(WELL_KNOWN + "/orders")
    assert response.status == 200
    assert response.headers["Cache-Control"] == "public, max-age=3600"
    assert await response.json() == {
        "resource": "https://api.example.test/orders",
        "authorization_servers": ["https://auth.example.test"],
        "scopes_supported": ["orders:read", "orders:write"],
        "bearer_methods_supported": ["header"],
        "resource_name": "Orders API",
        "resource_documentation": "https://docs.example.test/orders",
    }
    assert (await client.get(WELL_KNOWN)).status == 404
    challenge = (await client.get("/orders/1")).headers["WWW-Authenticate"]
    assert challenge == (f'Bearer realm="gateway", resource_metadata="{METADATA_URL}/orders"')


async def test_every_challenge_names_the_metadata(
    gateway: GatewayFactory, tokens: TokenFactory, recorder: RecordingUpstream
) -> None:
    """401 (no token, bad token), 400 (malformed) and 403 keep their error parameters and add
    resource_metadata; nothing from the request (Host) is in it; nothing reached the upstream."""
    client = await gateway(gateway=RESOURCE)
    host = {"Host": "evil.example"}
    cases = [
        ({}, 401, 'Bearer realm="gateway"'),
        ({"Authorization": "Bearer a.b.c"}, 401, 'error="invalid_token", error_description="'),
        ({"Authorization": "Bearer a b"}, 400, 'error="invalid_request"'),
        (
            {"Authorization": "Bearer " + tokens.good(scope="x")},
            403,
            'error="insufficient_scope", error_description="',
        ),
    ]
    for headers, status, start in cases:
        response = await client.get("/orders/1", headers={**host, **headers})
        assert response.status == status
        challenge = response.headers["WWW-Authenticate"]
        assert start in challenge
        assert challenge.endswith(f', resource_metadata="{METADATA_URL}"')
        assert "evil" not in challenge
    assert recorder.requests == []


# A catch-all to an upstream that folds case and strips a format suffix (ASP.NET, Rails): it
# would answer every spelling below from its own well-known handler.
LAX_CATCH_ALL = """\
upstreams:
  lax: {{url: "{upstream}", timeout: 2s, case_insensitive: true, ignore_suffix: true}}
routes:
  - path: /
    upstream: lax
    auth: none
"""


@pytest.mark.parametrize(
    "target",
    [
        "/.WELL-KNOWN/oauth-protected-resource",
        "/.well-known/OAuth-Protected-Resource",
        "/.Well-Known/%4FAuth-protected-resource",
        "/.well-known/oauth-protected-resource.json",
        "/.well-known/OAUTH-PROTECTED-RESOURCE.xml?x=1",
        "/.well-known/oauth-protected-resource%20",
        "/x/../.WELL-KNOWN/oauth-protected-resource/",
    ],
)
async def test_case_and_suffix_spellings_never_reach_a_lax_upstream(
    gateway: GatewayFactory, recorder: RecordingUpstream, target: str
) -> None:
    """The gateway owns the prefix in every letter case and with anything appended: an upstream
    that folds case or strips ``.json`` cannot publish a competing document through a catch-all
    (404 from the gateway; the document itself only at its exact path)."""
    client = await gateway(routes=LAX_CATCH_ALL, gateway=RESOURCE)
    response = await send_raw(client, http_request("GET", target, []))
    assert_refusal(response, 404, "not_found")
    assert recorder.requests == []


async def test_challenges_never_carry_what_the_request_or_token_says(
    gateway: GatewayFactory, tokens: TokenFactory
) -> None:
    """Forwarding headers, the path, the query and a forged token's own words (an issuer, a kid
    and a scope written to break out of the quoted-string) never reach the challenge: it is one
    of the fixed challenges, byte for byte."""
    client = await gateway(gateway=RESOURCE)
    evil = 'evil.example", resource_metadata="https://evil.example/x'
    forged = tokens.raw(
        {"alg": "RS256", "kid": evil, "typ": "JWT"},
        {"iss": evil, "sub": evil, "scope": evil, "aud": evil, "exp": 2_000_000_000},
        b"sig",
    )
    spoofs = {
        "Host": "evil.example",
        "X-Forwarded-Host": "evil.example",
        "X-Forwarded-Proto": "http",
        "Forwarded": "host=evil.example;proto=http",
        "X-Original-URL": "/evil",
    }
    fixed = f'resource_metadata="{METADATA_URL}"'
    for authorization in ({}, {"Authorization": f"Bearer {forged}"}):
        response = await client.get(
            "/orders/evil.example?redirect=https://evil.example",
            headers={**spoofs, **authorization},
        )
        assert response.status == 401
        challenge = response.headers["WWW-Authenticate"]
        assert "evil" not in challenge
        assert challenge.count("resource_metadata=") == 1
        assert challenge.endswith(fixed)
