"""Pure tests of `gateway.core.tokens`: parsing, signature checks and every claim rule."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest
from jwt.algorithms import get_default_algorithms

from gateway.config import Config, load
from gateway.core.errors import InvalidToken
from gateway.core.keys import KeySet, keys_from_jwks
from gateway.core.models import IssuerConfig, ScopeFormat, TokensConfig
from gateway.core.tokens import Claims, numeric_date, parse, verify
from tests.support import (
    AUDIENCE,
    DEV_ISSUER,
    DEV_SECRET,
    ENVIRON,
    ISSUER,
    TestKeys,
    b64url,
    forge,
    write_config,
)

NOW = 1_700_000_000
LEEWAY = TokensConfig(leeway=30.0)
_ALGORITHMS = get_default_algorithms()


def claims(**overrides: Any) -> dict[str, Any]:
    """G's claims at NOW, with overrides (a value of ``...`` removes the claim)."""
    base: dict[str, Any] = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "alice",
        "iat": NOW,
        "exp": NOW + 300,
        "scope": "orders:read",
    }
    base.update(overrides)
    return {name: value for name, value in base.items() if value is not ...}


def rs256(keys: TestKeys, payload: Mapping[str, Any] | bytes, **header: Any) -> str:
    """A token signed with RSA key k1 (header ``kid: k1`` unless overridden)."""
    return forge({"alg": "RS256", "typ": "JWT", "kid": "k1", **header}, payload, keys.rsa, "RS256")


def reason_of(token: str, issuer: IssuerConfig, tokens: TokensConfig = LEEWAY) -> str:
    """The refusal reason for ``token`` (fails the test if it is accepted)."""
    with pytest.raises(InvalidToken) as caught:
        verify(parse(token), issuer, issuer.keys, tokens, NOW)
    return caught.value.reason


def accept(token: str, issuer: IssuerConfig, tokens: TokensConfig = LEEWAY) -> Claims:
    """Verify ``token`` at NOW and return its claims."""
    return verify(parse(token), issuer, issuer.keys, tokens, NOW)


@pytest.fixture
def config(tmp_path: Path, keys: TestKeys) -> Config:
    """The default test configuration, loaded from files."""
    return load(write_config(tmp_path, keys), ENVIRON)


@pytest.fixture
def local(config: Config) -> IssuerConfig:
    """The RSA/EC/EdDSA issuer (audiences: example-api)."""
    (issuer,) = (issuer for issuer in config.issuers if issuer.issuer == ISSUER)
    return issuer


@pytest.fixture
def dev(config: Config) -> IssuerConfig:
    """The HS256 ``dev`` issuer (no audiences)."""
    (issuer,) = (issuer for issuer in config.issuers if issuer.issuer == DEV_ISSUER)
    return issuer


def test_good_token_is_accepted(keys: TestKeys, local: IssuerConfig) -> None:
    """G signed by k1 verifies and yields its subject, scopes and expiry."""
    verified = accept(rs256(keys, claims()), local)
    assert verified.subject == "alice"
    assert verified.scopes == frozenset({"orders:read"})
    assert verified.expires_at == NOW + 300
    assert verified.issuer is local


# -- malformed --------------------------------------------------------------------------

_HEADER = b64url(b'{"alg":"RS256","kid":"k1"}')
_PAYLOAD = b64url(json.dumps(claims()).encode())
_SIG = b64url(b"\x01" * 256)
_STRING_PAYLOAD = b64url(b'"alice"')
_NON_UTF8_PAYLOAD = b64url(b'{"sub": "\xff"}')


