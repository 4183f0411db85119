"""Why a request was refused at the door.

Every refusal is an `AuthError` leaf that carries the HTTP status, the RFC 6750 error code (or
None for a bare challenge), the access log's ``auth.reason``, and a fixed ``description`` chosen
here: never claim or header data, so nothing the client sent is ever echoed back.

    AuthError
    ├── MissingCredentials      401, bare challenge (no token, or another scheme)
    ├── MalformedCredentials    400 invalid_request
    ├── InvalidToken            401 invalid_token (.reason says which check failed)
    ├── KeysUnavailable         503 temporarily_unavailable (issuer has no keys yet)
    └── InsufficientScope       403 insufficient_scope (.needed for the challenge)
"""

from __future__ import annotations

import enum

from gateway.core.models import ScopeRule

__all__ = [
    "AuthError",
    "InsufficientScope",
    "InvalidToken",
    "KeysUnavailable",
    "MalformedCredentials",
    "MissingCredentials",
    "TokenCheck",
]

_TOKEN_DESCRIPTIONS = {
    "malformed": "The access token is not a well-formed JWT",
    "unsupported_header": "The access token uses a JOSE header this gateway does not accept",
    "alg_not_allowed": "The access token's signing algorithm is not allowed",
    "unknown_issuer": "The access token's issuer is not trusted",
    "issuer_not_allowed": "The access token's issuer is not accepted on this route",
    "unknown_kid": "The access token names a signing key that is not known",
    "bad_signature": "The access token's signature is not valid",
    "expired": "The access token expired",
    "not_yet_valid": "The access token is not valid yet",
    "bad_audience": "The access token is not meant for this audience",
    "bad_type": "The access token has the wrong type",
    "lifetime_too_long": "The access token's lifetime is longer than this gateway allows",
    "missing_claim": "The access token lacks a required claim",
    "invalid_claim": "The access token has a claim of the wrong type or with forbidden characters",
}


class TokenCheck(enum.Enum):
    """The checks a token goes through, in the order they are taken: the authenticator's
    (format, issuer, keys), then `tokens.verify`'s. A failing check names itself on the error it
    raises, so `gateway explain` reports what the code did rather than re-deriving it."""

    FORMAT = "format"
    ISSUER = "issuer"
    KEYS = "keys"
    ALG = "alg"
    HEADER = "header"
    TYP = "typ"
    SIGNATURE = "signature"
    EXP = "exp"
    NBF = "nbf"
    IAT = "iat"
    LIFETIME = "lifetime"
    AUD = "aud"
    IDENTITY = "identity"


class AuthError(Exception):
    """Base of every refusal taken by the authenticator."""

    status: int = 401
    check: TokenCheck | None = None  # the token check that failed, for token refusals
    bearer_error: str | None = None
    reason: str = "denied"
    description: str = "Authentication failed"

    def __str__(self) -> str:
        return self.reason


class MissingCredentials(AuthError):
    """No bearer token was offered (no header, or a scheme other than Bearer)."""

    status = 401
    reason = "missing"
    description = "A bearer access token is required"


class MalformedCredentials(AuthError):
    """The bearer credentials are malformed: empty, repeated, or sent in the query."""

    status = 400
    bearer_error = "invalid_request"
    reason = "malformed"

    def __init__(self, description: str) -> None:
        super().__init__(description)
        self.description = description


class InvalidToken(AuthError):
    """The token failed a check; ``reason`` names which."""

    status = 401
    bearer_error = "invalid_token"

    def __init__(self, reason: str, check: TokenCheck) -> None:
        super().__init__(reason)
        if reason not in _TOKEN_DESCRIPTIONS:
            raise ValueError(f"unknown token refusal reason {reason!r}")
        self.reason = reason
        self.check = check
        self.description = _TOKEN_DESCRIPTIONS[reason]


class KeysUnavailable(AuthError):
    """The token's issuer has never had a usable key set; the token is not at fault."""

    status = 503
    bearer_error = None
    reason = "keys_unavailable"
    check = TokenCheck.KEYS
    description = "The keys needed to check this token are not available yet; retry later"

    def __init__(self, retry_after: int) -> None:
        super().__init__(retry_after)
        self.retry_after = retry_after


class InsufficientScope(AuthError):
    """The token is valid but lacks scopes the route needs."""

    status = 403
    bearer_error = "insufficient_scope"
    reason = "insufficient_scope"
    description = "The access token lacks the scope this request needs"

    def __init__(self, needed: ScopeRule, subject: str | None, client_id: str | None) -> None:
        super().__init__(needed)
        self.needed = needed
        self.subject = subject
        self.client_id = client_id
