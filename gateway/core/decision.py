"""Every decision at the door, in the spec's order, as one pure-ish function of the request.

`Decider.decide` takes what the gateway knows about a request before reading its body (method,
raw target, Authorization values, Content-Length) and answers with a `Decision`: forward it, or
the refusal to give. The running gateway (`gateway.server.handler`), `gateway explain` and
`gateway test` all call it, so the offline tools decide exactly as the server does.

Order: request target (400), route (404), method (405), a per-IP rate limit (429), the
failed-authentication throttle (429), credentials (401/400), token (401/503), scopes (403), a
bound path parameters (403 ``claim_mismatch``), a per-client, per-subject or per-route rate limit
(429), body size (413). The first that applies
answers. A route has at most one rate limit: keyed by IP it is counted before any token work,
keyed by anything else after authentication (unauthenticated requests never reach the upstream a
route-wide limit protects, and must not spend its quota). On a route in report mode the
auth steps (credentials, token, scopes) are still taken, but a refusal among them becomes
``would_deny``: the request is forwarded and the refusal it would have had is kept for the log.
The request target, route, method, rate-limit and body-size steps are never report-only: they
are not auth, and relaxing them would hand the upstream requests the gateway cannot interpret
(or more than it was promised). The throttle is an auth step: on a report-mode route it becomes
``would_deny`` too (and the token is not checked).

A CORS preflight (an ``OPTIONS`` with ``Origin`` and ``Access-Control-Request-Method``) whose
requested method matches a route with a ``cors`` policy is answered right after the request
target, before any rate limit or token work: `Preflight`, a 204 with the policy's fields, or a
403 without them (the browser then blocks the request). Any other ``OPTIONS`` is decided like
every request. A WebSocket handshake on such a route from an ``Origin`` the policy does not
allow is refused (403) right after the handshake check: browsers apply no CORS to WebSocket.

The only I/O is the authenticator's key lookup (a remote JWKS may be fetched) and the rate-limit
counter (`gateway.core.ratelimit.Counter`, which may be Redis).
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.core.authenticator import Authenticator
from gateway.core.bearer import bearer_token, extract_bearer, query_has_access_token
from gateway.core.cors import PreflightRequest, answer_preflight, preflight_request
from gateway.core.errors import AuthError, InsufficientScope, MalformedCredentials
from gateway.core.models import AuthMode, Route, RouteMode, RoutesConfig, Upstream
from gateway.core.outcomes import (
    NO_STEPS,
    AuthResult,
    Decision,
    Forward,
    Preflight,
    Refuse,
    RequestFacts,
    StepName,
    StepOutcome,
    StepTrace,
)
from gateway.core.params import Captures, bindings_hold
from gateway.core.protocol import protocol_refusal
from gateway.core.ratelimit import (
    THROTTLED_TOKEN_REASONS,
    AuthFailureGuard,
    Counter,
    LimitBackendError,
    LimitKey,
    MemoryCounter,
    OnBackendError,
    RateLimit,
    limit_headers,
)
from gateway.core.refusals import (
    Refusal,
    auth_throttled,
    claim_mismatch,
    cors_refused,
    from_auth_error,
    from_target_error,
    method_not_allowed,
    not_found,
    payload_too_large,
    rate_limit_unavailable,
    too_many_requests,
    websocket_handshake_refused,
)
from gateway.core.routes import Match, RouteTable
from gateway.core.target import (
    CanonicalTarget,
    TargetError,
    canonicalize,
    check_host,
)
from gateway.core.tokens import Claims, payload_of
from gateway.core.websocket import HandshakeError, Upgrade, parse_upgrade, subprotocol_token

__all__ = ["Decider"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Decider:
    """Decides requests against one routes table and one set of issuers."""

    routes: RoutesConfig
    table: RouteTable
    authenticator: Authenticator
    max_body_size: int
    # Rate-limit counters (None: limits are not enforced) and the failed-authentication
    # throttle (None: off); both are kept across reloads by whoever builds deciders.
    counter: Counter | None = None
    guard: AuthFailureGuard | None = None
    # The RFC 9728 metadata URL every Bearer challenge names (`protected_resource`), if any.
    resource_metadata: str | None = None

    async def decide(self, request: RequestFacts, *, trace: bool = False) -> Decision:
        """Take every decision step in order; with ``trace``, record each step taken."""
        steps = StepTrace(enabled=True) if trace else NO_STEPS
        try:
            check_host(request.host)
            target = canonicalize(request.raw_target)
        except TargetError as exc:
            refusal = from_target_error(exc)
            steps.note(StepName.TARGET, StepOutcome.FAILED, refusal.reason)
            return Refuse(refusal=refusal, steps=steps.steps)
        framing = protocol_refusal(request.headers, request.version)  # values, framing, Expect
        if framing is not None:
            steps.note(StepName.TARGET, StepOutcome.FAILED, framing.reason)
            return Refuse(refusal=framing, steps=steps.steps)
        steps.note(StepName.TARGET, StepOutcome.PASSED)
        if request.method == "OPTIONS":
            preflight = preflight_request(request.method, request.headers)
            if preflight is not None:
                answered = self._preflight(preflight, target, steps)
                if answered is not None:
                    return answered
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
        websocket: Upgrade | None = None
        if route.websocket is not None:  # not auth: refused in report mode too
            try:
                websocket = parse_upgrade(request.method, request.version, request.headers)
            except HandshakeError as bad_handshake:
                steps.note(StepName.WEBSOCKET, StepOutcome.FAILED, bad_handshake.problem)
                return Refuse(
                    refusal=websocket_handshake_refused(), target=target, route=route,
                    upstream=upstream, steps=steps.steps,
                )  # fmt: skip
            if websocket is not None:
                steps.note(StepName.WEBSOCKET, StepOutcome.PASSED)
                refused = _websocket_origin(route, websocket, steps)
                if refused is not None:
                    return Refuse(
                        refusal=refused, target=target, route=route, upstream=upstream,
                        steps=steps.steps,
                    )  # fmt: skip
        limit = route.rate_limit if self.counter is not None else None
        headers: dict[str, str] | None = None
        if limit is not None and limit.key is LimitKey.IP:
            outcome = await self._limit(limit, request.peer, steps)
            if isinstance(outcome, Refusal):
                return Refuse(
                    refusal=outcome, target=target, route=route, upstream=upstream,
                    steps=steps.steps,
                )  # fmt: skip
            headers = outcome

        result = AuthResult.PUBLIC
        claims: Claims | None = None
        would_refuse: Refusal | None = None
        if route.auth is AuthMode.NONE:
            for name in (StepName.CREDENTIALS, StepName.TOKEN, StepName.SCOPES):
                steps.note(name, StepOutcome.SKIPPED)
        else:
            result = AuthResult.ALLOWED
            blocked = self.guard.blocked_for(request.peer) if self.guard is not None else 0.0
            if blocked > 0:
                steps.note(StepName.THROTTLE, StepOutcome.FAILED, "auth_throttled")
                would_refuse = auth_throttled(blocked)
            else:
                claims, error = await self._authenticate(route, request, target, steps, websocket)
                if error is not None:
                    would_refuse = from_auth_error(error, self.resource_metadata)
                    if self.guard is not None and error.reason in THROTTLED_TOKEN_REASONS:
                        self.guard.failed(request.peer)
                elif route.bind:
                    would_refuse = _bind(route, upstream, match.captures, request, websocket, steps)
            if would_refuse is not None:
                if route.mode is RouteMode.ENFORCE:
                    return Refuse(
                        refusal=would_refuse, target=target, route=route, upstream=upstream,
                        claims=claims, steps=steps.steps,
                    )  # fmt: skip
                result = AuthResult.WOULD_DENY

        if limit is not None and limit.key is not LimitKey.IP:
            outcome = await self._limit(limit, _key_value(limit.key, claims, request.peer), steps)
            if isinstance(outcome, Refusal):
                return Refuse(
                    refusal=outcome, target=target, route=route, upstream=upstream,
                    claims=claims, steps=steps.steps,
                )  # fmt: skip
            headers = outcome

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
            would_refuse=would_refuse, steps=steps.steps, limit_headers=headers,
            websocket=websocket,
        )  # fmt: skip

    def _preflight(
        self, preflight: PreflightRequest, target: CanonicalTarget, steps: StepTrace
    ) -> Preflight | None:
        """The answer to a preflight for a route with a CORS policy (matched by the method it
        asks about), or None: no such route, so the OPTIONS is decided like any request."""
        route = self.table.match(preflight.method, target.path).route
        if route is None or route.cors is None:
            return None
        steps.note(StepName.ROUTE, StepOutcome.PASSED)
        steps.note(StepName.METHOD, StepOutcome.PASSED)
        upstream = self.routes.upstreams[route.upstream]
        answer = answer_preflight(
            route.cors, preflight, route_methods=route.methods,
            protected=route.auth is AuthMode.REQUIRED,
        )  # fmt: skip
        if isinstance(answer, str):
            steps.note(StepName.CORS, StepOutcome.FAILED, answer)
            return Preflight(
                target=target, route=route, upstream=upstream, refusal=cors_refused(answer),
                steps=steps.steps,
            )  # fmt: skip
        steps.note(StepName.CORS, StepOutcome.PASSED)
        return Preflight(
            target=target, route=route, upstream=upstream, fields=answer, steps=steps.steps
        )

    async def _limit(
        self, limit: RateLimit, value: str, steps: StepTrace
    ) -> dict[str, str] | Refusal | None:
        """Count the request in its bucket: the response's RateLimit fields, a refusal (429, or
        503 when the counters are unreachable and the route fails closed), or None (unreachable
        counters, failing open: no fields to give)."""
        counter = self.counter
        assert counter is not None
        try:
            if isinstance(counter, MemoryCounter):  # in this process: no coroutine to await
                verdict = counter.take_now(limit.prefix + value, limit)
            else:
                verdict = await counter.take(limit.prefix + value, limit)
        except LimitBackendError as exc:
            if limit.on_backend_error is OnBackendError.DENY:
                steps.note(StepName.RATE_LIMIT, StepOutcome.FAILED, "rate_limit_unavailable")
                return rate_limit_unavailable()
            steps.note(StepName.RATE_LIMIT, StepOutcome.SKIPPED, exc.reason)
            return None
        if not verdict.allowed:
            steps.note(StepName.RATE_LIMIT, StepOutcome.FAILED, "rate_limited")
            return too_many_requests(limit_headers(limit, verdict))
        steps.note(StepName.RATE_LIMIT, StepOutcome.PASSED)
        return limit_headers(limit, verdict)

    async def _authenticate(
        self,
        route: Route,
        request: RequestFacts,
        target: CanonicalTarget,
        steps: StepTrace,
        websocket: Upgrade | None = None,
    ) -> tuple[Claims | None, AuthError | None]:
        """Credentials, token, scopes: the verified claims (if any) and the refusal (if any)."""
        try:
            authorization = _credentials(route, request.authorization, websocket)
        except AuthError as exc:  # MalformedCredentials: a token in two places
            steps.note(StepName.CREDENTIALS, StepOutcome.FAILED, exc.reason)
            return None, exc
        token = bearer_token(authorization, token_in_query=query_has_access_token(target.query))
        if isinstance(token, AuthError):  # MissingCredentials, MalformedCredentials
            steps.note(StepName.CREDENTIALS, StepOutcome.FAILED, token.reason)
            return None, token
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


def _websocket_origin(route: Route, websocket: Upgrade, steps: StepTrace) -> Refusal | None:
    """A WebSocket handshake from a page on an origin the route's CORS policy leaves out: 403.
    Browsers apply no CORS to WebSocket (the page reads every message), so the policy's origins
    are checked here, or any site could open a tunnel with its visitors' cookies (cross-site
    WebSocket hijacking). A handshake without ``Origin`` is not a browser's: it passes."""
    policy = route.cors
    if policy is None or websocket.origin is None:
        return None
    if policy.allowed_origin(websocket.origin) is None:
        steps.note(StepName.CORS, StepOutcome.FAILED, "cors_origin_not_allowed")
        return cors_refused("cors_origin_not_allowed")
    steps.note(StepName.CORS, StepOutcome.PASSED)
    return None


