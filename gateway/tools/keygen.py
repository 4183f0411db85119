"""Key generation and token minting for local development, tests and the demo.

Every new key the tools make comes from `new_private_key` or `new_hmac_secret`: key files for
`gateway keys generate`, the demo and the benchmark, and the in-memory keys of
`gateway.tools.throwaway_keys`.
"""

from __future__ import annotations

import json
import secrets
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from gateway.core.keys import EC_CURVES, HMAC_MIN_BYTES, RSA_ALGORITHMS, public_jwk, thumbprint

__all__ = [
    "GENERATED_ALGORITHMS",
    "GeneratedKey",
    "SigningKey",
    "generate",
    "load_signing_key",
    "mint",
    "new_hmac_secret",
    "new_private_key",
    "write",
]

GENERATED_ALGORITHMS = ("RS256", "ES256", "EdDSA", "HS256")
_KEY_FILE_SUFFIXES = {".pem", ".key", ".json", ".secret", ".jwk", ".jwks"}
PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey
_EC_CURVE_ALGORITHM = {curve.name: algorithm for algorithm, curve in EC_CURVES.items()}


@dataclass(frozen=True, slots=True)
class SigningKey:
    """A key that signs tokens: a private key or an HMAC secret, with its algorithm and kid."""

    key: Any
    algorithm: str
    kid: str | None


@dataclass(frozen=True, slots=True)
class GeneratedKey:
    """Files for one new key: name -> contents."""

    algorithm: str
    files: Mapping[str, bytes]


def generate(algorithm: str) -> GeneratedKey:
    """A new key pair (private PEM, public PEM, JWKS), or a new HMAC secret for HS256."""
    if algorithm not in GENERATED_ALGORITHMS:
        raise ValueError(
            f"cannot generate keys for {algorithm}; choose one of {', '.join(GENERATED_ALGORITHMS)}"
        )
    if algorithm == "HS256":
        return GeneratedKey(algorithm, {"hmac.secret": new_hmac_secret().encode() + b"\n"})
    private = new_private_key(algorithm)
    public = private.public_key()
    jwk = {**public_jwk(public), "kid": thumbprint(public), "alg": algorithm, "use": "sig"}
    private_pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public_pem = public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return GeneratedKey(
        algorithm,
        {
            "private.pem": private_pem,
            "public.pem": public_pem,
            "jwks.json": (json.dumps({"keys": [jwk]}, indent=2) + "\n").encode(),
        },
    )


def write(generated: GeneratedKey, directory: Path) -> list[Path]:
    """Write the files, private ones readable by the owner only; refuse to overwrite any (and
    then write none: a new private key must never sit next to an old, unrelated JWKS)."""
    targets = {directory / name: data for name, data in generated.files.items()}
    existing = [str(path) for path in targets if path.exists()]
    if existing:
        raise FileExistsError(f"{', '.join(existing)} exists; choose another --out directory")
    directory.mkdir(parents=True, exist_ok=True)
    for path, data in targets.items():
        secret = path.name in {"private.pem", "hmac.secret"}
        path.touch(mode=0o600 if secret else 0o644)
        path.write_bytes(data)
    return list(targets)


def load_signing_key(value: str, algorithm: str | None = None) -> SigningKey:
    """A private-key PEM file, a file holding an HMAC secret, or an HMAC secret given as text."""
    path = Path(value)
    if path.is_file():
        return _key_from_file(path, algorithm)
    if path.suffix in _KEY_FILE_SUFFIXES or "/" in value:
        raise ValueError(f"{value}: no such key file")
    return _hmac(value, algorithm or "HS256")


def _key_from_file(path: Path, algorithm: str | None) -> SigningKey:
    data = path.read_bytes()
    if b"PUBLIC KEY" in data or b"CERTIFICATE" in data or data.lstrip().startswith(b"{"):
        raise ValueError(f"{path} holds public key material; tokens are signed with a private key")
    if b"PRIVATE KEY" not in data:
        return _hmac(data.decode().strip(), algorithm or "HS256")
    private = serialization.load_pem_private_key(data, password=None)
    if not isinstance(
        private, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey
    ):
        raise ValueError(f"{path}: unsupported private key type")
    default_alg = _algorithm_for(private)
    return SigningKey(private, algorithm or default_alg, thumbprint(private.public_key()))


def _hmac(secret: str, algorithm: str) -> SigningKey:
    needed = HMAC_MIN_BYTES.get(algorithm, HMAC_MIN_BYTES["HS256"])
    if len(secret.encode()) < needed:
        raise ValueError(f"an {algorithm} secret needs at least {needed} bytes")
    return SigningKey(secret.encode(), algorithm, None)


def mint(
    key: SigningKey,
    *,
    issuer: str,
    audience: str | None,
    subject: str,
    scope: str,
    ttl: float,
    extra: Mapping[str, Any] | None = None,
    now: float | None = None,
) -> str:
    """A signed access token."""
    issued = int(time.time() if now is None else now)
    claims: dict[str, Any] = {
        "iss": issuer,
        "sub": subject,
        "iat": issued,
        "nbf": issued,
        "exp": issued + int(ttl),
        "jti": uuid.uuid4().hex,
    }
    if audience:
        claims["aud"] = audience
    if scope:
        claims["scope"] = scope
    claims.update(extra or {})
    headers = {"kid": key.kid} if key.kid else None
    return jwt.encode(claims, key.key, algorithm=key.algorithm, headers=headers)


def new_private_key(algorithm: str) -> PrivateKey:
    """A new private key of the family ``algorithm`` signs with: RSA (2048 bits) for RS* and
    PS*, the algorithm's own curve for ES*, Ed25519 for EdDSA."""
    if algorithm in RSA_ALGORITHMS:
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    if algorithm in EC_CURVES:
        return ec.generate_private_key(EC_CURVES[algorithm])
    if algorithm == "EdDSA":
        return ed25519.Ed25519PrivateKey.generate()
    raise ValueError(f"{algorithm} is not signed with a private key this tool can make")


def new_hmac_secret() -> str:
    """A new random HMAC secret, long enough for every HS* algorithm (HS512 needs the most)."""
    return secrets.token_urlsafe(HMAC_MIN_BYTES["HS512"])


def _algorithm_for(private: PrivateKey) -> str:
    if isinstance(private, rsa.RSAPrivateKey):
        return "RS256"
    if isinstance(private, ec.EllipticCurvePrivateKey):
        return _EC_CURVE_ALGORITHM[private.curve.name]
    return "EdDSA"
