"""Every decision at the door, in the spec's order, as one pure-ish function of the request.

`Decider.decide` takes what the gateway knows about a request before reading its body (method,
raw target, Authorization values, Content-Length) and answers with a `Decision`: forward it, or
the refusal to give. The running gateway (`gateway.server.handler`), `gateway explain` and
`gateway test` all call it, so the offline tools decide exactly as the server does.

Order: request target (400), route (404), method (405), credentials (401/400), token (401/503),
scopes (403), body size (413). The first that applies answers. On a route in report mode the
auth steps (credentials, token, scopes) are still taken, but a refusal among them becomes
``would_deny``: the request is forwarded and the refusal it would have had is kept for the log.
The request target, route, method and body-size steps are never report-only: they are not
auth, and relaxing them would hand the upstream requests the gateway cannot interpret.

The only I/O is the authenticator's key lookup (a remote JWKS may be fetched).
"""

from __future__ import annotations

import enum
from collections.abc import Collection
from dataclasses import dataclass

from gateway.core.authenticator import Authenticator
from gateway.core.bearer import extract_bearer, query_has_access_token
from gateway.core.errors import AuthError, InsufficientScope, TokenCheck
from gateway.core.headers import forwardable_value
from gateway.core.models import AuthMode, Route, RouteMode, RoutesConfig, Upstream
from gateway.core.protocol import protocol_refusal
from gateway.core.refusals import (
    Refusal,
    from_auth_error,
    from_target_error,
    method_not_allowed,
    not_found,
    payload_too_large,
)
from gateway.core.routes import Match, RouteTable
from gateway.core.target import (
    CanonicalTarget,
    TargetError,
    TargetProblem,
    canonicalize,
    check_host,
)
from gateway.core.tokens import Claims

__all__ = [
    "AuthResult",
    "Decider",
    "Decision",
    "Forward",
    "Refuse",
    "RequestFacts",
    "Step",
    "StepName",
    "StepOutcome",
]


class AuthResult(enum.Enum):
    """The access log's ``auth.result``."""

    ALLOWED = "allowed"
    PUBLIC = "public"
    DENIED = "denied"
    WOULD_DENY = "would_deny"  # report mode: refused on paper, forwarded in fact


class StepName(enum.Enum):
    """The decision steps, in the order they are taken."""

    TARGET = "target"
    ROUTE = "route"
    METHOD = "method"
    CREDENTIALS = "credentials"
    TOKEN = "token"  # noqa: S105 - a step name, not a secret
    SCOPES = "scopes"
    BODY = "body"


class StepOutcome(enum.Enum):
    """What one step concluded."""

    PASSED = "passed"
    FAILED = "failed"
    SKIPPED = "skipped"  # not needed on this route (public routes take no auth steps)


@dataclass(frozen=True, slots=True)
class Step:
    """One step of a decision, for `gateway explain` (recorded only when asked for)."""

    name: StepName
    outcome: StepOutcome
    reason: str | None = None
    check: TokenCheck | None = None  # the token check that failed (TOKEN steps)


@dataclass(frozen=True, slots=True, kw_only=True)
class RequestFacts:
    """What the door knows about a request before deciding; never the body."""

    method: str
    raw_target: str  # path and query exactly as sent
    authorization: tuple[str, ...] = ()  # every Authorization header value
    content_length: int | None = None
    host: str | None = None  # the Host header, if any
    headers: Collection[tuple[str, str]] = ()  # every header, as (name, value)
    version: tuple[int, int] = (1, 1)  # the request's HTTP version


@dataclass(frozen=True, slots=True, kw_only=True)
class Forward:
    """Send the request to ``upstream``: the route allows it, or is in report mode.

    ``would_refuse`` is the refusal enforce mode would have given (report mode only); ``claims``
    come only from a token that verified.
    """

    target: CanonicalTarget
    route: Route
    upstream: Upstream
    result: AuthResult  # ALLOWED, PUBLIC or WOULD_DENY
    claims: Claims | None = None
    would_refuse: Refusal | None = None
    steps: tuple[Step, ...] = ()

    @property
    def status(self) -> int:
        """200 for "forwarded": the upstream's own status is not known here."""
        return 200

    @property
    def reason(self) -> str | None:
        """The access log's ``auth.reason``: why enforce mode would have refused it."""
        return self.would_refuse.reason if self.would_refuse is not None else None


@dataclass(frozen=True, slots=True, kw_only=True)
class Refuse:
    """Answer with ``refusal``; nothing reaches an upstream.

    How far the request got is data: ``target`` is None when the request target itself was
    refused, ``route`` and ``upstream`` are None when no route was chosen.
    """

    refusal: Refusal
    target: CanonicalTarget | None = None
    route: Route | None = None
    upstream: Upstream | None = None
    claims: Claims | None = None
    steps: tuple[Step, ...] = ()

    @property
    def result(self) -> AuthResult:
        """Always ``denied``."""
        return AuthResult.DENIED

    @property
    def status(self) -> int:
        """The refusal's status."""
        return self.refusal.status

    @property
    def reason(self) -> str | None:
        """The access log's ``auth.reason``."""
        return self.refusal.reason


Decision = Forward | Refuse


