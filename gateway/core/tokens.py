"""Pure JWT checks: parse once, pick the issuer by exact ``iss``, verify, validate claims.

PyJWT supplies the signature algorithms; parsing and claim checks live here because PyJWT's own
`decode` accepts what this gateway must refuse (a missing ``exp`` unless told, a numeric string
``exp``, a key object of the wrong family raising `TypeError` instead of a `PyJWTError`). Every
refusal is an `InvalidToken` with a reason code; nothing here raises anything else.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from jwt.algorithms import get_default_algorithms

from gateway.core.errors import InvalidToken
from gateway.core.keys import KeySet
from gateway.core.models import IssuerConfig, TokensConfig

__all__ = ["Claims", "UnverifiedToken", "numeric_date", "parse", "verify"]

_SEGMENT = re.compile(r"[A-Za-z0-9_-]*")
_ALGORITHMS = get_default_algorithms()
# A header value we set from a claim must not carry CTLs: a CR/LF would be header injection.
# Nor a lone surrogate (JSON can spell one, "\ud800"): it has no UTF-8 form, so the value could
# not be forwarded exactly as the token holds it.
_CONTROL = re.compile(r"[\x00-\x1f\x7f\ud800-\udfff]")
_TYP_ACCESS_TOKEN = {"at+jwt", "application/at+jwt"}


@dataclass(frozen=True, slots=True)
class UnverifiedToken:
    """A compact JWS split and decoded, not yet trusted."""

    header: Mapping[str, Any]
    payload: Mapping[str, Any]
    signing_input: bytes
    signature: bytes

    @property
    def algorithm(self) -> object:
        """The ``alg`` header as sent (may be any JSON value)."""
        return self.header.get("alg")

    @property
    def kid(self) -> object:
        """The ``kid`` header as sent (may be any JSON value, or None)."""
        return self.header.get("kid")

    @property
    def issuer(self) -> object:
        """The ``iss`` claim as sent."""
        return self.payload.get("iss")


@dataclass(frozen=True, slots=True)
class Claims:
    """What a verified token says about its bearer."""

    issuer: IssuerConfig
    subject: str | None
    client_id: str | None
    scopes: frozenset[str]
    expires_at: float
    payload: Mapping[str, Any]


def parse(token: str) -> UnverifiedToken:
    """Split and decode a compact JWS, refusing anything not strictly well-formed."""
    parts = token.split(".")
    if len(parts) != 3 or not all(_SEGMENT.fullmatch(part) for part in parts):
        raise InvalidToken("malformed_token")
    header = _json_object(parts[0])
    payload = _json_object(parts[1])
    signature = _b64url(parts[2])
    return UnverifiedToken(header, payload, f"{parts[0]}.{parts[1]}".encode(), signature)


def verify(
    token: UnverifiedToken,
    issuer: IssuerConfig,
    keys: KeySet,
    tokens: TokensConfig,
    now: float,
) -> Claims:
    """Check the header, the signature against ``keys`` and every claim rule."""
    algorithm = token.algorithm
    if not isinstance(algorithm, str) or algorithm not in issuer.algorithms:
        raise InvalidToken("alg_not_allowed")
    if "crit" in token.header or "b64" in token.header:
        raise InvalidToken("unsupported_header")
    if issuer.require_typ is not None and not _typ_matches(
        token.header.get("typ"), issuer.require_typ
    ):
        raise InvalidToken("bad_type")
    _verify_signature(token, algorithm, keys)
    return _validate_claims(token.payload, issuer, tokens, now)


def _verify_signature(token: UnverifiedToken, algorithm: str, keys: KeySet) -> None:
    kid = token.kid
    if kid is not None and not isinstance(kid, str):
        raise InvalidToken("malformed_token")
    named = keys.with_kid(kid)
    if not named:
        raise InvalidToken("unknown_kid")
    usable = [key for key in named if algorithm in key.algorithms]
    if not usable:
        raise InvalidToken("alg_not_allowed")
    verifier = _ALGORITHMS[algorithm]
    for key in usable:
        try:
            if verifier.verify(token.signing_input, key.key, token.signature):
                return
        except Exception:  # noqa: S112 - a forged token must be a 401, whatever the library raises
            continue
    raise InvalidToken("bad_signature")


def _validate_claims(
    payload: Mapping[str, Any], issuer: IssuerConfig, tokens: TokensConfig, now: float
) -> Claims:
    leeway = tokens.leeway
    if "exp" not in payload:
        raise InvalidToken("missing_claim")
    expires_at = _date_or_refuse(payload["exp"])
    if now > expires_at + leeway:
        raise InvalidToken("expired")
    if "nbf" in payload and now + leeway < _date_or_refuse(payload["nbf"]):
        raise InvalidToken("not_yet_valid")
    issued_at = _date_or_refuse(payload["iat"]) if "iat" in payload else None
    if issued_at is not None and issued_at > now + leeway:
        raise InvalidToken("not_yet_valid")
    if tokens.max_lifetime is not None:
        start = issued_at if issued_at is not None else now
        if expires_at - start > tokens.max_lifetime + leeway:
            raise InvalidToken("lifetime_too_long")
    if issuer.audiences and not _audience_matches(payload.get("aud"), issuer.audiences):
        raise InvalidToken("bad_audience")
    return Claims(
        issuer=issuer,
        subject=_header_safe_string(payload, "sub"),
        client_id=_header_safe_string(payload, "client_id") or _header_safe_string(payload, "azp"),
        scopes=_scopes(payload),
        expires_at=expires_at,
        payload=payload,
    )


def numeric_date(value: object) -> float | None:
    """A claim's value as a NumericDate in seconds, or None when it is not one: a NumericDate is
    a finite JSON number, never a boolean, and an integer too large for a float is not one."""
    # RFC 7519 section 2: a NumericDate is a JSON number; PyJWT would also take "123" and true.
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        seconds = float(value)  # an integer too large for a float raises OverflowError
    except OverflowError:
        return None
    return seconds if math.isfinite(seconds) else None


def _date_or_refuse(value: object) -> float:
    seconds = numeric_date(value)
    if seconds is None:
        raise InvalidToken("invalid_claim")
    return seconds


def _audience_matches(aud: object, accepted: tuple[str, ...]) -> bool:
    if isinstance(aud, str):
        return aud in accepted
    if isinstance(aud, list) and all(isinstance(item, str) for item in aud):
        return any(item in accepted for item in aud)
    return False


def _typ_matches(typ: object, required: str) -> bool:
    if not isinstance(typ, str):
        return False
    typ = typ.lower()
    required = required.lower()
    if required in _TYP_ACCESS_TOKEN:
        return typ in _TYP_ACCESS_TOKEN
    return typ in {required, f"application/{required}"}


def _header_safe_string(payload: Mapping[str, Any], name: str) -> str | None:
    value = payload.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or _CONTROL.search(value):
        raise InvalidToken("invalid_claim")
    return value


def _scopes(payload: Mapping[str, Any]) -> frozenset[str]:
    """Scopes from ``scope`` (space-delimited), ``scp`` (string or list) and ``scopes`` (list)."""
    granted: set[str] = set()
    scope = payload.get("scope")
    if isinstance(scope, str):
        granted.update(scope.split(" "))
    scp = payload.get("scp")
    if isinstance(scp, str):
        granted.update(scp.split(" "))
    elif isinstance(scp, list):
        granted.update(item for item in scp if isinstance(item, str))
    listed = payload.get("scopes")
    if isinstance(listed, list):
        granted.update(item for item in listed if isinstance(item, str))
    granted.discard("")
    if any(_CONTROL.search(item) for item in granted):
        # Tabs and newlines are not scope separators; such a token grants nothing, and its
        # scopes must never reach X-Auth-Scopes.
        return frozenset(item for item in granted if not _CONTROL.search(item))
    return frozenset(granted)


def _b64url(segment: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    except (binascii.Error, ValueError):
        raise InvalidToken("malformed_token") from None


def _json_object(segment: str) -> Mapping[str, Any]:
    try:
        value = json.loads(
            _b64url(segment),
            object_pairs_hook=_no_duplicate_keys,
            parse_constant=_no_constants,
        )
    except (ValueError, RecursionError):
        raise InvalidToken("malformed_token") from None
    if not isinstance(value, dict):
        raise InvalidToken("malformed_token")
    return value


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        # RFC 7515 section 5.2: reject rather than guess which duplicate the signer meant.
        raise ValueError("duplicate member")
    return result


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")