@pytest.mark.parametrize(
    "token",
    [
        pytest.param(f"{_HEADER}.{_PAYLOAD}", id="two-parts"),
        pytest.param(f"{_HEADER}.{_PAYLOAD}.{_SIG}.{_SIG}", id="four-parts"),
        pytest.param(
            ".".join(
                [
                    b64url(b'{"alg":"RSA-OAEP","enc":"A256GCM"}'),
                    b64url(b"\x02" * 256),
                    b64url(b"\x03" * 12),
                    b64url(b"\x04" * 64),
                    b64url(b"\x05" * 16),
                ]
            ),
            id="five-parts-jwe",
        ),
        pytest.param("...", id="only-dots"),
        pytest.param("", id="empty"),
        pytest.param(f"{_HEADER}.{_PAYLOAD}!.{_SIG}", id="non-base64-char"),
        pytest.param(f"{_HEADER}.{_PAYLOAD}.{_SIG}=", id="padding"),
        pytest.param(f"{_HEADER}.{_PAYLOAD}+/.{_SIG}", id="standard-base64-alphabet"),
        pytest.param(f"{_HEADER}.{_PAYLOAD}a.{_SIG}", id="impossible-base64-length"),
        pytest.param(f"{_HEADER}.{b64url(b'[1, 2]')}.{_SIG}", id="payload-is-a-list"),
        pytest.param(f"{_HEADER}.{b64url(b'123')}.{_SIG}", id="payload-is-a-number"),
        pytest.param(f"{_HEADER}.{_STRING_PAYLOAD}.{_SIG}", id="payload-is-a-string"),
        pytest.param(f"{_HEADER}.{b64url(b'null')}.{_SIG}", id="payload-is-null"),
        pytest.param(f"{_HEADER}.{b64url(b'not json')}.{_SIG}", id="payload-not-json"),
        pytest.param(f"{_HEADER}.{_NON_UTF8_PAYLOAD}.{_SIG}", id="payload-not-utf8"),
        pytest.param(f"{b64url(b'[]')}.{_PAYLOAD}.{_SIG}", id="header-is-a-list"),
        pytest.param(f"{_HEADER}.{_PAYLOAD}.!!", id="signature-not-base64"),
    ],
)
def test_parse_refuses_malformed_tokens(token: str) -> None:
    """Anything but three strict base64url segments of JSON objects is malformed."""
    with pytest.raises(InvalidToken) as caught:
        parse(token)
    assert caught.value.reason == "malformed"


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param(b'{"sub": "alice", "sub": "mallory", "exp": 9999999999}', id="duplicate-sub"),
        pytest.param(b'{"exp": 1, "exp": 9999999999}', id="duplicate-exp"),
        pytest.param(b'{"sub": "alice", "exp": NaN}', id="nan"),
        pytest.param(b'{"sub": "alice", "exp": Infinity}', id="infinity"),
        pytest.param(b'{"sub": "alice", "exp": -Infinity}', id="minus-infinity"),
    ],
)
def test_parse_refuses_ambiguous_json_in_signed_payload(keys: TestKeys, payload: bytes) -> None:
    """Duplicate members and non-JSON constants are malformed even when properly signed."""
    with pytest.raises(InvalidToken) as caught:
        parse(rs256(keys, payload))
    assert caught.value.reason == "malformed"


def test_parse_refuses_duplicate_header_members() -> None:
    """A header naming ``alg`` twice is malformed, whichever one a library would pick."""
    header = b64url(b'{"alg": "RS256", "alg": "none", "kid": "k1"}')
    token = f"{header}.{b64url(json.dumps(claims()).encode())}."
    with pytest.raises(InvalidToken) as caught:
        parse(token)
    assert caught.value.reason == "malformed"


def test_non_string_kid_is_malformed(keys: TestKeys, local: IssuerConfig) -> None:
    """A ``kid`` that is not a string is malformed."""
    assert reason_of(rs256(keys, claims(), kid=1), local) == "malformed"


# -- header checks ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "header",
    [
        pytest.param({"alg": "none", "kid": "k1"}, id="none"),
        pytest.param({"alg": "None", "kid": "k1"}, id="None"),
        pytest.param({"alg": "NONE", "kid": "k1"}, id="NONE"),
        pytest.param({"alg": "", "kid": "k1"}, id="empty"),
        pytest.param({"alg": None, "kid": "k1"}, id="null"),
        pytest.param({"alg": 123, "kid": "k1"}, id="number"),
        pytest.param({"alg": ["RS256"], "kid": "k1"}, id="list"),
        pytest.param({"kid": "k1"}, id="absent"),
        pytest.param({"alg": "HS256", "kid": "k1"}, id="hs256-not-in-allowlist"),
        pytest.param({"alg": "rs256", "kid": "k1"}, id="lower-case-rs256"),
    ],
)
def test_algorithm_outside_allowlist_is_refused(
    local: IssuerConfig, header: dict[str, Any]
) -> None:
    """An ``alg`` that is not exactly one of the issuer's algorithms is alg_not_allowed."""
    token = ".".join(
        [b64url(json.dumps(header).encode()), b64url(json.dumps(claims()).encode()), ""]
    )
    assert reason_of(token, local) == "alg_not_allowed"


