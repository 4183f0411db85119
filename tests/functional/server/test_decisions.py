"""Every row of the spec's decision table, through a real gateway, and the order they apply in.

Each refusal is checked for its status, its headers (``Allow``, the exact RFC 6750 challenge),
its JSON body, its ``request_id`` (the ``X-Request-ID`` the upstream would have got) and for the
one thing that matters most: the upstream never saw the request. Request targets a client library
would normalise are written to a raw socket.
"""

from __future__ import annotations

import re
import socket
import time
from collections.abc import Callable, Sequence

import pytest
from multidict import CIMultiDict

from tests import raw
from tests.conftest import GatewayFactory, LogCapture
from tests.raw import Answer, Client, http_request, send_raw
from tests.support import (
    REPORTS_ROUTES,
    RecordingUpstream,
    TokenFactory,
    gateway_config,
    local_issuer,
    public_route,
    route_table,
)

# Every request here, refused or failed, is freed without the cyclic collector.
pytestmark = pytest.mark.usefixtures("no_request_cycles")

REQUEST_ID = "door-test_01.A"

ORDERS_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"})


# -- what every refusal looks like --------------------------------------------------------------

_CHALLENGE_PARAM = re.compile(r'([a-z_]+)="([\x20\x21\x23-\x5b\x5d-\x7e]*)"(?:, |$)')


def parse_challenge(value: str) -> dict[str, str]:
    """The parameters of a ``Bearer`` challenge (RFC 6750 section 3 syntax, strictly)."""
    scheme, _, rest = value.partition(" ")
    assert scheme == "Bearer", value
    params: dict[str, str] = {}
    position = 0
    while position < len(rest):
        match = _CHALLENGE_PARAM.match(rest, position)
        assert match is not None, f"not an RFC 6750 challenge: {value!r}"
        assert match[1] not in params, f"repeated parameter in {value!r}"
        params[match[1]] = match[2]
        position = match.end()
    return params


def assert_refusal(answer: Answer, status: int, error: str) -> dict[str, str]:
    """The status and the JSON refusal body, whose ``request_id`` is the test's; returns it."""
    return raw.assert_refusal(answer, status, error, request_id=REQUEST_ID)


def assert_no_challenge(answer: Answer) -> None:
    """A refusal that is not about credentials carries no ``WWW-Authenticate``."""
    assert "WWW-Authenticate" not in answer.headers


def assert_bare_challenge(answer: Answer) -> None:
    """401 without a token: exactly the bare challenge of RFC 6750 section 3.1."""
    assert answer.headers.getall("WWW-Authenticate") == ['Bearer realm="gateway"']


def assert_error_challenge(
    answer: Answer, body: dict[str, str], error: str, *, description_required: bool, **extra: str
) -> None:
    """An RFC 6750 challenge with ``error`` and exactly the expected parameters."""
    (value,) = answer.headers.getall("WWW-Authenticate")
    params = parse_challenge(value)
    description = params.pop("error_description", None)
    if description_required or description is not None:
        assert description == body["error_description"]
    assert params == {"realm": "gateway", "error": error, **extra}


def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (bound, read, closed)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def bearer(token: str) -> list[tuple[str, str]]:
    """An ``Authorization: Bearer`` header and the test's request id."""
    return [("Authorization", f"Bearer {token}"), ("X-Request-ID", REQUEST_ID)]


@pytest.fixture
async def client(gateway: GatewayFactory) -> Client:
    """A gateway with the sample routes plus a GET-only ``/reports`` with an ``any`` scope rule."""
    return await gateway(routes=REPORTS_ROUTES)


# -- 404 / 405 ----------------------------------------------------------------------------------

AuthFor = Callable[[TokenFactory], list[str]]

NO_AUTH: AuthFor = lambda _: []  # noqa: E731
GOOD: AuthFor = lambda t: [f"Bearer {t.good()}"]  # noqa: E731
MALFORMED: AuthFor = lambda _: ["Bearer a b"]  # noqa: E731
BASIC: AuthFor = lambda _: ["Basic dXNlcjpwYXNz"]  # noqa: E731
EXPIRED: AuthFor = lambda t: [f"Bearer {t.good(exp=int(time.time()) - 3600)}"]  # noqa: E731


