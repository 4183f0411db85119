"""Throwaway signing keys for the offline tools, made in memory and never written anywhere.

`gateway test` signs the tokens its cases describe with them, in place of the issuers' private
keys (which the tools never have); `gateway explain` re-signs a token of a remote issuer with one
when the issuer's key set is not at hand, so that every check except the signature runs in the
real code.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from jwt.algorithms import get_default_algorithms
from jwt.utils import base64url_encode

from gateway.core.keys import (
    EC_CURVES,
    HMAC_ALGORITHMS,
    RSA_ALGORITHMS,
    KeySet,
    VerificationKey,
    hmac_key,
)
from gateway.tools.keygen import SigningKey, new_hmac_secret, new_private_key

__all__ = ["ThrowawayKeys", "resign"]

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
        for usable in _by_key(algorithms):
            key: object
            if usable <= HMAC_ALGORITHMS:
                secret = new_hmac_secret()
                verifiers.append(hmac_key(secret, usable, _SOURCE))
                key = secret.encode()
            else:
                private = new_private_key(min(usable))  # every name in a group: the same family
                verifiers.append(VerificationKey(None, usable, private.public_key(), _SOURCE))
                key = private
            signers.update({alg: SigningKey(key, alg, None) for alg in usable})
        return cls(signers=signers, keys=KeySet(keys=tuple(verifiers)))


def _by_key(algorithms: frozenset[str]) -> list[frozenset[str]]:
    """The algorithms grouped by the key that will sign them: one RSA key for every RS*/PS*,
    one key per ECDSA curve, one Ed25519 key, one secret for every HS*; others are left out."""
    groups = [
        algorithms & RSA_ALGORITHMS,
        *(frozenset({alg}) for alg in sorted(algorithms & EC_CURVES.keys())),
        algorithms & {"EdDSA"},
        algorithms & HMAC_ALGORITHMS,
    ]
    return [group for group in groups if group]


def resign(token: str, signer: SigningKey) -> str:
    """The same header and payload segments, byte for byte, signed with ``signer``."""
    header, payload, _ = token.split(".")
    signing_input = f"{header}.{payload}".encode()
    algorithm = _ALGORITHMS[signer.algorithm]
    key = algorithm.prepare_key(signer.key)
    signature = algorithm.sign(signing_input, key)
    return f"{header}.{payload}.{base64url_encode(signature).decode()}"
