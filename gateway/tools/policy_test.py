"""`gateway test`: run a policy-test file's cases through the real decision code, offline.

The issuers' private keys are never at hand, so for the run every issuer is given a throwaway
key (made in memory, per issuer and key family) next to its configured keys, and the tokens the
cases describe are signed with it; remote issuers are checked against the throwaway key only.
Everything else (routes, methods, issuer choice, alg allowlists, times, audiences, types,
scopes, report mode, body limits) is the configuration's, decided by `Decider.decide`
(through `gateway.tools.offline`); the client address (`trusted_proxies`), the headers the
upstream receives and the challenge are the ones the door would use, built by the same code.
"""

from __future__ import annotations

import base64
import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import jwt
from multidict import CIMultiDict

from gateway.config import Config
from gateway.config.units import parse_duration
from gateway.core.cors import response_cors
from gateway.core.keys import KeySet
from gateway.core.models import IssuerConfig
from gateway.core.outcomes import Decision, Forward, Preflight, Refuse
from gateway.core.ratelimit import RateLimit
from gateway.core.urls import upstream_url
from gateway.core.websocket import BEARER_PROTOCOL_PREFIX, WEBSOCKET_VERSION
from gateway.tools import offline
from gateway.tools.explain import shown_target
from gateway.tools.policy_cases import Case, HeaderExpectation, PolicyFile
from gateway.tools.throwaway_keys import ThrowawayKeys

__all__ = ["CaseResult", "run_cases"]

_ALG_PREFERENCE = ("RS256", "ES256", "EdDSA", "PS256", "ES384", "ES512", "RS384", "RS512",
                   "PS384", "PS512", "HS256", "HS384", "HS512")  # fmt: skip
_DEFAULT_TTL = 300
# Upstream header values a failure never prints: they carry the token or a session.
_SECRET_HEADERS = frozenset({"authorization", "cookie", "proxy-authorization"})


@dataclass(frozen=True, slots=True)
class _Seen:
    """What the door would have made of a case's request beside the decision."""

    client_ip: str
    upstream_headers: CIMultiDict[str] | None  # None: not forwarded, or not asked about


@dataclass(frozen=True, slots=True)
class CaseResult:
    """How one case fared: ``failures`` is empty when it passed."""

    case: Case
    decision: Decision | None
    failures: tuple[str, ...]

    @property
    def passed(self) -> bool:
        """Whether every expectation held."""
        return not self.failures

    def line(self, file: str) -> str:
        """One line for the report (never the token)."""
        verdict = "PASS" if self.passed else "FAIL"
        target = f"{self.case.method} {shown_target(self.case.path)}"
        head = f"{verdict} {file}:{self.case.line}: {self.case.name} ({target})"
        if self.passed:
            return f"{head}: {_summary(self.decision)}"
        return f"{head}: {'; '.join(self.failures)}"


async def run_cases(config: Config, cases: PolicyFile, *, now: float) -> list[CaseResult]:
    """Decide every case with the real decision code under ``config``."""
    stand_ins = {issuer.name: _stand_in(issuer) for issuer in config.issuers}
    issuers = [issuer for issuer, _ in stand_ins.values()]
    decider = offline.decider(config, clock=lambda: now, issuers=issuers)
    results = []
    for case in cases.cases:
        in_subprotocol = case.websocket == "subprotocol"
        # The bearer subprotocol carries the case's token; an Authorization header the case
        # gives is sent as well (as is: two places for one token is itself a case).
        minted_for = dataclasses.replace(case, headers=()) if in_subprotocol else case
        try:
            authorization = _authorization(minted_for, cases, config, stand_ins, now)
        except ValueError as exc:
            results.append(CaseResult(case, None, (str(exc),)))
            continue
        headers = case.headers
        if case.websocket is not None:
            headers, authorization = _websocket(case, headers, authorization)
        sent = _with_authorization(headers, authorization)
        address = offline.client_address(config, case.peer, sent)
        facts = offline.request_facts(case.method, case.path, sent, peer=address)
        decision = await decider.decide(facts)
        forwarded = None
        if isinstance(decision, Forward) and case.expect.upstream_headers:
            forwarded = offline.forwarded_headers(config, decision, sent, peer=case.peer)
        seen = _Seen(address, forwarded)
        results.append(CaseResult(case, decision, _failures(case, decision, seen)))
    return results