def test_alg_none_keeping_a_real_signature_is_refused(keys: TestKeys, local: IssuerConfig) -> None:
    """Switching G's header to ``alg: none`` while keeping its signature is alg_not_allowed."""
    _, payload, signature = rs256(keys, claims()).split(".")
    header = b64url(json.dumps({"alg": "none", "kid": "k1"}).encode())
    assert reason_of(f"{header}.{payload}.{signature}", local) == "alg_not_allowed"


@pytest.mark.parametrize(
    ("alg", "kid"),
    [
        pytest.param("ES256", "k1", id="es256-naming-rsa-kid"),
        pytest.param("EdDSA", "k1", id="eddsa-naming-rsa-kid"),
        pytest.param("RS256", "e1", id="rs256-naming-ec-kid"),
    ],
)
def test_key_is_only_used_with_its_own_algorithm_family(keys: TestKeys, alg: str, kid: str) -> None:
    """A JWKS key refuses a token whose alg belongs to another key family (alg_not_allowed)."""
    allowed = frozenset({"RS256", "ES256", "EdDSA"})
    key_set, skipped = keys_from_jwks(keys.jwks(), allowed, "test")
    assert skipped == ()
    issuer = IssuerConfig(name="jwks", issuer=ISSUER, algorithms=allowed, keys=key_set)
    signer = {"ES256": keys.ec, "EdDSA": keys.ed, "RS256": keys.rsa}[alg]
    token = forge({"alg": alg, "kid": kid}, claims(), signer, alg)
    assert reason_of(token, issuer) == "alg_not_allowed"


@pytest.mark.parametrize(
    "header",
    [
        pytest.param({"crit": ["exp"]}, id="crit"),
        pytest.param({"crit": []}, id="crit-empty"),
        pytest.param({"b64": False, "crit": ["b64"]}, id="b64-false"),
        pytest.param({"b64": False}, id="b64-false-without-crit"),
    ],
)
def test_unsupported_header_is_refused(
    keys: TestKeys, local: IssuerConfig, header: dict[str, Any]
) -> None:
    """``crit`` and ``b64`` headers are unsupported_header, even on a correctly signed token."""
    assert reason_of(rs256(keys, claims(), **header), local) == "unsupported_header"


@pytest.mark.parametrize(
    ("typ", "accepted"),
    [
        pytest.param("at+jwt", True, id="at+jwt"),
        pytest.param("application/at+jwt", True, id="application-at+jwt"),
        pytest.param("AT+JWT", True, id="upper-case"),
        pytest.param("JWT", False, id="JWT"),
        pytest.param("jwt", False, id="jwt"),
        pytest.param(..., False, id="absent"),
        pytest.param(None, False, id="null"),
        pytest.param(["at+jwt"], False, id="list"),
        pytest.param("at+jwt2", False, id="suffix"),
    ],
)
def test_require_typ_at_jwt(keys: TestKeys, local: IssuerConfig, typ: Any, accepted: bool) -> None:
    """With ``require_typ: at+jwt`` only an at+jwt ``typ`` (RFC 9068) is accepted."""
    issuer = dataclasses.replace(local, require_typ="at+jwt")
    header = (
        {"alg": "RS256", "kid": "k1"} if typ is ... else {"alg": "RS256", "kid": "k1", "typ": typ}
    )
    token = forge(header, claims(), keys.rsa, "RS256")
    if accepted:
        assert accept(token, issuer).subject == "alice"
    else:
        assert reason_of(token, issuer) == "bad_type"


def test_typ_is_not_checked_without_require_typ(keys: TestKeys, local: IssuerConfig) -> None:
    """Without ``require_typ`` a plain ``typ: JWT`` token is accepted."""
    assert accept(rs256(keys, claims(), typ="JWT"), local).subject == "alice"


# -- keys and signatures ----------------------------------------------------------------------


