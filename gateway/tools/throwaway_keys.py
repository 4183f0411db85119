"""Throwaway signing keys for the offline tools, made in memory and never written anywhere.

`gateway test` signs the tokens its cases describe with them, in place of the issuers' private
keys (which the tools never have); `gateway explain` re-signs a token of a remote issuer with one
when the issuer's key set is not at hand, so that every check except the signature runs in the
real code.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import get_default_algorithms
from jwt.utils import base64url_encode

from gateway.core.keys import (
    HMAC_ALGORITHMS,
    HMAC_MIN_BYTES,
    RSA_ALGORITHMS,
    KeySet,
    VerificationKey,
    hmac_key,
)
from gateway.tools.keygen import SigningKey

__all__ = ["ThrowawayKeys", "resign"]

_EC_CURVES: Mapping[str, ec.EllipticCurve] = {
    "ES256": ec.SECP256R1(),
    "ES384": ec.SECP384R1(),
    "ES512": ec.SECP521R1(),
}
_ALGORITHMS = get_default_algorithms()
_SOURCE = "throwaway key (in memory)"


@dataclass(frozen=True, slots=True)
class ThrowawayKeys:
    """A signing key for each algorithm asked for, and the key set that verifies them."""

    signers: Mapping[str, SigningKey]
    keys: KeySet

    @classmethod
    def generate(cls, algorithms: frozenset[str]) -> ThrowawayKeys:
        """Fresh keys covering ``algorithms`` (one per key family, kid-less like a PEM key)."""
        signers: dict[str, SigningKey] = {}
        verifiers: list[VerificationKey] = []
        if algorithms & RSA_ALGORITHMS:
            private_rsa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            usable = algorithms & RSA_ALGORITHMS
            verifiers.append(VerificationKey(None, usable, private_rsa.public_key(), _SOURCE))
            signers.update({alg: SigningKey(private_rsa, alg, None) for alg in usable})
        for alg in sorted(algorithms & _EC_CURVES.keys()):
            private_ec = ec.generate_private_key(_EC_CURVES[alg])
            verifiers.append(
                VerificationKey(None, frozenset({alg}), private_ec.public_key(), _SOURCE)
            )
            signers[alg] = SigningKey(private_ec, alg, None)
        if "EdDSA" in algorithms:
            private_ed = ed25519.Ed25519PrivateKey.generate()
            verifiers.append(
                VerificationKey(None, frozenset({"EdDSA"}), private_ed.public_key(), _SOURCE)
            )
            signers["EdDSA"] = SigningKey(private_ed, "EdDSA", None)
        if algorithms & HMAC_ALGORITHMS:
            secret = secrets.token_urlsafe(HMAC_MIN_BYTES["HS512"])
            verifiers.append(hmac_key(secret, algorithms, _SOURCE))
            signers.update(
                {
                    alg: SigningKey(secret.encode(), alg, None)
                    for alg in algorithms & HMAC_ALGORITHMS
                }
            )
        return cls(signers=signers, keys=KeySet(keys=tuple(verifiers)))


def resign(token: str, signer: SigningKey) -> str:
    """The same header and payload segments, byte for byte, signed with ``signer``."""
    header, payload, _ = token.split(".")
    signing_input = f"{header}.{payload}".encode()
    algorithm = _ALGORITHMS[signer.algorithm]
    key = algorithm.prepare_key(signer.key)
    signature = algorithm.sign(signing_input, key)
    return f"{header}.{payload}.{base64url_encode(signature).decode()}"