def _with_authorization(
    headers: tuple[tuple[str, str], ...], authorization: tuple[str, ...]
) -> tuple[tuple[str, str], ...]:
    """The request's headers as sent: a minted or literal token goes in Authorization (a case
    that writes its own Authorization header sends exactly that)."""
    if any(name.lower() == "authorization" for name, _ in headers):
        return headers
    return (*headers, *(("Authorization", value) for value in authorization))


def _websocket(
    case: Case, headers: tuple[tuple[str, str], ...], authorization: tuple[str, ...]
) -> tuple[tuple[tuple[str, str], ...], tuple[str, ...]]:
    """A WebSocket handshake's headers (those the case sets win) and Authorization values;
    ``subprotocol`` moves the minted token into the bearer subprotocol entry (the case's own
    Authorization header, if any, stays)."""
    given = {name.lower() for name, _ in headers}
    added = [(name, value) for name, value in _HANDSHAKE if name.lower() not in given]
    if case.websocket == "subprotocol" and authorization:
        token = authorization[0].partition(" ")[2]
        encoded = base64.urlsafe_b64encode(token.encode()).rstrip(b"=").decode()
        added.append(("Sec-WebSocket-Protocol", BEARER_PROTOCOL_PREFIX + encoded))
        authorization = tuple(v for n, v in headers if n.lower() == "authorization")
    return (*headers, *added), authorization


_HANDSHAKE = (
    ("Upgrade", "websocket"),
    ("Connection", "Upgrade"),
    ("Sec-WebSocket-Version", WEBSOCKET_VERSION),
    ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
)


def _stand_in(issuer: IssuerConfig) -> tuple[IssuerConfig, ThrowawayKeys]:
    throwaway = ThrowawayKeys.generate(issuer.algorithms)
    keys = KeySet(
        keys=(*issuer.keys.keys, *throwaway.keys.keys),
        ambiguous_kids=issuer.keys.ambiguous_kids,
    )
    local = dataclasses.replace(issuer, keys=keys, jwks_uri=None, discovery=False)
    return local, throwaway


def _authorization(
    case: Case,
    cases: PolicyFile,
    config: Config,
    stand_ins: Mapping[str, tuple[IssuerConfig, ThrowawayKeys]],
    now: float,
) -> tuple[str, ...]:
    given = tuple(value for name, value in case.headers if name.lower() == "authorization")
    if given:
        return given
    if case.token is not None:
        return (f"Bearer {case.token}",)
    if case.claims is None:
        return ()
    name = case.issuer or cases.issuer or (config.issuers[0].name if config.issuers else None)
    if name is None or name not in stand_ins:
        raise ValueError(f"issuer '{name}' is not configured")
    issuer, throwaway = stand_ins[name]
    claims = _claims(issuer, {**cases.claims, **case.claims}, now)
    alg = next((a for a in _ALG_PREFERENCE if a in throwaway.signers), None)
    if alg is None:
        raise ValueError(f"issuer '{name}' allows no algorithm tokens can be signed with")
    signer = throwaway.signers[alg]
    headers = {"typ": issuer.require_typ} if issuer.require_typ else None
    return (f"Bearer {jwt.encode(claims, signer.key, algorithm=alg, headers=headers)}",)


def _claims(issuer: IssuerConfig, given: Mapping[str, Any], now: float) -> dict[str, Any]:
    claims: dict[str, Any] = {
        "iss": issuer.issuer,
        "sub": "policy-test",
        "iat": int(now),
        "exp": int(now) + _DEFAULT_TTL,
    }
    if issuer.audiences:
        claims["aud"] = issuer.audiences[0]
    for name, value in given.items():
        if value is None:
            claims.pop(name, None)
        elif name in {"exp", "nbf", "iat"} and isinstance(value, str):
            claims[name] = _relative_time(name, value, now)
        else:
            claims[name] = value
    return claims


def _relative_time(name: str, value: str, now: float) -> int:
    text = value.strip()
    if text == "now":
        return int(now)
    sign = {"+": 1, "-": -1}.get(text[:1])
    if sign is None:
        raise ValueError(f"claim {name}: write a number, 'now', '+15m' or '-1h', not {value!r}")
    return int(now + sign * parse_duration(text[1:]))


