"""Verification keys: JWKS and PEM parsing, algorithm binding, ambiguous kids, thumbprints."""

from __future__ import annotations

import datetime
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID
from jwt.algorithms import ECAlgorithm, RSAAlgorithm
from jwt.utils import base64url_decode

from gateway.core.keys import (
    HMAC_ALGORITHMS,
    SUPPORTED_ALGORITHMS,
    KeyLoadError,
    KeySet,
    SkippedKey,
    build_key_set,
    hmac_key,
    key_algorithms,
    keys_from_jwks,
    keys_from_pem,
    public_jwk,
    thumbprint,
)
from tests.support import TestKeys

REPO = Path(__file__).resolve().parents[3]
RSA_FAMILY = frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"})
ALL = SUPPORTED_ALGORITHMS


def _pem(key: Any) -> bytes:
    data: bytes = key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return data


def _without(jwk: dict[str, Any], member: str) -> dict[str, Any]:
    return {name: value for name, value in jwk.items() if name != member}


JwkBuilder = Callable[[TestKeys], Any]

SKIPPED = [
    pytest.param(
        lambda k: {**public_jwk(k.rsa.public_key()), "kid": "bad", "use": "enc"},
        ALL,
        "not_a_signing_key",
        id="use-enc",
    ),
    pytest.param(
        lambda k: {"kty": "oct", "k": "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LTMyYg", "kid": "bad"},
        ALL,
        "symmetric_key",
        id="kty-oct",
    ),
    pytest.param(lambda k: {"kty": "DSA", "kid": "bad"}, ALL, "unsupported_kty", id="kty-unknown"),
    pytest.param(lambda k: {"kid": "bad"}, ALL, "unsupported_kty", id="kty-missing"),
    pytest.param(lambda k: {"kty": ["RSA"], "kid": "bad"}, ALL, "unsupported_kty", id="kty-list"),
    pytest.param(
        lambda k: {**public_jwk(k.rsa.public_key()), "kty": {"RSA": 1}, "kid": "bad"},
        ALL,
        "unsupported_kty",
        id="kty-object",
    ),
    pytest.param(
        lambda k: {**public_jwk(k.rsa.public_key()), "n": 12345, "kid": "bad"},
        ALL,
        "unparseable",
        id="rsa-n-number",
    ),
    pytest.param(
        lambda k: {**public_jwk(k.ec.public_key()), "crv": ["P-256"], "kid": "bad"},
        ALL,
        "unparseable",
        id="ec-crv-list",
    ),
    pytest.param(
        lambda k: {**public_jwk(k.ed.public_key()), "x": {"a": 1}, "kid": "bad"},
        ALL,
        "unparseable",
        id="okp-x-object",
    ),
    pytest.param(
        lambda k: {**_without(public_jwk(k.rsa.public_key()), "n"), "kid": "bad"},
        ALL,
        "unparseable",
        id="rsa-without-n",
    ),
    pytest.param(
        lambda k: {**public_jwk(k.ec.public_key()), "crv": "P-384", "kid": "bad"},
        ALL,
        "unparseable",
        id="ec-wrong-crv",
    ),
    pytest.param(
        lambda k: {**public_jwk(k.ec.public_key()), "crv": "P-192", "kid": "bad"},
        ALL,
        "unparseable",
        id="ec-unknown-crv",
    ),
    pytest.param(
        lambda k: {**public_jwk(k.rsa.public_key()), "kid": "bad", "alg": "RS512"},
        frozenset({"RS256"}),
        "algorithm_not_allowed",
        id="alg-outside-allowlist",
    ),
    pytest.param(
        lambda k: {**public_jwk(k.rsa.public_key()), "kid": "bad", "alg": "HS256"},
        ALL,
        "algorithm_not_allowed",
        id="rsa-key-declaring-hs256",
    ),
    pytest.param(
        lambda k: {**public_jwk(k.ec.public_key()), "kid": "bad", "alg": "ES384"},
        ALL,
        "algorithm_not_allowed",
        id="p256-key-declaring-es384",
    ),
    pytest.param(
        lambda k: {**public_jwk(k.ec.public_key()), "kid": "bad"},
        frozenset({"RS256", "HS256"}),
        "algorithm_not_allowed",
        id="family-outside-allowlist",
    ),
    pytest.param(
        lambda k: {**RSAAlgorithm.to_jwk(k.rsa, as_dict=True), "kid": "bad"},
        ALL,
        "private_key",
        id="rsa-private",
    ),
    pytest.param(
        lambda k: {**ECAlgorithm.to_jwk(k.ec, as_dict=True), "kid": "bad"},
        ALL,
        "private_key",
        id="ec-private",
    ),
]


