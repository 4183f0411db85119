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
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from jwt.algorithms import get_default_algorithms

from gateway.core.claim_headers import MappedClaims, header_safe
from gateway.core.errors import InvalidToken, TokenCheck
from gateway.core.keys import KeySet
from gateway.core.models import IssuerConfig, ScopeFormat, TokensConfig

__all__ = ["Claims", "UnverifiedToken", "numeric_date", "parse", "payload_of", "verify"]

_SEGMENT = re.compile(r"[A-Za-z0-9_-]*")
_ALGORITHMS = get_default_algorithms()
# RFC 6749 section 3.3: a scope token is NQCHAR; anything else grants nothing.
_SCOPE_TOKEN = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]+")
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


_NO_PAYLOAD: Mapping[str, Any] = MappingProxyType({})


def _no_payload() -> Mapping[str, Any]:
    return _NO_PAYLOAD


@dataclass(frozen=True, slots=True)
class Claims:
    """What a verified token says about its bearer: what the decision and the forwarded identity
    headers read, and nothing else is needed to decide again.

    ``payload`` is the whole verified payload, for offline display only: `without_payload` drops
    it (the verified-token cache keeps claims without it), and it takes no part in equality, so
    a cached decision equals a fresh one.
    """

    issuer: IssuerConfig
    subject: str | None
    client_id: str | None
    scopes: frozenset[str]
    expires_at: float
    payload: Mapping[str, Any] = field(default_factory=_no_payload, compare=False, repr=False)
    starts_at: float = float("-inf")  # max(nbf, iat), without leeway; -inf when neither is set
    # The claims `claims_to_headers` maps, in header form (see gateway.core.claim_headers).
    mapped: MappedClaims = ()

    def without_payload(self) -> Claims:
        """The same claims without the payload (what a cache keeps)."""
        return Claims(
            self.issuer, self.subject, self.client_id, self.scopes, self.expires_at,
            starts_at=self.starts_at, mapped=self.mapped,
        )  # fmt: skip


def parse(token: str) -> UnverifiedToken:
    """Split and decode a compact JWS, refusing anything not strictly well-formed."""
    parts = token.split(".")
    if len(parts) != 3 or not all(_SEGMENT.fullmatch(part) for part in parts):
        raise InvalidToken("malformed", TokenCheck.FORMAT)
    header = _json_object(parts[0])
    payload = _json_object(parts[1])
    signature = _b64url(parts[2])
    return UnverifiedToken(header, payload, f"{parts[0]}.{parts[1]}".encode(), signature)


def payload_of(token: str) -> Mapping[str, Any]:
    """The decoded payload of a token `parse` has accepted before (a cached token's).

    `parse` refused these exact bytes already if they held duplicate members, ``NaN`` or a
    non-canonical segment, so they are decoded without its Python-level hooks (a new decoder per
    call): a route that binds claims decodes the payload on every request."""
    segment = token.split(".")[1]
    decoded: Mapping[str, Any] = json.loads(
        base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    )
    return decoded


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
        raise InvalidToken("alg_not_allowed", TokenCheck.ALG)
    if "crit" in token.header or "b64" in token.header:
        raise InvalidToken("unsupported_header", TokenCheck.HEADER)
    if issuer.require_typ is not None and not _typ_matches(
        token.header.get("typ"), issuer.require_typ
    ):
        raise InvalidToken("bad_type", TokenCheck.TYP)
    _verify_signature(token, algorithm, keys)
    return _validate_claims(token.payload, issuer, tokens, now)


def _verify_signature(token: UnverifiedToken, algorithm: str, keys: KeySet) -> None:
    kid = token.kid
    if kid is not None and not isinstance(kid, str):
        raise InvalidToken("malformed", TokenCheck.SIGNATURE)
    named = keys.with_kid(kid)
    if not named:
        raise InvalidToken("unknown_kid", TokenCheck.SIGNATURE)
    usable = [key for key in named if algorithm in key.algorithms]
    if not usable:
        raise InvalidToken("alg_not_allowed", TokenCheck.SIGNATURE)
    verifier = _ALGORITHMS[algorithm]
    for key in usable:
        try:
            if verifier.verify(token.signing_input, key.key, token.signature):
                return
        except Exception:  # noqa: S112 - a forged token must be a 401, whatever the library raises
            continue
    raise InvalidToken("bad_signature", TokenCheck.SIGNATURE)


