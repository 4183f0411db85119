"""Per-request bookkeeping and the access-log middleware: one JSON line per request."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from gateway.auth.tokens import Claims
from gateway.headers import request_id
from gateway.logging import AccessEntry, access_record, get_logger
from gateway.proxy import ProxyOutcome
from gateway.refusals import Refusal, render

__all__ = ["ACCESS", "RequestRecord", "access_log_middleware"]

_log = get_logger()
_internal_error = Refusal(
    500, "internal_error", "The gateway failed to handle this request", "error"
)


@dataclass(slots=True)
class RequestRecord:
    """What happened to one request so far; the door fills it in, the middleware logs it."""

    request_id: str
    path: str | None = None
    route: str | None = None
    upstream: str | None = None
    upstream_ns: int | None = None
    request_bytes: int = 0
    response_bytes: int = 0
    auth_result: str = "denied"
    auth_reason: str | None = None
    user_id: str | None = None
    client_id: str | None = None

    def refuse(self, refusal: Refusal, *, keep_auth: bool = False) -> web.Response:
        """Render a refusal, and note it (``keep_auth`` for failures after the door let it in)."""
        if not keep_auth:
            self.auth_result = "denied"
            self.auth_reason = refusal.reason
        response = render(refusal, self.request_id)
        self.response_bytes = len(response.body or b"")  # type: ignore[arg-type]
        return response

    def allow(self, claims: Claims | None, *, public: bool) -> None:
        """Note that the door let the request through."""
        self.auth_result = "public" if public else "allowed"
        if claims is not None:
            self.user_id = claims.subject
            self.client_id = claims.client_id

    def finish_proxy(self, outcome: ProxyOutcome) -> None:
        """Note what the upstream exchange moved."""
        self.upstream_ns = outcome.upstream_ns
        self.request_bytes = outcome.request_bytes
        self.response_bytes = outcome.response_bytes


ACCESS = web.RequestKey("access_record", RequestRecord)


@web.middleware
async def access_log_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    """Give the request an id and a record, and log one access line once it is answered."""
    wall_start = datetime.now(UTC)
    started = time.perf_counter_ns()
    record = RequestRecord(request_id=request_id(request.headers.getall("X-Request-ID", [])))
    request[ACCESS] = record
    response: web.StreamResponse
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        # aiohttp's own router never matched: still answer in the gateway's JSON shape.
        response = record.refuse(
            Refusal(exc.status, "bad_request", "The request is not acceptable", "rejected")
        )
    except Exception:
        _log.exception("request_failed", **{"http.request.id": record.request_id})
        response = record.refuse(_internal_error)
    if request.body_exists and not request.content.at_eof() and isinstance(response, web.Response):
        # A refused request's body is never read: close rather than drain it.
        response.force_close()
    entry = AccessEntry(
        started=wall_start,
        duration_ns=time.perf_counter_ns() - started,
        request_id=record.request_id,
        client_ip=request.remote,
        method=request.method,
        path=record.path,
        route=record.route,
        status=response.status,
        upstream=record.upstream,
        upstream_duration_ns=record.upstream_ns,
        request_bytes=record.request_bytes,
        response_bytes=record.response_bytes,
        user_agent=request.headers.get("User-Agent"),
        user_id=record.user_id,
        client_id=record.client_id,
        auth_result=record.auth_result,
        auth_reason=record.auth_reason,
    )
    _log.info("access", **access_record(entry))
    return response