@pytest.mark.parametrize(("build", "allowed", "reason"), SKIPPED)
def test_unusable_jwk_is_skipped_with_its_reason(
    keys: TestKeys, build: JwkBuilder, allowed: frozenset[str], reason: str
) -> None:
    """An unusable JWK is skipped with its reason and the usable key beside it is kept."""
    good = {**public_jwk(keys.attacker.public_key()), "kid": "good"}
    key_set, skipped = keys_from_jwks({"keys": [build(keys), good]}, allowed | {"RS256"}, "t")
    assert skipped == (SkippedKey("bad", reason),)
    assert key_set.kids == ("good",)


@pytest.mark.parametrize(
    ("entry", "skip"),
    [
        pytest.param("k1", SkippedKey(None, "not_an_object"), id="not-an-object"),
        pytest.param({"kty": "RSA", "kid": 7}, SkippedKey(None, "bad_kid"), id="kid-not-a-string"),
    ],
)
def test_malformed_jwk_entry_is_skipped(entry: object, skip: SkippedKey) -> None:
    """A JWKS entry that is not an object, or has a non-string kid, is skipped without a kid."""
    assert keys_from_jwks({"keys": [entry]}, ALL, "t") == (KeySet(), (skip,))


@pytest.mark.parametrize(
    "document",
    [
        pytest.param([], id="list"),
        pytest.param({}, id="no-keys"),
        pytest.param({"keys": {}}, id="keys-not-a-list"),
        pytest.param("{}", id="string"),
    ],
)
def test_document_that_is_not_a_jwks_is_refused(document: object) -> None:
    """A document without a `keys` list is a KeyLoadError naming its source."""
    with pytest.raises(KeyLoadError, match=r"^jwks\.json is not a JWKS document"):
        keys_from_jwks(document, ALL, "jwks.json")


def test_two_keys_under_one_kid_make_it_ambiguous(keys: TestKeys) -> None:
    """Two different keys sharing a kid are dropped, and a token naming that kid gets no key."""
    document = {
        "keys": [
            {**public_jwk(keys.rsa.public_key()), "kid": "k1"},
            {**public_jwk(keys.attacker.public_key()), "kid": "k1"},
            {**public_jwk(keys.ec.public_key()), "kid": "e1"},
        ]
    }
    key_set, skipped = keys_from_jwks(document, ALL, "t")
    assert skipped == (SkippedKey("k1", "duplicate_kid"),)
    assert key_set.ambiguous_kids == frozenset({"k1"})
    assert key_set.kids == ("e1",)
    assert key_set.with_kid("k1") == ()
    assert [key.kid for key in key_set.with_kid("e1")] == ["e1"]


def test_ambiguous_kid_excludes_kidless_keys_too(keys: TestKeys) -> None:
    """A token naming an ambiguous kid is not even tried against kid-less PEM keys."""
    pem = keys_from_pem(_pem(keys.pem_rsa.public_key()), ALL, "public.pem")
    jwks, _ = keys_from_jwks(
        {"keys": [{**public_jwk(keys.rsa.public_key()), "kid": "k1"}]}, ALL, "a.json"
    )
    other, _ = keys_from_jwks(
        {"keys": [{**public_jwk(keys.attacker.public_key()), "kid": "k1"}]}, ALL, "b.json"
    )
    key_set, skipped = build_key_set([pem, *jwks.keys, *other.keys])
    assert skipped == (SkippedKey("k1", "duplicate_kid"),)
    assert key_set.with_kid("k1") == ()
    assert key_set.with_kid("unknown") == (pem,)
    assert key_set.with_kid(None) == (pem,)


def test_same_key_twice_under_one_kid_is_not_ambiguous(keys: TestKeys) -> None:
    """A key listed twice with the same kid (as during some rotations) stays usable."""
    jwk = {**public_jwk(keys.rsa.public_key()), "kid": "k1"}
    key_set, skipped = keys_from_jwks({"keys": [jwk, dict(jwk)]}, ALL, "t")
    assert skipped == ()
    assert key_set.ambiguous_kids == frozenset()
    assert len(key_set.with_kid("k1")) == 2


