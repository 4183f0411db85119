"""What each token check saw, for `gateway explain`: facts and the verdict of the real code.

The verdict is never recomputed here. The authenticator and `gateway.core.tokens.verify` stop at
the first check that fails, and the error names that check (`TokenCheck`, whose order is the
order they are taken in). This module marks the checks before it as passed, it as failed and the
rest as not reached, and prints the facts each one looked at (times, audiences, type, key id).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from gateway.core.errors import TokenCheck
from gateway.core.models import IssuerConfig, Route, TokensConfig
from gateway.core.tokens import UnverifiedToken, numeric_date

__all__ = ["Check", "CheckState", "describe_time", "token_checks"]


class CheckState(enum.Enum):
    """How a check fared in the real verification."""

    PASSED = "ok"
    FAILED = "FAILED"
    NOT_REACHED = "not reached"
    NOT_CHECKED = "NOT CHECKED"  # the signature of a remote issuer whose keys are not at hand


@dataclass(frozen=True, slots=True)
class Check:
    """One token check: its name, how it fared, and what it looked at."""

    name: str
    state: CheckState
    detail: str


def token_checks(
    token: UnverifiedToken,
    *,
    issuer: IssuerConfig | None,
    route: Route,
    tokens: TokensConfig,
    now: float,
    failed: TokenCheck | None,
    reason: str | None,
    signature_checked: bool,
) -> list[Check]:
    """Every check the token went through (or would have), given the check the real code says
    failed and its ``reason`` (both None when the token verified)."""
    details = _details(token, issuer, route, tokens, now)
    checks: list[Check] = []
    state = CheckState.PASSED
    for check in TokenCheck:
        name = check.value
        if name not in details:
            continue
        if check is failed:
            checks.append(Check(name, CheckState.FAILED, f"{details[name]} -> {reason}"))
            state = CheckState.NOT_REACHED
            continue
        shown = state
        if name == "signature" and not signature_checked and state is CheckState.PASSED:
            shown = CheckState.NOT_CHECKED
        checks.append(Check(name, shown, details[name]))
    return checks


def describe_time(value: object, now: float) -> str:
    """A NumericDate as UTC time and distance from now; anything else as what it is."""
    number = numeric_date(value)
    if number is None:
        return f"{value!r} (not a JSON number)"
    try:
        moment = datetime.fromtimestamp(number, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    except (OverflowError, ValueError, OSError):
        moment = f"{number:.0f}"
    delta = number - now
    if abs(delta) < 1:
        return f"{moment} (now)"
    return f"{moment} (in {_span(delta)})" if delta > 0 else f"{moment} ({_span(-delta)} ago)"


def _details(
    token: UnverifiedToken,
    issuer: IssuerConfig | None,
    route: Route,
    tokens: TokensConfig,
    now: float,
) -> dict[str, str]:
    payload = token.payload
    iss = token.issuer
    details = {"issuer": f"iss {iss!r} is not a configured issuer"}
    if issuer is None:
        return details
    restriction = (
        f"; route accepts {', '.join(sorted(route.issuers))}" if route.issuers is not None else ""
    )
    details["issuer"] = f"'{issuer.name}' ({issuer.issuer}), chosen by the token's iss{restriction}"
    details["keys"] = "remote key set" if issuer.remote else "configured keys"
    details["alg"] = f"{token.algorithm!r}; allowed: {', '.join(sorted(issuer.algorithms))}"
    details["header"] = (
        "no crit or b64 header"
        if not _has_unsupported(token.header)
        else ("crit or b64 header present")
    )
    if issuer.require_typ is not None:
        details["typ"] = f"{token.header.get('typ')!r}; required: {issuer.require_typ}"
    details["signature"] = f"kid {token.kid!r}" if token.kid is not None else "no kid"
    details["exp"] = (
        describe_time(payload["exp"], now) if "exp" in payload else "missing (exp is required)"
    )
    for name in ("nbf", "iat"):
        details[name] = describe_time(payload[name], now) if name in payload else "absent"
    details["exp"] += f"; leeway {_span(tokens.leeway)}"
    if tokens.max_lifetime is not None:
        details["lifetime"] = _lifetime(payload, tokens.max_lifetime, now)
    if issuer.audiences:
        details["aud"] = f"{payload.get('aud')!r}; accepted: {', '.join(issuer.audiences)}"
    details["identity"] = "sub, client_id, azp are strings without control characters"
    return details


def _lifetime(payload: Mapping[str, Any], max_lifetime: float, now: float) -> str:
    exp, iat = numeric_date(payload.get("exp")), numeric_date(payload.get("iat", now))
    if exp is None or iat is None:
        return f"max {_span(max_lifetime)}"
    return f"{_span(exp - iat)}; max {_span(max_lifetime)}"


def _has_unsupported(header: Mapping[str, Any]) -> bool:
    return "crit" in header or "b64" in header


def _span(seconds: float) -> str:
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds}s"
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count}{unit}")
    return " ".join(parts[:2])
