"""`Decider.decide` on WebSocket routes: the handshake is checked (in report mode too), the
token may come from the bearer subprotocol, and a tunnel is decided as 101."""

from __future__ import annotations

import base64
from collections.abc import Callable

import pytest

from gateway.config import Config
from gateway.core.authenticator import Authenticator
from gateway.core.decision import Decider
from gateway.core.outcomes import AuthResult, Decision, Forward, RequestFacts, StepName
from gateway.core.routes import RouteTable
from gateway.core.websocket import BEARER_PROTOCOL_PREFIX
from tests.support import TokenFactory

ROUTES = """\
upstreams:
  orders: {{url: "http://127.0.0.1:9001", timeout: 2s}}
routes:
  - path: /ws
    upstream: orders
    scopes: [orders:read]
    websocket: {{token_from_subprotocol: true}}
  - path: /ws-header-only
    upstream: orders
    scopes: [orders:read]
    websocket: true
  - path: /ws-report
    upstream: orders
    scopes: [orders:read]
    mode: report
    websocket: {{token_from_subprotocol: true}}
  - path: /plain
    upstream: orders
    scopes: [orders:read]
"""
HANDSHAKE = (
    ("Upgrade", "websocket"),
    ("Connection", "Upgrade"),
    ("Sec-WebSocket-Version", "13"),
    ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
)


def entry(token: str) -> str:
    encoded = base64.urlsafe_b64encode(token.encode()).rstrip(b"=").decode()
    return BEARER_PROTOCOL_PREFIX + encoded


async def decide(
    config: Config,
    path: str,
    *,
    headers: tuple[tuple[str, str], ...] = HANDSHAKE,
    authorization: tuple[str, ...] = (),
    method: str = "GET",
) -> Decision:
    decider = Decider(
        routes=config.routes,
        table=RouteTable.from_config(config.routes),
        authenticator=Authenticator(config.issuers, config.tokens),
        max_body_size=config.limits.max_body_size,
    )
    facts = RequestFacts(
        method=method, raw_target=path, authorization=authorization,
        headers=headers + tuple(("Authorization", a) for a in authorization),
    )  # fmt: skip
    return await decider.decide(facts, trace=True)


@pytest.fixture
def config(make_config: Callable[..., Config]) -> Config:
    return make_config(routes=ROUTES)


async def test_header_token_tunnels_as_101(config: Config, tokens: TokenFactory) -> None:
    """A valid handshake with a good Authorization header is forwarded as a tunnel (101)."""
    decision = await decide(config, "/ws", authorization=(f"Bearer {tokens.good()}",))
    assert isinstance(decision, Forward)
    assert decision.status == 101
    assert decision.websocket is not None
    assert StepName.WEBSOCKET in [step.name for step in decision.steps]


async def test_subprotocol_token_tunnels(config: Config, tokens: TokenFactory) -> None:
    """The bearer subprotocol entry is the token on a route that takes it; it is never among
    the subprotocols offered upstream."""
    token = tokens.good()
    headers = (*HANDSHAKE, ("Sec-WebSocket-Protocol", f"chat, {entry(token)}"))
    decision = await decide(config, "/ws", headers=headers)
    assert isinstance(decision, Forward)
    assert (decision.status, decision.result) == (101, AuthResult.ALLOWED)
    assert decision.claims is not None
    assert decision.claims.subject == "alice"
    assert decision.websocket is not None
    assert decision.websocket.protocols == ("chat",)


