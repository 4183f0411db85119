"""The plain-HTTP listener next to HTTPS: it only ever answers with a 308 to the HTTPS URL.

It never proxies anything, so a token sent over plain HTTP is never forwarded (the client should
treat it as exposed and the redirect tells it where to go next time).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

from aiohttp import web

from gateway.core.headers import request_id
from gateway.core.refusals import BAD_HOST_REDIRECT
from gateway.core.target import host_name
from gateway.server.access import AccessEntry, log_access
from gateway.server.logs import get_logger
from gateway.server.render import render

__all__ = ["https_location", "redirect_app"]

_log = get_logger()


def https_location(host_header: str | None, raw_target: str, https_port: int) -> str | None:
    """The HTTPS URL for a plain-HTTP request, or None if the request cannot be redirected."""
    if host_header is None or not raw_target.startswith("/"):
        return None
    host = host_name(host_header)
    if host is None:
        return None
    port = "" if https_port == 443 else f":{https_port}"
    return f"https://{host}{port}{raw_target}"


def redirect_app(https_port: int) -> web.Application:
    """An application that answers every request with a 308 to HTTPS (or a 400)."""

    async def redirect(request: web.Request) -> web.StreamResponse:
        started = time.perf_counter_ns()
        rid = request_id(request.headers.getall("X-Request-ID", []))
        location = https_location(request.headers.get("Host"), request.raw_path, https_port)
        if location is None:
            response: web.StreamResponse = render(BAD_HOST_REDIRECT, rid)
        else:
            response = web.Response(status=308, headers={"Location": location})
        response.force_close()
        entry = AccessEntry(
            started=datetime.now(UTC),
            duration_ns=time.perf_counter_ns() - started,
            request_id=rid,
            client_ip=request.remote,
            method=request.method,
            status=response.status,
            user_agent=request.headers.get("User-Agent"),
            auth_reason="https_required" if location else "bad_host",
        )
        log_access(entry)
        return response

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", redirect)
    return app