def _headers(tokens: TokenFactory, auth: AuthFor) -> CIMultiDict[str]:
    headers: CIMultiDict[str] = CIMultiDict({"X-Request-ID": REQUEST_ID})
    for value in auth(tokens):
        headers.add("Authorization", value)
    return headers


@pytest.mark.parametrize(
    ("path", "auth"),
    [
        pytest.param("/nowhere", NO_AUTH, id="unknown-no-token"),
        pytest.param("/nowhere", GOOD, id="unknown-good-token"),
        pytest.param("/nowhere", MALFORMED, id="unknown-malformed-bearer"),
        pytest.param("/nowhere", EXPIRED, id="unknown-expired-token"),
        pytest.param("/ordersX", NO_AUTH, id="not-a-whole-segment"),
        pytest.param("/", NO_AUTH, id="root"),
        pytest.param("/nowhere?access_token=abc", NO_AUTH, id="unknown-token-in-query"),
    ],
)
async def test_no_route_is_404(
    client: Client,
    tokens: TokenFactory,
    recorder: RecordingUpstream,
    path: str,
    auth: AuthFor,
) -> None:
    """A path no route matches is 404 ``not_found``, whatever credentials came with it."""
    answer = await Answer.of(await client.get(path, headers=_headers(tokens, auth)))
    assert_refusal(answer, 404, "not_found")
    assert_no_challenge(answer)
    assert recorder.requests == []


@pytest.mark.parametrize(
    ("method", "path", "auth", "allowed"),
    [
        pytest.param("PATCH", "/reports", NO_AUTH, {"GET"}, id="patch-get-only-no-token"),
        pytest.param("DELETE", "/reports/7", GOOD, {"GET"}, id="delete-get-only-good-token"),
        pytest.param("POST", "/reports", MALFORMED, {"GET"}, id="post-malformed-bearer"),
        pytest.param("PUT", "/reports", EXPIRED, {"GET"}, id="put-expired-token"),
        pytest.param("OPTIONS", "/orders/7", NO_AUTH, ORDERS_METHODS, id="options-on-orders"),
    ],
)
async def test_method_not_on_route_is_405_with_allow(
    client: Client,
    tokens: TokenFactory,
    recorder: RecordingUpstream,
    method: str,
    path: str,
    auth: AuthFor,
    allowed: set[str],
) -> None:
    """A path that matches with a method that does not is 405 with ``Allow``, before any auth."""
    response = await client.request(method, path, headers=_headers(tokens, auth))
    answer = await Answer.of(response)
    assert_refusal(answer, 405, "method_not_allowed")
    assert_no_challenge(answer)
    (allow,) = answer.headers.getall("Allow")
    assert {name.strip() for name in allow.split(",")} == allowed
    assert recorder.requests == []


# -- credentials --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "authorization",
    [
        pytest.param(None, id="no-authorization"),
        pytest.param("Basic dXNlcjpwYXNz", id="basic"),
        pytest.param('Digest username="u", realm="r"', id="digest"),
        pytest.param("Token abc", id="other-scheme"),
    ],
)
async def test_no_bearer_token_is_bare_401(
    client: Client, recorder: RecordingUpstream, authorization: str | None
) -> None:
    """No Authorization header, or a scheme other than Bearer, is 401 with the bare challenge."""
    headers = {"X-Request-ID": REQUEST_ID}
    if authorization is not None:
        headers["Authorization"] = authorization
    answer = await Answer.of(await client.get("/orders/7", headers=headers))
    assert_refusal(answer, 401, "unauthorized")
    assert_bare_challenge(answer)
    assert recorder.requests == []


