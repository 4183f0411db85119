"""`gateway explain`: one request decided offline by the real decision code, step by step.

The decision is `Decider.decide`'s, the one the running gateway takes; this module only gathers
the facts each step looked at and prints them. It never prints the token itself.

A remote issuer's keys are not fetched. With a JWKS file for it, the signature is checked
against that; without one, the token's header and payload are re-signed with a throwaway key so
that every other check still runs in the real code, and the signature is reported NOT CHECKED.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from multidict import CIMultiDict, CIMultiDictProxy

from gateway.config import Config
from gateway.core.authenticator import KeySource, StaticKeySource
from gateway.core.bearer import extract_bearer
from gateway.core.cors import CorsPolicy, response_cors
from gateway.core.errors import AuthError
from gateway.core.headers import forwarding_context, upstream_headers
from gateway.core.keys import KeySet
from gateway.core.models import IssuerConfig, Route, RouteMode, ScopeMode
from gateway.core.outcomes import Decision, Forward, Preflight, Refuse, Step, StepName, StepOutcome
from gateway.core.ratelimit import LimitKey
from gateway.core.routes import RouteTable
from gateway.core.target import TargetError, canonicalize
from gateway.core.tokens import UnverifiedToken, parse
from gateway.core.urls import upstream_url
from gateway.tools import offline
from gateway.tools.throwaway_keys import ThrowawayKeys, resign
from gateway.tools.token_report import token_checks

__all__ = ["ExplainRequest", "explain", "shown_target"]


@dataclass(frozen=True, slots=True, kw_only=True)
class ExplainRequest:
    """The request to explain, and the keys at hand for remote issuers (by issuer name)."""

    method: str
    target: str
    headers: tuple[tuple[str, str], ...] = ()
    remote_keys: Mapping[str, KeySet] = field(default_factory=dict)
    now: float


@dataclass(frozen=True, slots=True)
class _Token:
    """The bearer token offered, as the decision will see it (re-signed when unverifiable)."""

    unverified: UnverifiedToken | None
    issuer: IssuerConfig | None
    signature_checked: bool
    authorization: tuple[str, ...]


async def explain(config: Config, request: ExplainRequest) -> list[str]:
    """The decision for ``request`` under ``config``, as lines of text."""
    authorization = tuple(v for k, v in request.headers if k.lower() == "authorization")
    token, key_sources = _prepare_token(config, authorization, request.remote_keys)
    decider = offline.decider(config, clock=lambda: request.now, key_sources=key_sources)
    facts = offline.request_facts(
        request.method, request.target, request.headers, authorization=token.authorization
    )
    decision = await decider.decide(facts, trace=True)
    lines = [f"request: {request.method} {shown_target(request.target)}"]
    for step in decision.steps:
        lines.extend(_step_lines(step, decision, config, request, token))
    route = decision.route
    if route is not None and route.rate_limit is None:
        lines.append("rate_limit: none on this route")
    if route is not None and route.cors is not None and not isinstance(decision, Preflight):
        lines.append(_cors_line(route.cors, request))
    lines.append(_verdict(decision, token))
    if isinstance(decision, Forward):
        lines.extend(_forwarded_headers(decision, request, config.strip_headers))
    return lines


def _prepare_token(
    config: Config, authorization: tuple[str, ...], remote_keys: Mapping[str, KeySet]
) -> tuple[_Token, dict[str, KeySource]]:
    sources: dict[str, KeySource] = {
        issuer.name: StaticKeySource(remote_keys.get(issuer.name, KeySet()))
        for issuer in config.issuers
        if issuer.remote
    }
    try:
        raw = extract_bearer(authorization, token_in_query=False)
        unverified = parse(raw)
    except AuthError:
        return _Token(None, None, True, authorization), sources
    by_iss = {issuer.issuer: issuer for issuer in config.issuers}
    issuer = by_iss.get(unverified.issuer) if isinstance(unverified.issuer, str) else None
    if issuer is None or not issuer.remote or issuer.name in remote_keys:
        return _Token(unverified, issuer, True, authorization), sources
    # A remote issuer without its keys at hand: re-sign with a throwaway key, so that every
    # check but the signature runs in the real code.
    alg = unverified.algorithm
    if isinstance(alg, str) and alg in issuer.algorithms:
        throwaway = ThrowawayKeys.generate(frozenset({alg}))
        if alg in throwaway.signers:
            sources[issuer.name] = StaticKeySource(throwaway.keys)
            resigned = resign(raw, throwaway.signers[alg])
            authorization = (authorization[0].replace(raw, resigned),)
    return _Token(unverified, issuer, False, authorization), sources


def shown_target(target: str) -> str:
    """A request target fit to print: the query, which may carry a token, is left out."""
    # The query may carry secrets (an access_token): say there is one, never what it says.
    path, sep, _ = target.partition("?")
    return f"{path}?<query>" if sep else path


def _step_lines(
    step: Step, decision: Decision, config: Config, request: ExplainRequest, token: _Token
) -> list[str]:
    head = f"{step.name.value}: {_outcome(step)}"
    if step.name is StepName.TARGET:
        if decision.target is None:
            return [f"{head} - the request target is refused ({step.reason})"]
        query = "kept as sent" if decision.target.query is not None else "none"
        return [f"{head} - canonical path {decision.target.path} (query: {query})"]
    if step.name is StepName.ROUTE:
        return [head, *_route_lines(config, request.method, request.target, decision)]
    if step.name is StepName.METHOD:
        if decision.route is None:
            return [f"{head} - {request.method} is not allowed on this path ({step.reason})"]
        if isinstance(decision, Preflight):
            asked = "the method the preflight asks for (Access-Control-Request-Method)"
            return [f"{head} - {asked} is allowed by {_route_name(decision.route)}"]
        return [f"{head} - {request.method} allowed by {_route_name(decision.route)}"]
    route = decision.route
    assert route is not None
    if step.outcome is StepOutcome.SKIPPED:
        return [f"{head} - public route (auth: none)"] if step.name is StepName.CREDENTIALS else []
    if step.name is StepName.CREDENTIALS:
        detail = "one bearer token" if step.outcome is StepOutcome.PASSED else _why(decision)
        return [f"{head} - {detail}{_mode_note(route, step)}"]
    if step.name is StepName.TOKEN:
        return [head, *_token_lines(config, route, request, token, step)]
    if step.name is StepName.SCOPES:
        return [f"{head} - {_scope_detail(route, decision)}{_mode_note(route, step)}"]
    if step.name is StepName.BIND:
        detail = _bind_detail(config, request.method, route, decision, step)
        return [f"{head} - {detail}{_mode_note(route, step)}"]
    if step.name in (StepName.RATE_LIMIT, StepName.THROTTLE):
        return [f"{head} - {_limit_detail(route)}"]
    if step.name is StepName.WEBSOCKET:
        if step.reason is not None:
            return [f"{head} - not a valid WebSocket handshake ({step.reason})"]
        return [f"{head} - a valid WebSocket handshake: tunnelled once allowed"]
    if step.name is StepName.CORS:
        assert route.cors is not None
        detail = "allowed" if step.reason is None else f"refused ({step.reason})"
        return [
            f"{head} - preflight {detail}, answered by the gateway (no token, no upstream)",
            f"  policy: {route.cors}",
        ]
    limit = route.max_body_size or config.limits.max_body_size
    if step.reason is not None:
        return [f"{head} - Content-Length over the route's {limit} bytes ({step.reason})"]
    return [f"{head} - the body may be up to {limit} bytes"]


def _bind_detail(config: Config, method: str, route: Route, decision: Decision, step: Step) -> str:
    """Which segment each binding compared with which claim (never the claim's value: the
    canonical path is printed already, the token's contents are not)."""
    assert decision.target is not None
    table = RouteTable.from_config(config.routes)
    captured = dict(table.match(method, decision.target.path).captures.values)
    compared = "; ".join(
        f"{{{b.param}}} = '{captured.get(b.param, '')}' must be allowed by claim '{b.claim}'"
        for b in route.bind
    )
    if step.outcome is StepOutcome.PASSED:
        return f"{compared}: allowed"
    return (
        f"{compared}: not allowed (claim_mismatch; a string claim must equal the value, a "
        "list claim contain it)"
    )


def _limit_detail(route: Route) -> str:
    limit = route.rate_limit
    if limit is None:
        return "no limit"
    when = "before authentication" if limit.key is LimitKey.IP else "after authentication"
    return (
        f"{limit} (decided {when}; policy {limit.policy_header}; on_backend_error: "
        f"{limit.on_backend_error.value}); explain does not count requests"
    )


def _cors_line(policy: CorsPolicy, request: ExplainRequest) -> str:
    origin = next((v for k, v in request.headers if k.lower() == "origin"), None)
    answer = response_cors(policy, origin)
    assert answer is not None
    if origin is None:
        given = "no Origin header: no CORS fields"
    elif answer.fields:
        given = "; ".join(f"{name}: {value}" for name, value in answer.fields)
    else:
        given = "the Origin is not allowed: no CORS fields (the browser blocks the answer)"
    return f"cors: {policy}; {given}; Vary: Origin"


def _why(decision: Decision) -> str:
    if isinstance(decision, Preflight):
        return "passed"
    refusal = decision.refusal if isinstance(decision, Refuse) else decision.would_refuse
    if refusal is None:
        return "passed"
    return f"{refusal.reason}: {refusal.description}"


def _outcome(step: Step) -> str:
    return {StepOutcome.PASSED: "ok", StepOutcome.FAILED: "FAILED",
            StepOutcome.SKIPPED: "skipped"}[step.outcome]  # fmt: skip


def _mode_note(route: Route, step: Step) -> str:
    if step.outcome is StepOutcome.FAILED and route.mode is RouteMode.REPORT:
        return " (report mode: forwarded anyway)"
    return ""


def _route_name(route: Route) -> str:
    methods = ", ".join(sorted(route.methods)) if route.methods else "any method"
    exact = " (exact)" if route.exact else ""
    return f"{route.path}{exact} [{methods}] (line {route.line})"


def _route_lines(config: Config, method: str, target: str, decision: Decision) -> list[str]:
    try:
        path = canonicalize(target).path
    except TargetError:
        return []
    candidates = RouteTable.from_config(config.routes).candidates(path)
    longest = candidates[0] if candidates else None
    lines = [f"  routes in {config.routes.file}:"]
    for route in config.routes.routes:
        if route is decision.route:
            why = "MATCHES"
        elif not route.matches_path(path):
            why = "exact path only" if route.exact else "path does not match"
        elif longest is not None and route.path != longest.path:
            why = f"a more specific route owns this path ({_route_name(longest)})"
        elif route.methods is not None and method not in route.methods:
            why = f"same path, {method} is not among its methods"
        else:
            first = decision.route or longest
            assert first is not None
            why = f"allows {method}, but {_route_name(first)} is tried first"
        lines.append(f"    {_route_name(route)}: {why}")
    if longest is None:
        lines.append("  no route matches: 404")
    return lines


def _token_lines(
    config: Config, route: Route, request: ExplainRequest, token: _Token, step: Step
) -> list[str]:
    if token.unverified is None:
        return [f"  the token is not a well-formed JWT ({step.reason})"]
    lines = []
    checks = token_checks(
        token.unverified, issuer=token.issuer, route=route, tokens=config.tokens,
        now=request.now, failed=step.check, reason=step.reason,
        signature_checked=token.signature_checked,
    )  # fmt: skip
    for check in checks:
        lines.append(f"  {check.name}: {check.state.value} - {check.detail}")
    if not token.signature_checked and token.issuer is not None:
        lines.append(
            f"  note: issuer '{token.issuer.name}' fetches its keys over HTTP; the signature was "
            "NOT checked (give --jwks FILE to check it)"
        )
    if step.outcome is StepOutcome.FAILED and route.mode is RouteMode.REPORT:
        lines.append("  (report mode: forwarded anyway)")
    return lines


def _scope_detail(route: Route, decision: Decision) -> str:
    rule = route.scopes
    if not rule.scopes:
        needed = "no scopes needed"
    elif rule.mode is ScopeMode.ANY:
        needed = f"needs one of: {', '.join(rule.scopes)}"
    else:
        needed = f"needs all of: {' '.join(rule.scopes)}"
    granted = sorted(decision.claims.scopes) if decision.claims is not None else []
    return f"{needed}; token has: {' '.join(granted) or '(none)'}"


def _verdict(decision: Decision, token: _Token) -> str:
    unchecked = "" if token.signature_checked else " (signature NOT checked)"
    if isinstance(decision, Refuse):
        refusal = decision.refusal
        headers = "".join(f"; {name}: {value}" for name, value in refusal.headers.items())
        return (
            f"decision: {refusal.status} {refusal.error} - {refusal.description} "
            f"(gateway.auth.result: {decision.result.value}, gateway.auth.reason: {refusal.reason})"
            f"{headers}{unchecked}"
        )
    if isinstance(decision, Preflight):
        if decision.refusal is not None:
            refusal = decision.refusal
            return (
                f"decision: {refusal.status} {refusal.error} - {refusal.description}, without "
                f"CORS fields (gateway.auth.result: denied, gateway.auth.reason: {refusal.reason})"
            )
        fields = "; ".join(f"{name}: {value}" for name, value in decision.fields)
        return f"decision: 204 CORS preflight answered (gateway.auth.result: preflight); {fields}"
    route, upstream, target = decision.route, decision.upstream, decision.target
    url = upstream_url(upstream, route, target)
    shown = url.without_query
    query = "?<query as sent>" if target.query is not None else ""
    line = (
        f"decision: forward to upstream '{upstream.name}' {shown}{query} "
        f"(gateway.auth.result: {decision.result.value}"
    )
    if decision.would_refuse is not None:
        would = decision.would_refuse
        line += (
            f", gateway.auth.reason: {would.reason}; "
            f"enforce mode would answer {would.status} {would.error}"
        )
    return line + ")" + unchecked


def _forwarded_headers(
    decision: Forward, request: ExplainRequest, stripped: frozenset[str]
) -> list[str]:
    route = decision.route
    incoming = CIMultiDictProxy(CIMultiDict(request.headers))
    authorization = incoming.getall("Authorization", [])
    context = forwarding_context(
        route, decision.claims, peer="client", proto="http", host=incoming.get("Host"),
        request_id="-", authorization=authorization,
    )  # fmt: skip
    outgoing = upstream_headers(incoming, context, stripped)
    identity = [f"{k}: {v}" for k, v in outgoing.items() if k.lower().startswith("x-auth-")]
    removed = [k for k in incoming if k.lower().startswith("x-auth-")]
    lines = [f"identity headers: {'; '.join(identity) if identity else 'none'}"]
    if removed:
        lines.append(f"removed client headers: {', '.join(removed)}")
    forwarded = "forwarded (forward_token)" if "Authorization" in outgoing else "not forwarded"
    lines.append(f"Authorization: {forwarded}")
    return lines