def _failures(case: Case, decision: Decision, seen: _Seen) -> tuple[str, ...]:
    expect = case.expect
    failures = []
    if decision.status != expect.status:
        failures.append(f"expected status {expect.status}, got {_summary(decision)}")
    if expect.check_reason and decision.reason != expect.reason:
        failures.append(f"expected reason {expect.reason}, got {decision.reason}")
    if expect.result is not None and decision.result is not expect.result:
        failures.append(f"expected result {expect.result.value}, got {decision.result.value}")
    upstream = decision.upstream.name if isinstance(decision, Forward) else None
    if expect.upstream is not None and upstream != expect.upstream:
        failures.append(f"expected upstream {expect.upstream}, got {upstream}")
    if expect.upstream_path is not None:
        path = _upstream_path(decision)
        if path != expect.upstream_path:
            got = shown_target(path) if path is not None else None
            failures.append(
                f"expected upstream_path {shown_target(expect.upstream_path)}, got {got}"
            )
    if expect.check_rate_limit:
        failures.extend(_limit_failures(expect.rate_limit, decision))
    if expect.cors is not None and _readable(case, decision) != expect.cors:
        got = "none" if expect.cors else "CORS fields"
        failures.append(f"expected cors {str(expect.cors).lower()}, got {got}")
    if expect.client_ip is not None and seen.client_ip != expect.client_ip:
        failures.append(f"expected client_ip {expect.client_ip}, got {seen.client_ip}")
    if expect.upstream_headers:
        if seen.upstream_headers is None:
            failures.append("expected upstream_headers, but nothing is forwarded")
        else:
            failures.extend(_header_failures(expect.upstream_headers, seen.upstream_headers))
    if expect.check_challenge:
        got = _challenge(decision)
        if got != expect.challenge:
            failures.append(f"expected challenge {_shown(expect.challenge)}, got {_shown(got)}")
    return tuple(failures)


def _header_failures(
    expected: tuple[tuple[str, HeaderExpectation], ...], received: CIMultiDict[str]
) -> list[str]:
    """Each expected upstream header that is not as expected (repeated headers are compared
    joined with ", ", as HTTP folds them); values of secret-bearing headers are never shown."""
    failures = []
    for name, want in expected:
        values = received.getall(name, [])
        got = ", ".join(values) if values else None
        if (want is True and got is not None) or want == got:
            continue
        secret = name.lower() in _SECRET_HEADERS
        if want is True:
            wanted = "present"
        elif isinstance(want, str):
            wanted = "with the value written" if secret else _shown(want)
        else:
            wanted = "absent"
        shown = "present" if secret and got is not None else _shown(got)
        failures.append(f"expected upstream header {name} {wanted}, got {shown}")
    return failures


def _challenge(decision: Decision) -> str | None:
    """The answer's WWW-Authenticate value (a forwarded request's answer is the upstream's)."""
    refusal = decision.refusal if isinstance(decision, Refuse | Preflight) else None
    return refusal.headers.get("WWW-Authenticate") if refusal is not None else None


def _shown(value: str | None) -> str:
    return "absent" if value is None else repr(value)


def _readable(case: Case, decision: Decision) -> bool:
    """Whether the answer carries CORS fields for the case's Origin (a page there may read
    it), as the door would set them; a preflight: whether it is allowed."""
    if isinstance(decision, Preflight):
        return decision.refusal is None
    route = decision.route
    origin = next((value for name, value in case.headers if name.lower() == "origin"), None)
    answer = response_cors(route.cors if route is not None else None, origin)
    return answer is not None and bool(answer.fields)


def _limit_failures(expected: RateLimit | None, decision: Decision) -> list[str]:
    """The route's limit against the expected one (the numbers, key and on_backend_error)."""
    got = decision.route.rate_limit if decision.route is not None else None
    same = (expected is None and got is None) or (
        expected is not None and got is not None
        and (expected.fingerprint, expected.on_backend_error, expected.name)
        == (got.fingerprint, got.on_backend_error, got.name)
    )  # fmt: skip
    if same:
        return []
    return [f"expected rate_limit {expected or 'none'}, got {got or 'none'}"]


def _upstream_path(decision: Decision) -> str | None:
    if not isinstance(decision, Forward):
        return None
    return upstream_url(decision.upstream, decision.route, decision.target).path_qs


def _summary(decision: Decision | None) -> str:
    if decision is None:
        return "no decision"
    reason = f", {decision.reason}" if decision.reason else ""
    if isinstance(decision, Forward):
        target = decision.upstream.name
        return f"{decision.status} forward to {target} ({decision.result.value}{reason})"
    if isinstance(decision, Preflight):
        return f"{decision.status} CORS preflight ({decision.result.value}{reason})"
    return f"{decision.status} ({decision.result.value}{reason})"