@pytest.mark.parametrize(
    ("path", "auth"),
    [
        pytest.param("/orders/7", lambda _: ["Bearer "], id="empty-bearer"),
        pytest.param("/orders/7", lambda _: ["Bearer"], id="scheme-only"),
        pytest.param("/orders/7", lambda _: ["Bearer a b"], id="two-tokens"),
        pytest.param(
            "/orders/7", lambda t: [f"Bearer {t.good()}", f"Bearer {t.good()}"], id="two-headers"
        ),
        pytest.param("/orders/7", lambda t: [f"Bearer {t.good()}", ""], id="second-header-empty"),
        pytest.param("/orders/7?access_token=abc", NO_AUTH, id="token-in-query"),
        pytest.param("/orders/7?a=1&access_token=abc", GOOD, id="token-in-query-and-header"),
        pytest.param("/orders/7?ACCESS_TOKEN=abc", NO_AUTH, id="token-in-query-upper-case"),
        pytest.param("/orders/7?a=1;access_token=abc", GOOD, id="token-in-query-semicolon"),
        pytest.param("/orders/7?access_token[]=abc", GOOD, id="token-in-query-php-array"),
        pytest.param("/orders/7?access.token=abc", GOOD, id="token-in-query-php-dot"),
        pytest.param("/orders/7?access+token=abc", GOOD, id="token-in-query-php-space"),
    ],
)
async def test_malformed_bearer_is_400_invalid_request(
    client: Client,
    tokens: TokenFactory,
    recorder: RecordingUpstream,
    path: str,
    auth: AuthFor,
) -> None:
    """Malformed bearer credentials are 400 ``invalid_request`` with that challenge."""
    answer = await Answer.of(await client.get(path, headers=_headers(tokens, auth)))
    body = assert_refusal(answer, 400, "invalid_request")
    assert_error_challenge(answer, body, "invalid_request", description_required=False)
    assert recorder.requests == []


Forge = Callable[[TokenFactory], str]


def _hours(n: int) -> int:
    return int(time.time()) + n * 3600


@pytest.mark.parametrize(
    ("path", "forge"),
    [
        pytest.param(
            "/orders/7",
            lambda t: t.sign(t.claims(), key=t.keys.attacker, headers={"kid": "k1"}),
            id="bad-signature",
        ),
        pytest.param("/orders/7", lambda t: t.good(exp=_hours(-1), iat=_hours(-2)), id="expired"),
        pytest.param("/orders/7", lambda t: t.good(nbf=_hours(1)), id="not-yet-valid"),
        pytest.param("/orders/7", lambda t: t.good(aud="other-api"), id="wrong-audience"),
        pytest.param("/orders/7", lambda t: t.good(iss="https://evil.test"), id="unknown-issuer"),
        pytest.param("/orders/7", lambda t: t.sign(t.claims(), alg="HS256"), id="alg-not-allowed"),
        pytest.param("/orders/7", lambda t: t.good(exp=...), id="no-exp"),
        pytest.param("/orders/7", lambda _: "not-a-jwt", id="not-a-jwt"),
        pytest.param(
            "/orders/7",
            lambda t: t.sign(t.claims(), key=t.keys.attacker, headers={"kid": "nope"}),
            id="unknown-kid",
        ),
        pytest.param(
            "/reports",
            lambda t: t.good(scope="profile", exp=_hours(-1), iat=_hours(-2)),
            id="expired-and-missing-scope",
        ),
        pytest.param(
            "/orders/7",
            lambda t: t.sign(t.claims(scope="x"), key=t.keys.attacker, headers={"kid": "k1"}),
            id="forged-and-missing-scope",
        ),
    ],
)
async def test_invalid_token_is_401_invalid_token(
    client: Client,
    tokens: TokenFactory,
    recorder: RecordingUpstream,
    log_capture: LogCapture,
    path: str,
    forge: Forge,
) -> None:
    """A token that fails a check is 401 ``invalid_token`` (before scopes are looked at)."""
    token = forge(tokens)
    answer = await Answer.of(await client.get(path, headers=bearer(token)))
    body = assert_refusal(answer, 401, "invalid_token")
    assert_error_challenge(answer, body, "invalid_token", description_required=True)
    assert token.encode() not in answer.body
    assert token not in log_capture.text
    assert recorder.requests == []