@pytest.mark.parametrize(
    ("make", "algorithms"),
    [
        pytest.param(lambda k: k.rsa.public_key(), RSA_FAMILY, id="rsa"),
        pytest.param(lambda k: k.ec.public_key(), frozenset({"ES256"}), id="p256"),
        pytest.param(
            lambda k: ec.generate_private_key(ec.SECP384R1()).public_key(),
            frozenset({"ES384"}),
            id="p384",
        ),
        pytest.param(
            lambda k: ec.generate_private_key(ec.SECP521R1()).public_key(),
            frozenset({"ES512"}),
            id="p521",
        ),
        pytest.param(
            lambda k: ec.generate_private_key(ec.SECP256K1()).public_key(),
            frozenset(),
            id="secp256k1",
        ),
        pytest.param(lambda k: k.ed.public_key(), frozenset({"EdDSA"}), id="ed25519"),
        pytest.param(lambda k: b"a-secret-that-is-thirty-two-byte", frozenset(), id="bytes"),
    ],
)
def test_key_type_decides_its_algorithm_family(
    keys: TestKeys, make: Callable[[TestKeys], object], algorithms: frozenset[str]
) -> None:
    """RSA verifies RS*/PS*, each EC curve its own ES*, Ed25519 EdDSA, and nothing else."""
    assert key_algorithms(make(keys)) == algorithms


@pytest.mark.parametrize(
    ("make", "allowed", "algorithms"),
    [
        pytest.param(lambda k: k.rsa.public_key(), ALL, RSA_FAMILY, id="rsa"),
        pytest.param(
            lambda k: k.rsa.public_key(),
            frozenset({"RS256", "ES256", "HS256"}),
            frozenset({"RS256"}),
            id="rsa-narrowed-by-allowlist",
        ),
        pytest.param(lambda k: k.ec.public_key(), ALL, frozenset({"ES256"}), id="p256"),
        pytest.param(lambda k: k.ed.public_key(), ALL, frozenset({"EdDSA"}), id="ed25519"),
    ],
)
def test_loaded_keys_are_bound_to_their_family_within_the_allowlist(
    keys: TestKeys,
    make: Callable[[TestKeys], Any],
    allowed: frozenset[str],
    algorithms: frozenset[str],
) -> None:
    """JWKS and PEM keys get their family's algorithms intersected with the allowlist, never HS*."""
    public = make(keys)
    key_set, skipped = keys_from_jwks({"keys": [{**public_jwk(public), "kid": "x"}]}, allowed, "t")
    from_pem = keys_from_pem(_pem(public), allowed, "public.pem")
    assert skipped == ()
    assert [key.algorithms for key in key_set.keys] == [algorithms]
    assert (from_pem.kid, from_pem.algorithms) == (None, algorithms)
    assert not algorithms & HMAC_ALGORITHMS


def test_hmac_secret_is_bound_to_hmac_algorithms_only() -> None:
    """An HMAC secret verifies only the allowlist's HS* algorithms."""
    key = hmac_key("s" * 32, frozenset({"HS256", "RS256", "ES256"}), "secret")
    assert (key.kid, key.algorithms, key.key) == (None, frozenset({"HS256"}), b"s" * 32)


def test_hmac_secret_is_not_in_repr() -> None:
    """A VerificationKey's repr never shows the secret (it may reach a log or a traceback)."""
    secret = "a-secret-that-must-never-be-logged"
    assert secret not in repr(hmac_key(secret, frozenset({"HS256"}), "secret"))


