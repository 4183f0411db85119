"""Verification keys, each bound to the algorithms of its own type.

RFC 8725 section 3.1: a key is used with exactly the algorithms of its family, so an RSA public
key can never be handed to HMAC (the RS256 -> HS256 confusion) and an ES256 token can never be
checked against an RSA key. The binding is computed here once, when keys are loaded, from the
key's type (and the JWK's ``alg`` where it names one), and intersected with the issuer's allowlist.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeAlias

import jwt
from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

__all__ = [
    "EC_CURVES",
    "HMAC_MIN_BYTES",
    "SUPPORTED_ALGORITHMS",
    "KeyLoadError",
    "KeySet",
    "SkippedKey",
    "VerificationKey",
    "build_key_set",
    "hmac_key",
    "key_algorithms",
    "keys_from_jwks",
    "keys_from_pem",
    "public_jwk",
    "thumbprint",
]

RSA_ALGORITHMS = frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"})
HMAC_ALGORITHMS = frozenset({"HS256", "HS384", "HS512"})
# RFC 7518 section 3.4: each ECDSA algorithm is bound to one curve.
EC_CURVES: Mapping[str, ec.EllipticCurve] = {
    "ES256": ec.SECP256R1(),
    "ES384": ec.SECP384R1(),
    "ES512": ec.SECP521R1(),
}
_EC_CURVE_ALGORITHM = {curve.name: algorithm for algorithm, curve in EC_CURVES.items()}
SUPPORTED_ALGORITHMS = RSA_ALGORITHMS | HMAC_ALGORITHMS | frozenset(EC_CURVES) | {"EdDSA"}
# RFC 7518 section 3.2: an HMAC key must be at least as long as the hash output.
HMAC_MIN_BYTES = {"HS256": 32, "HS384": 48, "HS512": 64}
_RSA_MIN_BITS = 2048

# An explicit alias: where cryptography's types are unknown (setup.py's build), a bare union of
# them is not taken for a type.
PublicKey: TypeAlias = (
    rsa.RSAPublicKey | ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | ed448.Ed448PublicKey
)


class KeyLoadError(ValueError):
    """A key file or JWK cannot be used; the message is for the operator."""


@dataclass(frozen=True, slots=True)
class VerificationKey:
    """A key ready for signature checks, with the only algorithms it may verify."""

    kid: str | None
    algorithms: frozenset[str]
    key: Any = field(repr=False)  # an HMAC secret must never reach a log or a traceback
    source: str = ""


@dataclass(frozen=True, slots=True)
class SkippedKey:
    """A JWK that was left out of a key set, and why (for logs and counters)."""

    kid: str | None
    reason: str


@dataclass(frozen=True, slots=True)
class KeySet:
    """An issuer's usable keys; ``ambiguous_kids`` name kids that must never verify anything."""

    keys: tuple[VerificationKey, ...] = ()
    ambiguous_kids: frozenset[str] = frozenset()

    def with_kid(self, kid: str | None) -> tuple[VerificationKey, ...]:
        """The keys a token naming ``kid`` may be checked against.

        A token without a kid may use any key; a token with one may use the keys with that kid and
        the keys that have none (PEM files, HMAC secrets), as Envoy's jwt_authn does.
        """
        if kid is None:
            return self.keys
        if kid in self.ambiguous_kids:
            return ()
        return tuple(key for key in self.keys if key.kid == kid or key.kid is None)

    @property
    def kids(self) -> tuple[str, ...]:
        """The key ids present, for events and readiness reports."""
        return tuple(sorted({key.kid for key in self.keys if key.kid is not None}))