@pytest.mark.parametrize(
    ("method", "path", "scope", "needed"),
    [
        pytest.param("GET", "/orders/7", "profile", "orders:read", id="other-scope"),
        pytest.param("GET", "/orders/7", "orders:readX", "orders:read", id="scope-prefix-only"),
        pytest.param("GET", "/orders/7", "", "orders:read", id="no-scopes"),
        pytest.param("POST", "/orders", "orders:read", "orders:write", id="read-cannot-write"),
        pytest.param(
            "GET", "/reports/1", "orders:read", "reports:read reports:admin", id="any-rule"
        ),
    ],
)
async def test_missing_scope_is_403_insufficient_scope(
    client: Client,
    tokens: TokenFactory,
    recorder: RecordingUpstream,
    method: str,
    path: str,
    scope: str,
    needed: str,
) -> None:
    """A valid token without the route's scopes is 403 naming every scope the route accepts."""
    headers = bearer(tokens.good(scope=scope))
    answer = await Answer.of(await client.request(method, path, headers=headers))
    body = assert_refusal(answer, 403, "insufficient_scope")
    assert_error_challenge(
        answer, body, "insufficient_scope", description_required=False, scope=needed
    )
    assert recorder.requests == []


UNAVAILABLE_GATEWAY = gateway_config(
    local_issuer(),
    """\
  - name: down
    issuer: https://down.example.test
    jwks_uri: "http://127.0.0.1:PORT/jwks"
    algorithms: [RS256]
""",
    extra="jwks: {{timeout: 1s, kid_miss_wait: 100ms, retry_min: 100ms, retry_max: 300ms}}\n",
)


async def test_issuer_without_keys_is_503(
    gateway: GatewayFactory, tokens: TokenFactory, recorder: RecordingUpstream
) -> None:
    """A token from an issuer whose keys were never fetched is 503 with ``Retry-After``."""
    config = UNAVAILABLE_GATEWAY.replace("PORT", str(closed_port()))
    client = await gateway(routes=REPORTS_ROUTES, gateway=config)
    claims = tokens.claims(iss="https://down.example.test")
    token = tokens.sign(claims, key=tokens.keys.attacker, headers={"kid": "r1"})
    answer = await Answer.of(await client.get("/orders/7", headers=bearer(token)))
    assert_refusal(answer, 503, "temporarily_unavailable")
    assert int(answer.headers["Retry-After"]) > 0
    assert recorder.requests == []


# -- request targets (raw socket) ---------------------------------------------------------------

BAD_TARGETS = [
    pytest.param("http://127.0.0.1/orders/7", id="absolute-form"),
    pytest.param("/orders/a%2Fb", id="encoded-slash"),
    pytest.param("/orders/a%2fb", id="encoded-slash-lower"),
    pytest.param("/orders/a%5Cb", id="encoded-backslash"),
    pytest.param("/orders/a\\b", id="raw-backslash"),
    pytest.param("/orders;x=1/7", id="path-parameter"),
    pytest.param("/orders/7;jsessionid=1", id="path-parameter-last"),
    pytest.param("/orders/7#frag", id="fragment"),
    pytest.param("/orders/7%00", id="encoded-nul"),
    pytest.param("/orders/7%1F", id="encoded-control"),
    pytest.param("/orders/7%7F", id="encoded-del"),
    pytest.param("/../orders/7", id="dot-dot-at-root"),
    pytest.param("/orders/../../orders/7", id="dot-dot-past-root"),
    pytest.param("/%2e%2e/orders/7", id="encoded-dot-dot-at-root"),
]


@pytest.mark.parametrize("target", BAD_TARGETS)
@pytest.mark.parametrize(
    "auth",
    [
        pytest.param("good", id="good-token"),
        pytest.param("none", id="no-token"),
    ],
)
async def test_unacceptable_target_is_400(
    client: Client,
    tokens: TokenFactory,
    recorder: RecordingUpstream,
    target: str,
    auth: str,
) -> None:
    """An unacceptable request target is 400 ``bad_request`` before routing or credentials."""
    headers = bearer(tokens.good()) if auth == "good" else [("X-Request-ID", REQUEST_ID)]
    answer = await send_raw(client, http_request("GET", target, headers))
    assert_refusal(answer, 400, "bad_request")
    assert_no_challenge(answer)
    assert recorder.requests == []