def test_pem_certificate_is_accepted(keys: TestKeys) -> None:
    """A PEM X.509 certificate yields its public key, bound to the key's family."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "issuer.example.test")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(keys.ec.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(keys.ec, hashes.SHA256())
    )
    key = keys_from_pem(certificate.public_bytes(serialization.Encoding.PEM), ALL, "cert.pem")
    assert key.algorithms == frozenset({"ES256"})
    assert public_jwk(key.key) == public_jwk(keys.ec.public_key())


@pytest.mark.parametrize(
    ("make", "private_format"),
    [
        pytest.param(lambda k: k.rsa, serialization.PrivateFormat.PKCS8, id="rsa-pkcs8"),
        pytest.param(
            lambda k: k.rsa, serialization.PrivateFormat.TraditionalOpenSSL, id="rsa-traditional"
        ),
        pytest.param(lambda k: k.ec, serialization.PrivateFormat.TraditionalOpenSSL, id="ec"),
        pytest.param(lambda k: k.ed, serialization.PrivateFormat.PKCS8, id="ed25519"),
    ],
)
def test_private_key_pem_is_refused(
    keys: TestKeys, make: Callable[[TestKeys], Any], private_format: serialization.PrivateFormat
) -> None:
    """A PEM private key is refused with a message that names the file and not the key bytes."""
    data = make(keys).private_bytes(
        serialization.Encoding.PEM, private_format, serialization.NoEncryption()
    )
    with pytest.raises(KeyLoadError) as info:
        keys_from_pem(data, ALL, "keys/public.pem")
    assert str(info.value) == "keys/public.pem holds a private key; configure the public key only"


# An EC public key on secp112r1, a curve cryptography does not implement (it raises
# UnsupportedAlgorithm, not ValueError).
SECP112R1_PEM = b"""-----BEGIN PUBLIC KEY-----
MDIwEAYHKoZIzj0CAQYFK4EEAAYDHgAE2E6eRIiJXvdeAKZxrQa2OgUgYKmF83gZ
JqNuyQ==
-----END PUBLIC KEY-----
"""


@pytest.mark.parametrize(
    ("data", "allowed", "fragment"),
    [
        pytest.param(b"not a key", ALL, "is not a PEM public key or certificate", id="garbage"),
        pytest.param(
            SECP112R1_PEM,
            ALL,
            "is not a PEM public key or certificate (Curve 1.3.132.0.6 is not supported)",
            id="unsupported-curve",
        ),
        pytest.param(None, frozenset({"ES256", "EdDSA"}), "RSA public key", id="wrong-family"),
        pytest.param(None, frozenset({"HS256"}), "RSA public key", id="hmac-only-issuer"),
    ],
)
def test_unusable_pem_is_refused(
    keys: TestKeys, data: bytes | None, allowed: frozenset[str], fragment: str
) -> None:
    """Garbage, or a PEM key no allowed algorithm can use, is a KeyLoadError naming the file."""
    pem = _pem(keys.rsa.public_key()) if data is None else data
    with pytest.raises(KeyLoadError) as info:
        keys_from_pem(pem, allowed, "keys/public.pem")
    assert str(info.value).startswith("keys/public.pem ")
    assert fragment in str(info.value)


def test_rsa_key_shorter_than_2048_bits_is_refused() -> None:
    """RSA keys under 2048 bits (RFC 7518 section 3.3) are refused from PEM and skipped in JWKS."""
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505 - on purpose
    small = weak.public_key()
    with pytest.raises(KeyLoadError):
        keys_from_pem(_pem(small), ALL, "small.pem")
    key_set, skipped = keys_from_jwks({"keys": [{**public_jwk(small), "kid": "s"}]}, ALL, "t")
    assert key_set.keys == ()
    assert [skip.kid for skip in skipped] == ["s"]


def test_thumbprint_matches_rfc_7638_example() -> None:
    """The RSA key of RFC 7638 section 3.1 has the thumbprint the RFC gives."""
    n = (
        "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_B"
        "JECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_F"
        "DW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI"
        "4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"
    )
    numbers = rsa.RSAPublicNumbers(
        e=int.from_bytes(base64url_decode("AQAB")), n=int.from_bytes(base64url_decode(n))
    )
    assert thumbprint(numbers.public_key()) == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"


def test_sample_jwks_kids_are_their_thumbprints() -> None:
    """The shipped EC and OKP keys carry their RFC 7638 thumbprints as kids."""
    document = json.loads((REPO / "config" / "keys" / "jwks.json").read_text())
    key_set, skipped = keys_from_jwks(document, ALL, "jwks.json")
    assert skipped == ()
    assert {key.kid: thumbprint(key.key) for key in key_set.keys} == {
        kid: kid for kid in key_set.kids
    }
    assert {key.algorithms for key in key_set.keys} == {frozenset({"ES256"}), frozenset({"EdDSA"})}


def test_key_set_without_kid_offers_every_key(keys: TestKeys) -> None:
    """No kid offers every key; a kid offers its own key and the kid-less ones."""
    pem = keys_from_pem(_pem(keys.pem_rsa.public_key()), ALL, "public.pem")
    jwks, _ = keys_from_jwks(keys.jwks(), ALL, "jwks.json")
    key_set, _ = build_key_set([pem, *jwks.keys])
    assert len(key_set.with_kid(None)) == 4
    assert [key.kid for key in key_set.with_kid("e1")] == [None, "e1"]
    assert key_set.kids == ("e1", "k1", "o1")