def key_algorithms(key: object) -> frozenset[str]:
    """The algorithms a public key's type can verify."""
    if isinstance(key, rsa.RSAPublicKey):
        return RSA_ALGORITHMS
    if isinstance(key, ec.EllipticCurvePublicKey):
        algorithm = _EC_CURVE_ALGORITHM.get(key.curve.name)
        return frozenset({algorithm}) if algorithm else frozenset()
    if isinstance(key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
        return frozenset({"EdDSA"})
    return frozenset()


def public_jwk(key: PublicKey) -> dict[str, str]:
    """The public JWK members of ``key`` (no ``kid``/``alg``)."""
    if isinstance(key, rsa.RSAPublicKey):
        return dict(RSAAlgorithm.to_jwk(key, as_dict=True))
    if isinstance(key, ec.EllipticCurvePublicKey):
        return dict(ECAlgorithm.to_jwk(key, as_dict=True))
    return dict(OKPAlgorithm.to_jwk(key, as_dict=True))


def thumbprint(key: PublicKey) -> str:
    """The RFC 7638 JWK thumbprint (SHA-256, base64url): the kid `gateway keys generate` gives."""
    jwk = public_jwk(key)
    required = {
        "RSA": ("e", "kty", "n"),
        "EC": ("crv", "kty", "x", "y"),
        "OKP": ("crv", "kty", "x"),
    }
    members = {name: jwk[name] for name in required[jwk["kty"]]}
    canonical = json.dumps(members, separators=(",", ":"), sort_keys=True).encode()
    digest = hashlib.sha256(canonical).digest()
    return jwt.utils.base64url_encode(digest).decode()


def keys_from_pem(data: bytes, allowed: frozenset[str], source: str) -> VerificationKey:
    """Load a PEM public key or certificate, bound to its family's allowed algorithms."""
    if b"PRIVATE KEY" in data:
        raise KeyLoadError(f"{source} holds a private key; configure the public key only")
    try:
        if b"BEGIN CERTIFICATE" in data:
            public_key: object = x509.load_pem_x509_certificate(data).public_key()
        else:
            public_key = load_pem_public_key(data)
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise KeyLoadError(f"{source} is not a PEM public key or certificate ({exc})") from None
    if _is_weak(public_key):
        raise KeyLoadError(f"{source} is an RSA key shorter than {_RSA_MIN_BITS} bits")
    algorithms = key_algorithms(public_key) & allowed
    if not algorithms:
        raise KeyLoadError(
            f"{source} is a {_describe(public_key)}, which none of the issuer's algorithms "
            f"({', '.join(sorted(allowed))}) can use"
        )
    # No kid: a PEM key is tried for any token, whatever kid its issuer stamps on it.
    return VerificationKey(kid=None, algorithms=algorithms, key=public_key, source=source)


def keys_from_jwks(
    document: object, allowed: frozenset[str], source: str
) -> tuple[KeySet, tuple[SkippedKey, ...]]:
    """Parse a JWKS document; unusable keys are skipped with a reason, never fatal for the rest.

    A ``kid`` shared by two different keys is ambiguous and fails closed: no token naming it
    verifies.
    """
    if not isinstance(document, Mapping) or not isinstance(document.get("keys"), list):
        raise KeyLoadError(f"{source} is not a JWKS document (an object with a 'keys' list)")
    loaded: list[VerificationKey] = []
    skipped: list[SkippedKey] = []
    for entry in document["keys"]:
        try:
            result = _key_from_jwk(entry, allowed, source)
        except Exception:  # whatever one entry holds, the others still load
            result = SkippedKey(_kid_of(entry), "unparseable")
        if isinstance(result, SkippedKey):
            skipped.append(result)
        else:
            loaded.append(result)
    key_set, ambiguous = build_key_set(loaded)
    return key_set, (*skipped, *ambiguous)


def hmac_key(secret: str, allowed: frozenset[str], source: str) -> VerificationKey:
    """An HMAC secret bound to the issuer's HS* algorithms."""
    return VerificationKey(
        kid=None, algorithms=allowed & HMAC_ALGORITHMS, key=secret.encode(), source=source
    )


def _key_from_jwk(
    entry: object, allowed: frozenset[str], source: str
) -> VerificationKey | SkippedKey:
    if not isinstance(entry, Mapping):
        return SkippedKey(None, "not_an_object")
    kid = entry.get("kid")
    if kid is not None and not isinstance(kid, str):
        return SkippedKey(None, "bad_kid")
    if entry.get("use", "sig") != "sig":
        return SkippedKey(kid, "not_a_signing_key")
    kty = entry.get("kty")
    if kty == "oct":
        return SkippedKey(kid, "symmetric_key")
    if not isinstance(kty, str) or kty not in {"RSA", "EC", "OKP"}:
        return SkippedKey(kid, "unsupported_kty")
    declared = entry.get("alg")
    if declared is not None and (not isinstance(declared, str) or declared not in allowed):
        return SkippedKey(kid, "algorithm_not_allowed")
    # The key is built from its own members; the binding to `alg` is applied below, by us.
    members = {name: value for name, value in entry.items() if name != "alg"}
    try:
        public_key = jwt.PyJWK(members).key
    except Exception:  # PyJWT and cryptography raise many types for bad members
        return SkippedKey(kid, "unparseable")
    if _is_private(public_key):
        return SkippedKey(kid, "private_key")
    if _is_weak(public_key):
        return SkippedKey(kid, "weak_key")
    algorithms = key_algorithms(public_key) & allowed
    if declared is not None:
        algorithms &= {declared}
    if not algorithms:
        return SkippedKey(kid, "algorithm_not_allowed")
    return VerificationKey(kid=kid, algorithms=algorithms, key=public_key, source=source)


def _kid_of(entry: object) -> str | None:
    kid = entry.get("kid") if isinstance(entry, Mapping) else None
    return kid if isinstance(kid, str) else None


def build_key_set(loaded: Sequence[VerificationKey]) -> tuple[KeySet, tuple[SkippedKey, ...]]:
    """A key set from loaded keys; a kid shared by two different keys is ambiguous and fails
    closed (no token naming it verifies)."""
    by_kid: dict[str, list[VerificationKey]] = {}
    for key in loaded:
        if key.kid is not None:
            by_kid.setdefault(key.kid, []).append(key)
    ambiguous = {
        kid
        for kid, keys in by_kid.items()
        if len({json.dumps(public_jwk(k.key), sort_keys=True) for k in keys}) > 1
    }
    kept = tuple(key for key in loaded if key.kid not in ambiguous)
    skipped = tuple(SkippedKey(kid, "duplicate_kid") for kid in sorted(ambiguous))
    return KeySet(keys=kept, ambiguous_kids=frozenset(ambiguous)), skipped


def _is_weak(key: object) -> bool:
    # RFC 7518 section 3.3: RSA keys of 2048 bits or larger MUST be used.
    return isinstance(key, rsa.RSAPublicKey) and key.key_size < _RSA_MIN_BITS


def _is_private(key: object) -> bool:
    private_types = (
        rsa.RSAPrivateKey,
        ec.EllipticCurvePrivateKey,
        ed25519.Ed25519PrivateKey,
        ed448.Ed448PrivateKey,
    )
    return isinstance(key, private_types)


def _describe(key: object) -> str:
    if isinstance(key, ec.EllipticCurvePublicKey):
        return f"EC key on {key.curve.name}"
    return type(key).__name__.removeprefix("_").replace("PublicKey", " public key")
