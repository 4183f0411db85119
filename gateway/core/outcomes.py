"""What a decision reads and concludes: the request's facts, the outcomes (`Forward`, `Refuse`,
`Preflight`) and the steps `gateway explain` shows. `gateway.core.decision.Decider` takes the
steps; the server, explain and the policy tests read these values.
"""

from __future__ import annotations

import enum
from collections.abc import Collection
from dataclasses import dataclass

from gateway.core.errors import TokenCheck
from gateway.core.models import Route, Upstream
from gateway.core.refusals import Refusal
from gateway.core.target import CanonicalTarget
from gateway.core.tokens import Claims
from gateway.core.websocket import Upgrade

__all__ = [
    "NO_STEPS",
    "AuthResult",
    "Decision",
    "Forward",
    "Preflight",
    "Refuse",
    "RequestFacts",
    "Step",
    "StepName",
    "StepOutcome",
    "StepTrace",
]


class AuthResult(enum.Enum):
    """The access log's ``auth.result``."""

    ALLOWED = "allowed"
    PUBLIC = "public"
    DENIED = "denied"
    WOULD_DENY = "would_deny"  # report mode: refused on paper, forwarded in fact
    PREFLIGHT = "preflight"  # a CORS preflight the gateway answered itself (204)


class StepName(enum.Enum):
    """The decision steps, in the order they are taken."""

    TARGET = "target"
    ROUTE = "route"
    METHOD = "method"
    THROTTLE = "throttle"  # the failed-authentication throttle (protected routes)
    CREDENTIALS = "credentials"
    TOKEN = "token"  # noqa: S105 - a step name, not a secret
    SCOPES = "scopes"
    BIND = "bind"  # path parameters bound to claims (routes with `bind:` only)
    RATE_LIMIT = "rate_limit"  # taken before CREDENTIALS for IP keys, after SCOPES for others
    BODY = "body"
    WEBSOCKET = "websocket"  # the handshake of a WebSocket upgrade, on a route that tunnels
    CORS = "cors"  # a CORS preflight, answered by the route's policy


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


# The facts and outcomes are not frozen: they are made for every request, and a frozen
# dataclass's __init__ costs three times as much (one object.__setattr__ per field). Nothing
# changes one after it is made. Their __init__ methods are written out: the ones dataclasses
# would write are Python, run for every request, where these are compiled with the module.
@dataclass(slots=True, init=False)
class RequestFacts:
    """What the door knows about a request before deciding; never the body."""

    method: str
    raw_target: str  # path and query exactly as sent
    authorization: tuple[str, ...] = ()  # every Authorization header value
    content_length: int | None = None
    host: str | None = None  # the Host header, if any
    headers: Collection[tuple[str, str]] = ()  # every header, as (name, value)
    version: tuple[int, int] = (1, 1)  # the request's HTTP version
    peer: str = ""  # the client's address (behind trusted proxies, the one they name)

    def __init__(
        self,
        *,
        method: str,
        raw_target: str,
        authorization: tuple[str, ...] = (),
        content_length: int | None = None,
        host: str | None = None,
        headers: Collection[tuple[str, str]] = (),
        version: tuple[int, int] = (1, 1),
        peer: str = "",
    ) -> None:
        self.method = method
        self.raw_target = raw_target
        self.authorization = authorization
        self.content_length = content_length
        self.host = host
        self.headers = headers
        self.version = version
        self.peer = peer


@dataclass(slots=True, init=False)
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
    # The RateLimit / RateLimit-Policy fields for the response (the route's limit allowed it).
    limit_headers: dict[str, str] | None = None
    # A WebSocket handshake to tunnel (the route has `websocket`); None: a plain request.
    websocket: Upgrade | None = None

    def __init__(
        self,
        *,
        target: CanonicalTarget,
        route: Route,
        upstream: Upstream,
        result: AuthResult,
        claims: Claims | None = None,
        would_refuse: Refusal | None = None,
        steps: tuple[Step, ...] = (),
        limit_headers: dict[str, str] | None = None,
        websocket: Upgrade | None = None,
    ) -> None:
        self.target = target
        self.route = route
        self.upstream = upstream
        self.result = result
        self.claims = claims
        self.would_refuse = would_refuse
        self.steps = steps
        self.limit_headers = limit_headers
        self.websocket = websocket

    @property
    def status(self) -> int:
        """200 for "forwarded" (the upstream's own status is not known here); 101 for a
        WebSocket upgrade the gateway will tunnel."""
        return 200 if self.websocket is None else 101

    @property
    def reason(self) -> str | None:
        """The access log's ``auth.reason``: why enforce mode would have refused it."""
        return self.would_refuse.reason if self.would_refuse is not None else None


@dataclass(slots=True, init=False)
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

    def __init__(
        self,
        *,
        refusal: Refusal,
        target: CanonicalTarget | None = None,
        route: Route | None = None,
        upstream: Upstream | None = None,
        claims: Claims | None = None,
        steps: tuple[Step, ...] = (),
    ) -> None:
        self.refusal = refusal
        self.target = target
        self.route = route
        self.upstream = upstream
        self.claims = claims
        self.steps = steps

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


@dataclass(slots=True, kw_only=True)
class Preflight:
    """Answer a CORS preflight on a route with a ``cors`` policy, without auth and without the
    upstream: 204 with ``fields``, or ``refusal`` (403, no CORS fields) when the policy does not
    allow its origin, method or headers."""

    target: CanonicalTarget
    route: Route
    upstream: Upstream
    fields: tuple[tuple[str, str], ...] = ()
    refusal: Refusal | None = None
    steps: tuple[Step, ...] = ()

    @property
    def claims(self) -> None:
        """A preflight carries no token."""
        return None

    @property
    def result(self) -> AuthResult:
        """``preflight``, or ``denied`` when refused."""
        return AuthResult.PREFLIGHT if self.refusal is None else AuthResult.DENIED

    @property
    def status(self) -> int:
        """204, or the refusal's status."""
        return 204 if self.refusal is None else self.refusal.status

    @property
    def reason(self) -> str | None:
        """The access log's ``auth.reason``: why the preflight was refused."""
        return self.refusal.reason if self.refusal is not None else None


Decision = Forward | Refuse | Preflight


class StepTrace:
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
NO_STEPS = StepTrace(enabled=False)