@pytest.mark.parametrize(
    ("path", "protocols", "authorization", "status", "reason"),
    [
        pytest.param("/ws-header-only", "entry", False, 401, "missing", id="header-only-route"),
        pytest.param("/ws", "entry", True, 400, "malformed", id="header-and-subprotocol"),
        pytest.param("/ws", "entry,entry", False, 400, "malformed", id="two-entries"),
        pytest.param("/ws", "upper", False, 400, "malformed", id="other-spelling"),
        pytest.param("/ws", "expired", False, 401, "expired", id="expired-subprotocol-token"),
        pytest.param("/ws", "scope", False, 403, "insufficient_scope", id="scope"),
        pytest.param("/ws", "", False, 401, "missing", id="no-token"),
    ],
)
async def test_subprotocol_token_refusals(
    config: Config, tokens: TokenFactory, path: str, protocols: str, authorization: bool,
    status: int, reason: str,
) -> None:  # fmt: skip
    """The subprotocol token goes through the same credential, token and scope steps; two
    places for one token is malformed."""
    good = entry(tokens.good())
    values = {
        "entry": good,
        "entry,entry": f"{good}, {good}",
        "upper": good.upper(),
        "expired": entry(tokens.good(exp=1)),
        "scope": entry(tokens.good(scope="other")),
        "": "",
    }[protocols]
    headers = HANDSHAKE + ((("Sec-WebSocket-Protocol", values),) if values else ())
    auth = (f"Bearer {tokens.good()}",) if authorization else ()
    decision = await decide(config, path, headers=headers, authorization=auth)
    assert (decision.status, decision.reason) == (status, reason)


@pytest.mark.parametrize(
    ("path", "headers", "method"),
    [
        ("/ws", (*HANDSHAKE[:3], ("Sec-WebSocket-Key", "short")), "GET"),
        ("/ws", (*HANDSHAKE[1:], ("Upgrade", "websocket, h2c")), "GET"),
        ("/ws", HANDSHAKE, "POST"),
        ("/ws-report", HANDSHAKE[:2], "GET"),
    ],
)
async def test_bad_handshakes_are_400_even_in_report_mode(
    config: Config, tokens: TokenFactory, path: str, headers: tuple[tuple[str, str], ...],
    method: str,
) -> None:  # fmt: skip
    """A malformed handshake is refused before any auth step, in report mode too."""
    decision = await decide(
        config, path, headers=headers, method=method,
        authorization=(f"Bearer {tokens.good()}",),
    )  # fmt: skip
    assert (decision.status, decision.reason) == (400, "bad_websocket_handshake")


async def test_report_mode_tunnels_what_it_would_deny(config: Config) -> None:
    """On a report-mode route a tunnel without a token is forwarded as would_deny."""
    decision = await decide(config, "/ws-report")
    assert isinstance(decision, Forward)
    assert (decision.status, decision.result, decision.reason) == (
        101, AuthResult.WOULD_DENY, "missing",
    )  # fmt: skip


async def test_routes_without_websocket_never_tunnel(config: Config, tokens: TokenFactory) -> None:
    """On a route without `websocket`, an upgrade is a plain request (200: forwarded as HTTP)."""
    decision = await decide(config, "/plain", authorization=(f"Bearer {tokens.good()}",))
    assert isinstance(decision, Forward)
    assert (decision.status, decision.websocket) == (200, None)


async def test_h2c_on_a_websocket_route_is_a_plain_request(
    config: Config, tokens: TokenFactory
) -> None:
    """An h2c upgrade on a websocket route is not a tunnel: a plain request."""
    headers = (("Upgrade", "h2c"), ("Connection", "Upgrade, HTTP2-Settings"))
    decision = await decide(
        config, "/ws", headers=headers, authorization=(f"Bearer {tokens.good()}",)
    )
    assert isinstance(decision, Forward)
    assert (decision.status, decision.websocket) == (200, None)


BOUND_ROUTES = """\
upstreams:
  orders: {{url: "http://127.0.0.1:9001", timeout: 2s}}
routes:
  - path: /tenants/{{tenant}}/feed
    upstream: orders
    scopes: [orders:read]
    bind: {{tenant: tenant_id}}
    websocket: {{token_from_subprotocol: true}}
"""