def test_unknown_kid_is_refused(keys: TestKeys) -> None:
    """A kid that names no key of a JWKS-only issuer is unknown_kid."""
    allowed = frozenset({"RS256", "ES256", "EdDSA"})
    key_set, _ = keys_from_jwks(keys.jwks(), allowed, "test")
    issuer = IssuerConfig(name="jwks", issuer=ISSUER, algorithms=allowed, keys=key_set)
    assert reason_of(rs256(keys, claims(), kid="nope"), issuer) == "unknown_kid"


def test_empty_key_set_refuses_every_token(keys: TestKeys, local: IssuerConfig) -> None:
    """An issuer with no keys refuses even a token without a kid (never a pass)."""
    issuer = dataclasses.replace(local, keys=KeySet())
    token = forge({"alg": "RS256"}, claims(), keys.rsa, "RS256")
    assert reason_of(token, issuer) == "unknown_kid"


def _truncate_signature(token: str) -> str:
    header, payload, _ = token.split(".")
    return f"{header}.{payload}.{b64url(parse(token).signature[:-3])}"


def _flip_bit(token: str) -> str:
    header, payload, _ = token.split(".")
    raw = bytearray(parse(token).signature)
    raw[len(raw) // 2] ^= 0x01
    return f"{header}.{payload}.{b64url(bytes(raw))}"


def _tampered(keys: TestKeys) -> str:
    header, _, signature = rs256(keys, claims()).split(".")
    payload = b64url(json.dumps(claims(scope="orders:read orders:write")).encode())
    return f"{header}.{payload}.{signature}"


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(
            lambda k: forge({"alg": "RS256", "kid": "k1"}, claims(), k.attacker, "RS256"),
            id="attacker-key-kid-k1",
        ),
        pytest.param(
            lambda k: forge({"alg": "RS256"}, claims(), k.attacker, "RS256"), id="attacker-no-kid"
        ),
        pytest.param(lambda k: _truncate_signature(rs256(k, claims())), id="truncated-signature"),
        pytest.param(lambda k: _flip_bit(rs256(k, claims())), id="bit-flipped"),
        pytest.param(_tampered, id="tampered-payload"),
        pytest.param(
            lambda k: ".".join(
                [
                    b64url(b'{"alg":"ES256","kid":"e1"}'),
                    b64url(json.dumps(claims()).encode()),
                    b64url(bytes(64)),
                ]
            ),
            id="psychic-signature-es256",
        ),
        pytest.param(
            lambda k: ".".join([*rs256(k, claims()).split(".")[:2], ""]), id="empty-signature"
        ),
    ],
)
def test_bad_signature_is_refused(
    keys: TestKeys, local: IssuerConfig, make: Callable[[TestKeys], str]
) -> None:
    """A signature that does not verify under the named key is bad_signature."""
    assert reason_of(make(keys), local) == "bad_signature"


_SPARE_BITS = {2: 4, 3: 2}  # base64url length mod 4 -> unused low bits in the last character
_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def _non_canonical(segment: str) -> str:
    """The same bytes spelt with the unused low bits of the last character set."""
    spare = _SPARE_BITS[len(segment) % 4]
    last = _ALPHABET.index(segment[-1]) | ((1 << spare) - 1)
    return segment[:-1] + _ALPHABET[last]


@pytest.mark.parametrize("index", [0, 1, 2], ids=["header", "payload", "signature"])
def test_a_non_canonical_base64url_segment_is_malformed(
    keys: TestKeys, local: IssuerConfig, index: int
) -> None:
    """A segment whose last character carries set padding bits is refused, although it decodes
    to the same bytes: a token has exactly one accepted spelling."""
    pad = 0
    while True:  # grow a header member and a claim until both segments have spare bits
        header = {"alg": "RS256", "kid": "k1", "x": "y" * pad}
        good = forge(header, claims(pad="z" * pad), keys.rsa, "RS256")
        segments = good.split(".")
        if all(len(segment) % 4 for segment in segments):
            break
        pad += 1
    accept(good, local)
    segments[index] = _non_canonical(segments[index])
    assert reason_of(".".join(segments), local) == "malformed"