def _credentials(
    route: Route, authorization: tuple[str, ...], websocket: Upgrade | None
) -> tuple[str, ...]:
    """The Authorization values to read the token from: a WebSocket route that takes the token
    from the bearer subprotocol reads it as one ``Bearer`` value, and refuses it next to an
    ``Authorization`` header (two places for one token: malformed, never a guess)."""
    if websocket is None or route.websocket is None or not route.websocket.token_from_subprotocol:
        return authorization
    token = subprotocol_token(websocket.bearer)
    if token is None:
        return authorization
    if authorization:
        raise MalformedCredentials(
            "Send the token in the Authorization header or the bearer subprotocol, not both"
        )
    return ("Bearer " + token,)


def _bind(
    route: Route,
    upstream: Upstream,
    captures: Captures,
    request: RequestFacts,
    websocket: Upgrade | None,
    steps: StepTrace,
) -> Refusal | None:
    """The path parameters the route binds, against the claims of the token that has just
    verified (decoded again here, on bound routes only: the verified-token cache keeps none;
    read from where the credentials step read it, the bearer subprotocol included)."""
    authorization = _credentials(route, request.authorization, websocket)
    token = extract_bearer(authorization, token_in_query=False)
    if bindings_hold(route.bind, captures, payload_of(token), strip_suffix=upstream.ignore_suffix):
        steps.note(StepName.BIND, StepOutcome.PASSED)
        return None
    steps.note(StepName.BIND, StepOutcome.FAILED, "claim_mismatch")
    return claim_mismatch()


def _key_value(key: LimitKey, claims: Claims | None, peer: str) -> str:
    """The bucket a request counts in, for a limit decided after authentication: the claim the
    key names, or the client IP when the request has no such claim (a public route, a report-mode
    route forwarding a bad token, a token without client_id)."""
    if key is LimitKey.ROUTE:
        return ""
    if claims is not None:
        value = claims.client_id if key is LimitKey.CLIENT_ID else claims.subject
        if value is not None:
            return "=" + value
    return "ip=" + peer