def _validate_claims(
    payload: Mapping[str, Any], issuer: IssuerConfig, tokens: TokensConfig, now: float
) -> Claims:
    leeway = tokens.leeway
    if "exp" not in payload:
        raise InvalidToken("missing_claim", TokenCheck.EXP)
    expires_at = _date_or_refuse(payload["exp"], TokenCheck.EXP)
    if now > expires_at + leeway:
        raise InvalidToken("expired", TokenCheck.EXP)
    not_before = _date_or_refuse(payload["nbf"], TokenCheck.NBF) if "nbf" in payload else None
    if not_before is not None and now + leeway < not_before:
        raise InvalidToken("not_yet_valid", TokenCheck.NBF)
    issued_at = _date_or_refuse(payload["iat"], TokenCheck.IAT) if "iat" in payload else None
    if issued_at is not None and issued_at > now + leeway:
        raise InvalidToken("not_yet_valid", TokenCheck.IAT)
    if tokens.max_lifetime is not None:
        start = issued_at if issued_at is not None else now
        if expires_at - start > tokens.max_lifetime + leeway:
            raise InvalidToken("lifetime_too_long", TokenCheck.LIFETIME)
    if issuer.audiences and not _audience_matches(payload.get("aud"), issuer.audiences):
        raise InvalidToken("bad_audience", TokenCheck.AUD)
    return Claims(
        issuer=issuer,
        subject=_header_safe_string(payload, "sub"),
        client_id=_header_safe_string(payload, "client_id") or _header_safe_string(payload, "azp"),
        scopes=_scopes(payload, issuer),
        expires_at=expires_at,
        payload=payload,
        starts_at=max(
            (start for start in (not_before, issued_at) if start is not None),
            default=float("-inf"),
        ),
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


def _date_or_refuse(value: object, check: TokenCheck) -> float:
    seconds = numeric_date(value)
    if seconds is None:
        raise InvalidToken("invalid_claim", check)
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
    # An identity claim copied into a header is printable ASCII with no space at either end:
    # what every HTTP stack reads back unchanged. Controls would be header injection, non-ASCII
    # is read as Latin-1 by WSGI servers (another identity), lone surrogates vanish when
    # written, and edge spaces are trimmed by parsers. Such a token is refused, never altered.
    if not isinstance(value, str) or not header_safe(value):
        raise InvalidToken("invalid_claim", TokenCheck.IDENTITY)
    return value


def _scopes(payload: Mapping[str, Any], issuer: IssuerConfig) -> frozenset[str]:
    """The scopes of the issuer's one scope claim, in the issuer's format. No other claim
    grants anything: an IdP that lets users or clients set a custom claim must not thereby let
    them set scopes. A claim in the other format grants nothing."""
    value = payload.get(issuer.scope_claim)
    if issuer.scope_format is ScopeFormat.STRING and isinstance(value, str):
        granted: list[str] = value.split(" ")
    elif issuer.scope_format is ScopeFormat.LIST and isinstance(value, list):
        granted = [item for item in value if isinstance(item, str)]
    else:
        return frozenset()
    # Tabs, newlines and non-ASCII are not scope characters: such a scope grants nothing and
    # never reaches X-Auth-Scopes.
    return frozenset(item for item in granted if _SCOPE_TOKEN.fullmatch(item))


def _b64url(segment: str) -> bytes:
    try:
        decoded = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    except (binascii.Error, ValueError):
        raise InvalidToken("malformed", TokenCheck.FORMAT) from None
    # One token, one spelling: a last character whose unused low bits are set decodes to the
    # same bytes as the canonical one, and would be a second string (a second cache and
    # revocation-list key) for the same signed token.
    if base64.urlsafe_b64encode(decoded).rstrip(b"=") != segment.encode():
        raise InvalidToken("malformed", TokenCheck.FORMAT)
    return decoded


def _json_object(segment: str) -> Mapping[str, Any]:
    try:
        value = json.loads(
            _b64url(segment),
            object_pairs_hook=_no_duplicate_keys,
            parse_constant=_no_constants,
        )
    except (ValueError, RecursionError):
        raise InvalidToken("malformed", TokenCheck.FORMAT) from None
    if not isinstance(value, dict):
        raise InvalidToken("malformed", TokenCheck.FORMAT)
    return value


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        # RFC 7515 section 5.2: reject rather than guess which duplicate the signer meant.
        raise ValueError("duplicate member")
    return result


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")