@pytest.mark.parametrize(
    ("alg", "kid"),
    [
        pytest.param("RS256", "k1", id="rs256-k1"),
        pytest.param("ES256", "e1", id="es256-e1"),
        pytest.param("EdDSA", "o1", id="eddsa-o1"),
    ],
)
def test_each_configured_jwk_verifies(
    keys: TestKeys, local: IssuerConfig, alg: str, kid: str
) -> None:
    """Each JWKS key verifies tokens of its own algorithm."""
    signer = {"RS256": keys.rsa, "ES256": keys.ec, "EdDSA": keys.ed}[alg]
    token = forge({"alg": alg, "kid": kid}, claims(), signer, alg)
    assert accept(token, local).subject == "alice"


def test_pem_key_verifies_without_kid(keys: TestKeys, local: IssuerConfig) -> None:
    """The PEM-configured key verifies a token that carries no kid."""
    token = forge({"alg": "RS256"}, claims(), keys.pem_rsa, "RS256")
    assert accept(token, local).subject == "alice"


def test_dev_hs256_token_verifies(dev: IssuerConfig) -> None:
    """The dev issuer's HMAC secret verifies an HS256 token."""
    token = forge({"alg": "HS256"}, claims(iss=DEV_ISSUER), DEV_SECRET.encode(), "HS256")
    assert accept(token, dev).subject == "alice"


def test_rsa_public_key_is_never_an_hmac_secret(keys: TestKeys, local: IssuerConfig) -> None:
    """HS256 keyed with the configured public PEM is refused by the RSA issuer."""
    token = forge({"alg": "HS256"}, claims(), keys.public_pem(), "HS256")
    assert reason_of(token, local) == "alg_not_allowed"


# -- time claims ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        pytest.param({"exp": NOW - 31, "iat": NOW - 300}, "expired", id="exp-now-minus-31"),
        pytest.param({"exp": NOW - 29, "iat": NOW - 300}, None, id="exp-now-minus-29"),
        pytest.param({"exp": NOW - 3600, "iat": NOW - 7200}, "expired", id="exp-an-hour-ago"),
        pytest.param({"nbf": NOW + 31}, "not_yet_valid", id="nbf-now-plus-31"),
        pytest.param({"nbf": NOW + 29}, None, id="nbf-now-plus-29"),
        pytest.param({"iat": NOW + 3600, "exp": NOW + 4000}, "not_yet_valid", id="iat-in-an-hour"),
        pytest.param({"iat": NOW + 29}, None, id="iat-now-plus-29"),
        pytest.param({"iat": ...}, None, id="no-iat"),
    ],
)
def test_time_claims_with_leeway(
    keys: TestKeys, local: IssuerConfig, overrides: dict[str, Any], reason: str | None
) -> None:
    """exp, nbf and iat are checked against the injected clock with a 30 s leeway."""
    token = rs256(keys, claims(**overrides))
    if reason is None:
        assert accept(token, local).subject == "alice"
    else:
        assert reason_of(token, local) == reason


def test_missing_exp_is_refused(keys: TestKeys, local: IssuerConfig) -> None:
    """A token without ``exp`` is missing_claim."""
    assert reason_of(rs256(keys, claims(exp=...)), local) == "missing_claim"