async def test_raw_nul_in_target_is_400(
    client: Client, tokens: TokenFactory, recorder: RecordingUpstream
) -> None:
    """A raw NUL byte in the request target is a JSON 400 and nothing is forwarded."""
    data = http_request("GET", "/orders/7\x00x", bearer(tokens.good()))
    answer = await send_raw(client, data)
    body = raw.assert_refusal(answer, 400, "bad_request")
    assert re.fullmatch(r"[A-Za-z0-9._-]{1,128}", body["request_id"])
    assert recorder.requests == []


# -- order of decisions -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "target", "auth", "status", "error"),
    [
        pytest.param("GET", "/nowhere/a%2Fb", NO_AUTH, 400, "bad_request", id="target-before-404"),
        pytest.param("PATCH", "/reports;x", NO_AUTH, 400, "bad_request", id="target-before-405"),
        pytest.param("GET", "/orders/a%5Cb", NO_AUTH, 400, "bad_request", id="target-before-401"),
        pytest.param(
            "GET", "/orders/a%2Fb", MALFORMED, 400, "bad_request", id="target-before-malformed"
        ),
        pytest.param("GET", "/../nowhere", EXPIRED, 400, "bad_request", id="target-before-token"),
        pytest.param("GET", "/nowhere", NO_AUTH, 404, "not_found", id="404-before-401"),
        pytest.param("GET", "/nowhere", BASIC, 404, "not_found", id="404-before-basic"),
        pytest.param("GET", "/nowhere", MALFORMED, 404, "not_found", id="404-before-400"),
        pytest.param("PATCH", "/reports", NO_AUTH, 405, "method_not_allowed", id="405-before-401"),
        pytest.param(
            "PATCH", "/reports", MALFORMED, 405, "method_not_allowed", id="405-before-400"
        ),
        pytest.param("GET", "/reports", EXPIRED, 401, "invalid_token", id="401-before-403"),
        pytest.param("GET", "/reports", MALFORMED, 400, "invalid_request", id="400-before-403"),
        pytest.param(
            "GET", "/orders/7?access_token=x", EXPIRED, 400, "invalid_request", id="query-token"
        ),
    ],
)
async def test_first_applicable_decision_answers(
    client: Client,
    tokens: TokenFactory,
    recorder: RecordingUpstream,
    method: str,
    target: str,
    auth: AuthFor,
    status: int,
    error: str,
) -> None:
    """When several refusals apply, the one earliest in the spec's order answers."""
    headers = [("X-Request-ID", REQUEST_ID)]
    headers += [("Authorization", value) for value in auth(tokens)]
    answer = await send_raw(client, http_request(method, target, headers))
    assert_refusal(answer, status, error)
    assert recorder.requests == []


# -- the upstream -------------------------------------------------------------------------------

UPSTREAM_ROUTES = """\
upstreams:
  orders: {{url: "{upstream}", timeout: 2s}}
  far: {{url: "FAR_URL", timeout: 500ms}}
routes:
  - path: /orders
    upstream: orders
  - path: /far
    upstream: far
    scopes: [orders:read]
  - path: /far/public
    upstream: far
    auth: none
"""


def _assert_upstream_not_named(answer: Answer, url: str, secrets: Sequence[str]) -> None:
    host_port = url.removeprefix("http://")
    port = host_port.rpartition(":")[2]
    text = answer.body.decode()
    for leak in (host_port, "127.0.0.1", port, *secrets):
        assert leak not in text, leak


_EXCEPTION_TEXT = (
    "Error",
    "Exception",
    "errno",
    "refused",
    "Connect call failed",
    "Timeout",
    "disconnected",
)


