"""Property tests over the parsers that face the internet: the Authorization header, the request
target and validly signed tokens with arbitrary header and claim values.

Each property says what a refusal may look like: only the refusal types, never another
exception (which the running gateway would turn into a 500).
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Iterator
from typing import Any

import pytest
import yarl
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from jwt.algorithms import get_default_algorithms

from gateway.config import load
from gateway.core.authenticator import Authenticator
from gateway.core.bearer import extract_bearer
from gateway.core.errors import AuthError, MalformedCredentials, MissingCredentials
from gateway.core.models import AuthMode, Route, Upstream
from gateway.core.routes import RouteTable
from gateway.core.target import TargetError, canonicalize
from gateway.core.urls import upstream_url
from tests.support import (
    AUDIENCE,
    DEV_ISSUER,
    DEV_SECRET,
    ENVIRON,
    ISSUER,
    TestKeys,
    b64url,
    write_config,
)

pytestmark = pytest.mark.slow  # property-based: many examples each

FUZZ = settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
TOKEN_FUZZ = settings(FUZZ, max_examples=150)  # every example signs a token

# -- (a) the Authorization header ---------------------------------------------------------------

_B64TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*")
_TOKEN_CHARS = "ABCXYZabcxyz0189-._~+/="
_tokenish = st.text(alphabet=_TOKEN_CHARS, min_size=0, max_size=12)
_scheme = st.sampled_from(["Bearer", "bearer", "BEARER", "Basic", "Bearerx", "", "Bearer\t"])
_separator = st.sampled_from([" ", "  ", "\t", "", ", ", " \t"])
_structured_value = st.builds(
    lambda scheme, sep, token, tail: f"{scheme}{sep}{token}{tail}",
    _scheme,
    _separator,
    _tokenish,
    st.sampled_from(["", " ", " x", ", Bearer abc", "\x00", "\r\n", "é", '"']),
)
_header_value = st.one_of(st.text(max_size=30), _structured_value)


@FUZZ
@given(values=st.lists(_header_value, max_size=3), token_in_query=st.booleans())
@example(values=["Bearer abc"], token_in_query=False)
@example(values=["Bearer ===="], token_in_query=False)
@example(values=["bearer a=b"], token_in_query=False)
def test_extract_bearer_refuses_with_refusal_types_only(
    values: list[str], token_in_query: bool
) -> None:
    """``extract_bearer`` raises only MissingCredentials or MalformedCredentials, and returns a
    token only for exactly one ``Bearer <b64token>`` value with no token in the query."""
    try:
        token = extract_bearer(values, token_in_query=token_in_query)
    except (MissingCredentials, MalformedCredentials):
        (value,) = values if len(values) == 1 and not token_in_query else ("",)
        scheme, space, rest = value.partition(" ")
        assert not (scheme.lower() == "bearer" and space and _B64TOKEN.fullmatch(rest))
        return
    assert not token_in_query
    (value,) = values
    scheme, space, rest = value.partition(" ")
    assert scheme.lower() == "bearer"
    assert space == " "
    assert rest == token
    assert _B64TOKEN.fullmatch(token)


# -- (b) the request target ---------------------------------------------------------------------

_TARGET_ALPHABET = st.sampled_from(
    ["/", "/", "/", ".", ".", "%", "2", "e", "E", "f", "F", "5", "c", "C", "3", "b", "B", "0",
     "4", "1", "7", "a", "z", "~", "-", "_", ";", "\\", "?", "?", "#", "&", "=", " ", ":", "@",
     "+", "é", "\x00", "\t", "*", "!", "'", "(", ")"]
)  # fmt: skip
_TARGET_LIKE = st.lists(_TARGET_ALPHABET, max_size=40).map(lambda chars: "/" + "".join(chars))
_UPSTREAM = Upstream(name="u", url=yarl.URL("http://127.0.0.1:9001"))
_BASED_UPSTREAM = Upstream(name="b", url=yarl.URL("http://127.0.0.1:9001/base/"))
_ROUTES = [
    Route(path="/", upstream="u", auth=AuthMode.NONE),
    Route(path="/admin", upstream="u"),
    Route(path="/orders", upstream="u"),
    Route(path="/orders/health", upstream="u", auth=AuthMode.NONE),
    Route(path="/a", upstream="u", exact=True),
]
_TABLE = RouteTable(_ROUTES)


@FUZZ
@given(raw=st.one_of(st.text(max_size=40), _TARGET_LIKE))
@example(raw="/orders/%2e%2e/admin?x=%2F")
@example(raw="/a/./b/../c/?q=1")
@example(raw="/%41dmin")
@example(raw="//admin")
def test_canonical_target_is_stable_and_forwarded_as_matched(raw: str) -> None:
    """``canonicalize`` raises only TargetError; its output is a fixed point; the upstream URL
    carries exactly the canonical path and query; and the forwarded path matches the same route
    as the canonical one."""
    try:
        target = canonicalize(raw)
    except TargetError:
        return
    again = canonicalize(str(target))
    assert again == target
    for route in _ROUTES:
        path, _, query = upstream_url(_UPSTREAM, route, target).path_qs.partition("?")
        assert path == target.path
        assert query == (target.query or "")
    matched = _TABLE.match("GET", target.path)
    forwarded = upstream_url(_UPSTREAM, _ROUTES[0], target).path
    assert _TABLE.match("GET", forwarded) == matched
    based = upstream_url(_BASED_UPSTREAM, _ROUTES[0], target)
    assert based.path == "/base" + target.path


# -- (c) validly signed tokens with arbitrary header and claim values ---------------------------

_ALGORITHMS = get_default_algorithms()

_json_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**400), max_value=10**400),
    st.integers(min_value=-(2**63), max_value=2**63),
    st.floats(),
    st.text(max_size=12),
    st.sampled_from(["", "none", "RS256", "HS256", "k1", ISSUER, DEV_ISSUER, AUDIENCE, "\x00"]),
)
_json_value = st.recursive(
    _json_leaf,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.text(max_size=6), children, max_size=4),
    ),
    max_leaves=12,
)
_CLAIM_NAMES = ["iss", "aud", "sub", "exp", "nbf", "iat", "scope", "scp", "scopes", "client_id",
                "azp", "jti", "typ", "x"]  # fmt: skip
_HEADER_NAMES = ["alg", "kid", "typ", "crit", "b64", "jku", "x5u", "jwk", "x5c", "cty", "zip"]


def _sign(header: dict[str, Any], claims: dict[str, Any], signer: str, keys: TestKeys) -> str:
    """A compact JWS over exactly this JSON, with a valid signature from a configured key."""
    header_segment = b64url(json.dumps(header).encode())
    payload_segment = b64url(json.dumps(claims).encode())
    signing_input = f"{header_segment}.{payload_segment}".encode()
    key: Any = {"RS256": keys.rsa, "ES256": keys.ec, "EdDSA": keys.ed}.get(signer)
    if key is None:
        key = DEV_SECRET.encode()
    signature = _ALGORITHMS[signer].sign(signing_input, key)
    return f"{header_segment}.{payload_segment}.{b64url(signature)}"


_SIGNERS = {"RS256": "k1", "ES256": "e1", "EdDSA": "o1", "HS256": None}


@pytest.fixture(scope="module")
def runner() -> Iterator[asyncio.Runner]:
    """One event loop for every example (the static key source never waits)."""
    with asyncio.Runner() as loop_runner:
        yield loop_runner


@pytest.fixture(scope="module")
def authenticator(tmp_path_factory: pytest.TempPathFactory, keys: TestKeys) -> Authenticator:
    """The authenticator of the test config: the local (RS/ES/EdDSA) and dev (HS256) issuers."""
    path = write_config(tmp_path_factory.mktemp("fuzz-config"), keys)
    config = load(path, ENVIRON)
    return Authenticator(config.issuers, config.tokens, cache_size=16)


@TOKEN_FUZZ
@given(
    signer=st.sampled_from(sorted(_SIGNERS)),
    header_overrides=st.dictionaries(st.sampled_from(_HEADER_NAMES), _json_value, max_size=3),
    claim_overrides=st.dictionaries(st.sampled_from(_CLAIM_NAMES), _json_value, max_size=4),
    drop=st.sets(st.sampled_from(["iss", "exp", "aud", "sub", "iat", "scope"]), max_size=2),
)
@example(signer="RS256", header_overrides={}, claim_overrides={"exp": 10**400}, drop=set())
@example(signer="RS256", header_overrides={}, claim_overrides={"iat": -(10**400)}, drop=set())
@example(signer="HS256", header_overrides={}, claim_overrides={"nbf": 10**400}, drop=set())
@example(signer="RS256", header_overrides={"kid": ["k1"]}, claim_overrides={}, drop=set())
@example(signer="RS256", header_overrides={"alg": "HS256"}, claim_overrides={}, drop=set())
@example(signer="RS256", header_overrides={}, claim_overrides={"sub": "\ud800"}, drop=set())
def test_validly_signed_tokens_raise_only_auth_errors(
    runner: asyncio.Runner,
    authenticator: Authenticator,
    keys: TestKeys,
    signer: str,
    header_overrides: dict[str, Any],
    claim_overrides: dict[str, Any],
    drop: set[str],
) -> None:
    """Any header or claim values in a token with a valid signature end in claims or in an
    AuthError, never in another exception (which the gateway would answer with a 500)."""
    now = int(time.time())
    issuer = DEV_ISSUER if signer == "HS256" else ISSUER
    claims: dict[str, Any] = {
        "iss": issuer, "aud": AUDIENCE, "sub": "alice", "iat": now, "exp": now + 300,
        "scope": "orders:read",
    }  # fmt: skip
    claims.update(claim_overrides)
    for name in drop:
        claims.pop(name, None)
    header: dict[str, Any] = {"alg": signer, "typ": "JWT"}
    if _SIGNERS[signer] is not None:
        header["kid"] = _SIGNERS[signer]
    header.update(header_overrides)
    try:
        token = _sign(header, claims, signer, keys)
    except ValueError:  # json.dumps refuses an integer beyond Python's digit limit
        return
    try:
        verified = runner.run(authenticator.verify_token(token))
    except AuthError:
        return
    assert verified.issuer.issuer == issuer
    assert verified.payload == json.loads(json.dumps(claims))