@pytest.mark.parametrize(
    "overrides",
    [
        pytest.param({"exp": "9999999999"}, id="exp-numeric-string"),
        pytest.param({"exp": True}, id="exp-true"),
        pytest.param({"exp": None}, id="exp-null"),
        pytest.param({"exp": [NOW + 300]}, id="exp-list"),
        pytest.param({"exp": {"value": NOW + 300}}, id="exp-object"),
        pytest.param({"nbf": "0"}, id="nbf-string"),
        pytest.param({"iat": str(NOW)}, id="iat-string"),
        pytest.param({"sub": "alice\r\nX-Auth-Scopes: admin"}, id="sub-crlf"),
        pytest.param({"sub": 42}, id="sub-number"),
        pytest.param({"client_id": "app\n"}, id="client-id-newline"),
        # Identity forwarded exactly or not at all: what every HTTP stack reads back unchanged.
        pytest.param({"sub": "adm\ud800in"}, id="sub-lone-surrogate"),
        pytest.param({"sub": "adm\u00e9"}, id="sub-non-ascii"),
        pytest.param({"sub": " admin"}, id="sub-leading-space"),
        pytest.param({"sub": "admin "}, id="sub-trailing-space"),
        pytest.param({"sub": ""}, id="sub-empty"),
        pytest.param({"azp": "app\u2028"}, id="azp-line-separator"),
        pytest.param({"client_id": "app\x7f"}, id="client-id-del"),
    ],
)
def test_claim_of_wrong_type_is_refused(
    keys: TestKeys, local: IssuerConfig, overrides: dict[str, Any]
) -> None:
    """Non-numeric dates and header-unsafe identity claims are invalid_claim."""
    assert reason_of(rs256(keys, claims(**overrides)), local) == "invalid_claim"


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        pytest.param(NOW, float(NOW), id="integer"),
        pytest.param(NOW + 0.5, NOW + 0.5, id="float"),
        pytest.param(-1, -1.0, id="negative"),
        pytest.param(str(NOW), None, id="numeric-string"),
        pytest.param(True, None, id="boolean"),
        pytest.param(None, None, id="null"),
        pytest.param([NOW], None, id="list"),
        pytest.param(float("inf"), None, id="infinity"),
        pytest.param(float("nan"), None, id="nan"),
        pytest.param(10**400, None, id="integer-beyond-float"),
    ],
)
def test_numeric_date(value: object, seconds: float | None) -> None:
    """A NumericDate is a finite JSON number that fits a float; anything else is None."""
    assert numeric_date(value) == seconds


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        pytest.param({"exp": NOW + 3600}, None, id="exactly-max"),
        pytest.param({"exp": NOW + 3600 + 29}, None, id="within-leeway"),
        pytest.param({"exp": NOW + 3600 + 31}, "lifetime_too_long", id="beyond-leeway"),
        pytest.param({"exp": NOW + 86400}, "lifetime_too_long", id="a-day"),
        pytest.param({"iat": ..., "exp": NOW + 86400}, "lifetime_too_long", id="a-day-no-iat"),
    ],
)
def test_max_lifetime(
    keys: TestKeys, local: IssuerConfig, overrides: dict[str, Any], reason: str | None
) -> None:
    """With ``max_lifetime: 1h`` a token whose exp - iat exceeds it is lifetime_too_long."""
    rules = TokensConfig(leeway=30.0, max_lifetime=3600.0)
    token = rs256(keys, claims(**overrides))
    if reason is None:
        assert accept(token, local, rules).subject == "alice"
    else:
        assert reason_of(token, local, rules) == reason


def test_max_lifetime_loaded_from_config(tmp_path: Path, keys: TestKeys) -> None:
    """``tokens.max_lifetime: 1h`` in gateway.yaml refuses a day-long token."""
    gateway = (
        "routes: routes.yaml\n"
        "issuers:\n"
        "  - {{name: local, issuer: '{issuer}', audiences: ['{audience}'],\n"
        "     algorithms: [RS256, ES256, EdDSA], keys: [keys/public.pem, keys/jwks.json]}}\n"
        "tokens: {{leeway: 30s, max_lifetime: 1h}}\n"
    )
    config = load(write_config(tmp_path, keys, gateway=gateway), ENVIRON)
    (issuer,) = config.issuers
    token = rs256(keys, claims(exp=NOW + 86400))
    assert reason_of(token, issuer, config.tokens) == "lifetime_too_long"


# -- audience ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "aud",
    [
        pytest.param(..., id="absent"),
        pytest.param("other-api", id="other-api"),
        pytest.param(["other"], id="list-other"),
        pytest.param("EXAMPLE-API", id="different-case"),
        pytest.param("example-api ", id="trailing-space"),
        pytest.param([], id="empty-list"),
        pytest.param(None, id="null"),
        pytest.param(["example-api", 1], id="list-with-number"),
    ],
)
def test_wrong_audience_is_refused(keys: TestKeys, local: IssuerConfig, aud: Any) -> None:
    """An issuer with audiences refuses a token whose ``aud`` contains none of them."""
    assert reason_of(rs256(keys, claims(aud=aud)), local) == "bad_audience"