class _Trace:
    """Records the steps taken, when asked to (the door does not ask)."""

    __slots__ = ("_steps",)

    def __init__(self, enabled: bool) -> None:
        self._steps: list[Step] | None = [] if enabled else None

    def note(
        self,
        name: StepName,
        outcome: StepOutcome,
        reason: str | None = None,
        check: TokenCheck | None = None,
    ) -> None:
        if self._steps is not None:
            self._steps.append(Step(name, outcome, reason, check))

    @property
    def steps(self) -> tuple[Step, ...]:
        return tuple(self._steps or ())


# The door's decisions record nothing: one shared tracer that drops every step.
_NO_TRACE = _Trace(enabled=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class Decider:
    """Decides requests against one routes table and one set of issuers."""

    routes: RoutesConfig
    table: RouteTable
    authenticator: Authenticator
    max_body_size: int

    async def decide(self, request: RequestFacts, *, trace: bool = False) -> Decision:
        """Take every decision step in order; with ``trace``, record each step taken."""
        steps = _Trace(enabled=True) if trace else _NO_TRACE
        try:
            check_host(request.host)
            target = canonicalize(request.raw_target)
            if not all(forwardable_value(value) for _, value in request.headers):
                raise TargetError(TargetProblem.BAD_HEADER)
        except TargetError as exc:
            refusal = from_target_error(exc)
            steps.note(StepName.TARGET, StepOutcome.FAILED, refusal.reason)
            return Refuse(refusal=refusal, steps=steps.steps)
        framing = protocol_refusal(request.headers, request.version)
        if framing is not None:
            steps.note(StepName.TARGET, StepOutcome.FAILED, framing.reason)
            return Refuse(refusal=framing, steps=steps.steps)
        steps.note(StepName.TARGET, StepOutcome.PASSED)
        match = self.table.match(request.method, target.path)
        if match.kind is Match.NONE:
            steps.note(StepName.ROUTE, StepOutcome.FAILED, "no_route")
            return Refuse(refusal=not_found(), target=target, steps=steps.steps)
        steps.note(StepName.ROUTE, StepOutcome.PASSED)
        route = match.route
        if route is None:  # the path matched, the method did not
            steps.note(StepName.METHOD, StepOutcome.FAILED, "method_not_allowed")
            refusal = method_not_allowed(match.allowed_methods)
            return Refuse(refusal=refusal, target=target, steps=steps.steps)
        steps.note(StepName.METHOD, StepOutcome.PASSED)
        upstream = self.routes.upstreams[route.upstream]

        result = AuthResult.PUBLIC
        claims: Claims | None = None
        would_refuse: Refusal | None = None
        if route.auth is AuthMode.NONE:
            for name in (StepName.CREDENTIALS, StepName.TOKEN, StepName.SCOPES):
                steps.note(name, StepOutcome.SKIPPED)
        else:
            result = AuthResult.ALLOWED
            claims, error = await self._authenticate(route, request, target, steps)
            if error is not None:
                would_refuse = from_auth_error(error)
                if route.mode is RouteMode.ENFORCE:
                    return Refuse(
                        refusal=would_refuse, target=target, route=route, upstream=upstream,
                        claims=claims, steps=steps.steps,
                    )  # fmt: skip
                result = AuthResult.WOULD_DENY

        body_limit = route.max_body_size or self.max_body_size
        if request.content_length is not None and request.content_length > body_limit:
            steps.note(StepName.BODY, StepOutcome.FAILED, "body_too_large")
            return Refuse(
                refusal=payload_too_large(), target=target, route=route, upstream=upstream,
                claims=claims, steps=steps.steps,
            )  # fmt: skip
        steps.note(StepName.BODY, StepOutcome.PASSED)
        return Forward(
            target=target, route=route, upstream=upstream, result=result, claims=claims,
            would_refuse=would_refuse, steps=steps.steps,
        )  # fmt: skip

    async def _authenticate(
        self, route: Route, request: RequestFacts, target: CanonicalTarget, steps: _Trace
    ) -> tuple[Claims | None, AuthError | None]:
        """Credentials, token, scopes: the verified claims (if any) and the refusal (if any)."""
        try:
            token = extract_bearer(
                request.authorization, token_in_query=query_has_access_token(target.query)
            )
        except AuthError as exc:  # MissingCredentials, MalformedCredentials
            steps.note(StepName.CREDENTIALS, StepOutcome.FAILED, exc.reason)
            return None, exc
        steps.note(StepName.CREDENTIALS, StepOutcome.PASSED)
        try:
            # Decisions never read the payload: the same claims, cached or not, and nothing big.
            claims = await self.authenticator.verify_token(token, route, payload=False)
        except AuthError as exc:  # InvalidToken, KeysUnavailable
            steps.note(StepName.TOKEN, StepOutcome.FAILED, exc.reason, exc.check)
            return None, exc
        steps.note(StepName.TOKEN, StepOutcome.PASSED)
        if not route.scopes.satisfied_by(claims.scopes):
            steps.note(StepName.SCOPES, StepOutcome.FAILED, "insufficient_scope")
            return claims, InsufficientScope(route.scopes, claims.subject, claims.client_id)
        steps.note(StepName.SCOPES, StepOutcome.PASSED)
        return claims, None
