"""Pure tests of `gateway.core.bearer`: one bearer token in one Authorization header."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.core.bearer import extract_bearer, is_b64token, query_has_access_token
from gateway.core.errors import MalformedCredentials, MissingCredentials

JWT = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJl"

ACCEPTED = [
    pytest.param([f"Bearer {JWT}"], JWT, id="jwt"),
    pytest.param([f"bearer {JWT}"], JWT, id="lower-case-scheme"),
    pytest.param([f"BEARER {JWT}"], JWT, id="upper-case-scheme"),
    pytest.param([f"BeArEr {JWT}"], JWT, id="mixed-case-scheme"),
    pytest.param(["Bearer abc=="], "abc==", id="token68-padding"),
    pytest.param(["Bearer a-._~+/b"], "a-._~+/b", id="token68-punctuation"),
]


@pytest.mark.parametrize(("authorization", "token"), ACCEPTED)
def test_bearer_token_extracted(authorization: list[str], token: str) -> None:
    """A single ``Bearer <token68>`` header yields the token, whatever the scheme's case."""
    assert extract_bearer(authorization, token_in_query=False) == token


MISSING = [
    pytest.param([], id="no-header"),
    pytest.param(["Basic dXNlcjpwYXNz"], id="basic"),
    pytest.param(["Digest username=x"], id="digest"),
    pytest.param(["Bearerx abc"], id="scheme-prefix-only"),
]


@pytest.mark.parametrize("authorization", MISSING)
def test_missing_credentials(authorization: list[str]) -> None:
    """No Authorization header, or another scheme, means no bearer credentials at all (401)."""
    with pytest.raises(MissingCredentials) as caught:
        extract_bearer(authorization, token_in_query=False)
    assert caught.value.status == 401
    assert caught.value.bearer_error is None
    assert caught.value.reason == "missing"


MALFORMED = [
    pytest.param(["Bearer"], id="scheme-only"),
    pytest.param(["Bearer "], id="scheme-and-space"),
    pytest.param([""], id="empty-value"),
    pytest.param([f"Bearer {JWT}", f"Bearer {JWT}"], id="two-headers"),
    pytest.param([f"Bearer {JWT}", "Basic dXNlcjpwYXNz"], id="bearer-and-basic-headers"),
    pytest.param(["Bearer a b"], id="two-tokens"),
    pytest.param([f"Bearer {JWT}, Bearer {JWT}"], id="comma-joined"),
    pytest.param([f"Bearer\t{JWT}"], id="tab-separator"),
    pytest.param([f"Bearer {JWT}\t"], id="trailing-tab"),
    pytest.param(["Bearer a=b"], id="equals-inside"),
    pytest.param(["Bearer ===="], id="padding-only"),
    pytest.param(['Bearer "abc"'], id="quoted"),
    pytest.param(["Bearer abc\x00"], id="nul"),
    pytest.param(["Bearer tökén"], id="non-ascii"),
]


@pytest.mark.parametrize("authorization", MALFORMED)
def test_malformed_credentials(authorization: list[str]) -> None:
    """Bearer credentials that are empty, repeated or not one token68 are malformed (400)."""
    with pytest.raises(MalformedCredentials) as caught:
        extract_bearer(authorization, token_in_query=False)
    assert caught.value.status == 400
    assert caught.value.bearer_error == "invalid_request"
    assert caught.value.reason == "malformed"
    assert JWT not in caught.value.description


QUERY_TOKEN_HEADERS = [
    pytest.param([], id="no-header"),
    pytest.param([f"Bearer {JWT}"], id="valid-header"),
    pytest.param(["Basic dXNlcjpwYXNz"], id="basic-header"),
]


@pytest.mark.parametrize("authorization", QUERY_TOKEN_HEADERS)
def test_token_in_query_is_malformed(authorization: list[str]) -> None:
    """A token in the query is refused as malformed, even next to a valid header."""
    with pytest.raises(MalformedCredentials) as caught:
        extract_bearer(authorization, token_in_query=True)
    assert caught.value.description == "Access tokens in the query string are not accepted"


QUERIES = [
    pytest.param(None, False, id="no-query"),
    pytest.param("", False, id="empty-query"),
    pytest.param("a=1&b=2", False, id="other-params"),
    pytest.param("x=access_token", False, id="value-only"),
    pytest.param("my_access_token=1", False, id="longer-name"),
    pytest.param("access_tokens=1", False, id="plural-name"),
    pytest.param("access_token=abc", True, id="plain"),
    pytest.param("a=1&access_token=abc", True, id="second"),
    pytest.param("access_token=", True, id="empty-value"),
    pytest.param("access_token", True, id="no-value"),
    pytest.param("ACCESS_TOKEN=abc", True, id="upper-case"),
    pytest.param("access%5Ftoken=abc", True, id="encoded-underscore-upper"),
    pytest.param("access%5ftoken=abc", True, id="encoded-underscore-lower"),
    pytest.param("%61ccess_token=abc", True, id="encoded-letter"),
    pytest.param("%61%63%63%65%73%73%5F%74%6F%6B%65%6E=abc", True, id="fully-encoded"),
    # Other separators and the rewrites frameworks apply to parameter names.
    pytest.param("a=1;access_token=abc", True, id="semicolon-separated"),
    pytest.param(";access_token=abc", True, id="leading-semicolon"),
    pytest.param("access_token[]=abc", True, id="php-array"),
    pytest.param("access_token[0]=abc", True, id="php-indexed"),
    pytest.param("access_token%5B%5D=abc", True, id="php-array-encoded"),
    pytest.param("access.token=abc", True, id="php-dot"),
    pytest.param("access+token=abc", True, id="php-space-plus"),
    pytest.param("access%20token=abc", True, id="php-space-encoded"),
    pytest.param("+access_token=abc", True, id="php-leading-space"),
    pytest.param("Access.Token=abc", True, id="php-dot-mixed-case"),
    pytest.param("access_token_x[]=abc", False, id="array-of-longer-name"),
    pytest.param("x[access_token]=abc", False, id="nested-key"),
]


@pytest.mark.parametrize(("query", "expected"), QUERIES)
def test_query_has_access_token(query: str | None, expected: bool) -> None:
    """An ``access_token`` query parameter is found in any spelling an upstream would decode."""
    assert query_has_access_token(query) is expected


# The RFC 6750 b64token grammar as a regex: the oracle `is_b64token` must agree with.
_B64TOKEN_GRAMMAR = re.compile(r"[A-Za-z0-9\-._~+/]+=*")


@given(st.text(alphabet=st.sampled_from("aZ09-._~+/=é \t\n\x00%,;:\"'*\\\udce9"), max_size=12))
def test_b64token_check_agrees_with_the_grammar(candidate: str) -> None:
    assert is_b64token(candidate) == bool(_B64TOKEN_GRAMMAR.fullmatch(candidate))


@pytest.mark.parametrize(
    ("candidate", "valid"),
    [("abc", True), ("a.b-c_d~e+f/g==", True), ("==", False), ("", False), ("a=b", False),
     ("a b", False), ("é", False), ("a\n", False), ("a==\n", False), ("=a", False)],
)  # fmt: skip
def test_b64token_edges(candidate: str, valid: bool) -> None:
    assert is_b64token(candidate) is valid