@pytest.mark.parametrize(
    ("path", "auth"),
    [
        pytest.param("/far/1", GOOD, id="protected"),
        pytest.param("/far/public/1", NO_AUTH, id="public"),
    ],
)
@pytest.mark.parametrize("failure", ["closed-port", "reset", "not-http"])
async def test_unreachable_upstream_is_502(
    gateway: GatewayFactory,
    tokens: TokenFactory,
    log_capture: LogCapture,
    resetting_upstream: str,
    garbage_upstream: str,
    path: str,
    auth: AuthFor,
    failure: str,
) -> None:
    """An upstream that refuses, drops the connection or does not speak HTTP is 502, and the
    body names nothing."""
    url = {
        "closed-port": f"http://127.0.0.1:{closed_port()}",
        "reset": resetting_upstream,
        "not-http": garbage_upstream,
    }[failure]
    client = await gateway(routes=UPSTREAM_ROUTES.replace("FAR_URL", url))
    answer = await Answer.of(await client.get(path, headers=_headers(tokens, auth)))
    assert_refusal(answer, 502, "bad_gateway")
    assert_no_challenge(answer)
    _assert_upstream_not_named(answer, url, _EXCEPTION_TEXT)
    (event,) = log_capture.events("upstream_failed")
    assert event["gateway.upstream.name"] == "far"
    assert event["http.request.id"] == REQUEST_ID
    (access,) = log_capture.events("access")
    assert access["http.response.status_code"] == 502
    assert access["gateway.upstream.name"] == "far"


async def test_slow_upstream_is_504(
    gateway: GatewayFactory, tokens: TokenFactory, log_capture: LogCapture, stalling_upstream: str
) -> None:
    """An upstream slower than the route's timeout is 504, and the body names nothing."""
    client = await gateway(routes=UPSTREAM_ROUTES.replace("FAR_URL", stalling_upstream))
    started = time.monotonic()
    answer = await Answer.of(await client.get("/far/1", headers=bearer(tokens.good())))
    elapsed = time.monotonic() - started
    assert_refusal(answer, 504, "gateway_timeout")
    assert_no_challenge(answer)
    assert 0.4 < elapsed < 2.5
    _assert_upstream_not_named(answer, stalling_upstream, _EXCEPTION_TEXT)
    (event,) = log_capture.events("upstream_failed")
    assert event["gateway.upstream.name"] == "far"
    (access,) = log_capture.events("access")
    assert access["http.response.status_code"] == 504


@pytest.mark.parametrize(
    ("auth", "status"),
    [
        pytest.param(NO_AUTH, 401, id="no-token"),
        pytest.param(lambda t: [f"Bearer {t.good(scope='profile')}"], 403, id="missing-scope"),
        pytest.param(EXPIRED, 401, id="expired-token"),
    ],
)
async def test_door_refuses_before_a_dead_upstream(
    gateway: GatewayFactory,
    tokens: TokenFactory,
    log_capture: LogCapture,
    auth: AuthFor,
    status: int,
) -> None:
    """A refusal at the door is answered before the upstream is tried, even when it is down."""
    url = f"http://127.0.0.1:{closed_port()}"
    client = await gateway(routes=UPSTREAM_ROUTES.replace("FAR_URL", url))
    answer = await Answer.of(await client.get("/far/1", headers=_headers(tokens, auth)))
    assert answer.status == status
    assert log_capture.events("upstream_failed") == []


SLASH_ROUTES = route_table(
    public_route("/"),
    "  - path: /admin\n    upstream: orders\n    exact: true\n    scopes: [admin]\n",
)


@pytest.mark.parametrize("path", ["/admin/", "/admin/?x=1", "/%61dmin/", "/admin/."])
async def test_the_slash_form_of_an_exact_protected_path_never_reaches_the_catch_all(
    gateway: GatewayFactory, recorder: RecordingUpstream, path: str
) -> None:
    """``/admin/`` is ``/admin`` to Rails, Express, Spring before 6, ASP.NET Core and werkzeug
    without strict slashes: the public ``/`` must not forward it past the exact route's scope
    (404, the upstream never sees it), whatever the spelling of that path."""
    client = await gateway(routes=SLASH_ROUTES)
    response = await client.get(path)
    assert response.status == 404
    assert recorder.requests == []