@pytest.mark.parametrize(
    ("path", "status", "reason"),
    [
        ("/tenants/acme/feed", 101, None),
        ("/tenants/other/feed", 403, "claim_mismatch"),
        ("/tenants/ACME/feed", 403, "claim_mismatch"),
    ],
)
async def test_a_bound_route_reads_the_claim_of_the_subprotocol_token(
    make_config: Callable[..., Config],
    tokens: TokenFactory,
    path: str,
    status: int,
    reason: str | None,
) -> None:
    """A tenant-bound WebSocket route with the token in the bearer subprotocol binds against
    that token's claims (there is no Authorization header to read it from)."""
    config = make_config(routes=BOUND_ROUTES)
    token = tokens.good(tenant_id="acme")
    decision = await decide(
        config, path, headers=(*HANDSHAKE, ("Sec-WebSocket-Protocol", entry(token)))
    )
    assert (decision.status, decision.reason) == (status, reason)


CORS_ROUTES = """\
upstreams:
  orders: {{url: "http://127.0.0.1:9001", timeout: 2s}}
defaults:
  cors: {{origins: [https://app.example.com, "https://*.example.org"], credentials: true}}
routes:
  - path: /ws
    upstream: orders
    scopes: [orders:read]
    websocket: {{token_from_subprotocol: true}}
  - path: /ws-report
    upstream: orders
    scopes: [orders:read]
    mode: report
    websocket: true
  - path: /ws-public
    upstream: orders
    auth: none
    websocket: true
  - path: /ws-no-cors
    upstream: orders
    auth: none
    websocket: true
    cors: false
"""


@pytest.mark.parametrize("path", ["/ws", "/ws-report", "/ws-public"])
@pytest.mark.parametrize(
    "origin",
    [
        "https://evil.test",
        "http://app.example.com",  # another scheme
        "https://app.example.com:8443",  # another port
        "https://app.example.com.evil.test",
        "https://a.b.example.org",  # two labels for the pattern's one
        "https://example.org",
        "null",  # a sandboxed frame
        "https://app.example.com/",
        "",
    ],
)
async def test_a_handshake_from_an_origin_the_policy_leaves_out_is_refused(
    make_config: Callable[..., Config], tokens: TokenFactory, path: str, origin: str
) -> None:
    """Browsers apply no CORS to WebSocket: the route's origins are checked at the handshake,
    before any token work, in report mode and on public routes too (cross-site WebSocket
    hijacking rides the visitor's cookies, not the token)."""
    config = make_config(routes=CORS_ROUTES)
    decision = await decide(
        config, path, headers=(*HANDSHAKE, ("Origin", origin)),
        authorization=(f"Bearer {tokens.good()}",),
    )  # fmt: skip
    assert (decision.status, decision.reason) == (403, "cors_origin_not_allowed")
    names = [step.name for step in decision.steps]
    assert StepName.CORS in names
    assert StepName.TOKEN not in names


@pytest.mark.parametrize(
    ("path", "origin"),
    [
        ("/ws", "https://app.example.com"),
        ("/ws", "HTTPS://APP.EXAMPLE.COM:443"),
        ("/ws", "https://shop.example.org"),
        ("/ws", None),  # not a browser: Origin proves nothing either way
        ("/ws-public", "https://app.example.com"),
        ("/ws-no-cors", "https://evil.test"),  # no policy: the upstream's to check
    ],
)
async def test_a_handshake_from_an_allowed_origin_or_none_tunnels(
    make_config: Callable[..., Config], tokens: TokenFactory, path: str, origin: str | None
) -> None:
    """Allowed origins (any spelling of them), non-browser clients and routes without a policy
    tunnel as before."""
    config = make_config(routes=CORS_ROUTES)
    headers = HANDSHAKE if origin is None else (*HANDSHAKE, ("Origin", origin))
    decision = await decide(
        config, path, headers=headers, authorization=(f"Bearer {tokens.good()}",)
    )
    assert isinstance(decision, Forward)
    assert decision.status == 101