@pytest.mark.parametrize(
    "aud",
    [
        pytest.param("example-api", id="string"),
        pytest.param(["example-api"], id="list"),
        pytest.param(["other", "example-api"], id="list-containing-it"),
    ],
)
def test_matching_audience_is_accepted(keys: TestKeys, local: IssuerConfig, aud: Any) -> None:
    """An ``aud`` containing one of the issuer's audiences is accepted."""
    assert accept(rs256(keys, claims(aud=aud)), local).subject == "alice"


@pytest.mark.parametrize(
    "aud",
    [
        pytest.param(..., id="absent"),
        pytest.param("anything", id="string"),
        pytest.param(["a", "b"], id="list"),
    ],
)
def test_issuer_without_audiences_accepts_any_aud(dev: IssuerConfig, aud: Any) -> None:
    """An issuer that lists no audiences does not check ``aud``."""
    token = forge({"alg": "HS256"}, claims(iss=DEV_ISSUER, aud=aud), DEV_SECRET.encode(), "HS256")
    assert accept(token, dev).subject == "alice"


# -- scopes -----------------------------------------------------------------------------------


_STRING = ScopeFormat.STRING
_LIST = ScopeFormat.LIST


@pytest.mark.parametrize(
    ("claim", "form", "overrides", "expected"),
    [
        pytest.param("scope", _STRING, {"scope": "a b"}, {"a", "b"}, id="scope-string"),
        pytest.param("scope", _STRING, {"scope": "a  b "}, {"a", "b"}, id="scope-extra-spaces"),
        pytest.param("scp", _STRING, {"scope": ..., "scp": "a b"}, {"a", "b"}, id="scp-string"),
        pytest.param("scp", _LIST, {"scope": ..., "scp": ["a", "b"]}, {"a", "b"}, id="scp-list"),
        pytest.param("scopes", _LIST, {"scope": ..., "scopes": ["a", "b"]}, {"a", "b"},
                     id="scopes-list"),
        pytest.param("scope", _STRING, {"scope": "a", "scp": ["b"], "scopes": ["c"]}, {"a"},
                     id="only-the-named-claim"),
        pytest.param("scope", _STRING, {"scope": "orders:read", "scp": "admin"}, {"orders:read"},
                     id="scp-grants-nothing-to-a-scope-issuer"),
        pytest.param("scp", _STRING, {"scope": "admin", "scp": "orders:read"}, {"orders:read"},
                     id="scope-grants-nothing-to-an-scp-issuer"),
        pytest.param("scope", _STRING, {"scope": "a\tb"}, set(), id="tab-is-not-a-separator"),
        pytest.param("scope", _STRING, {"scope": "a\nb c"}, {"c"},
                     id="newline-is-not-a-separator"),
        pytest.param("scope", _STRING, {"scope": "a é"}, {"a"}, id="non-ascii-grants-nothing"),
        pytest.param("scope", _STRING, {"scope": ["a", "b"]}, set(), id="list-for-a-string-claim"),
        pytest.param("scp", _LIST, {"scope": ..., "scp": "a b"}, set(), id="string-for-a-list"),
        pytest.param("scope", _STRING, {"scope": ...}, set(), id="none"),
        pytest.param("scope", _STRING, {"scope": "orders:readX"}, {"orders:readX"},
                     id="no-prefix-games"),
    ],
)  # fmt: skip
def test_scopes_come_from_the_issuers_one_scope_claim(
    keys: TestKeys,
    local: IssuerConfig,
    claim: str,
    form: ScopeFormat,
    overrides: dict[str, Any],
    expected: set[str],
) -> None:
    """Scopes come from the issuer's ``scope_claim`` in its ``scope_format``; every other
    scope-like claim grants nothing."""
    issuer = dataclasses.replace(local, scope_claim=claim, scope_format=form)
    assert accept(rs256(keys, claims(**overrides)), issuer).scopes == frozenset(expected)


def test_reason_of_refusal_never_echoes_token_data(keys: TestKeys, local: IssuerConfig) -> None:
    """The refusal's text is the fixed reason code, never claim data."""
    with pytest.raises(InvalidToken) as caught:
        verify(parse(rs256(keys, claims(aud="evil\r\nX: 1"))), local, local.keys, LEEWAY, NOW)
    assert "evil" not in str(caught.value)
    assert "evil" not in caught.value.description
