"""The HTTP server layer under the application: requests aiohttp's parser rejects are ours too.

aiohttp answers a request its parser refuses before any middleware runs, with a text body that
quotes the offending bytes (an ``Authorization`` line among them) and an error log entry that
does the same. `GatewayRunner` serves the application with a protocol whose error responses are
the gateway's JSON refusal, quote nothing the client sent, and are logged as one access line.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from aiohttp import web, web_protocol
from aiohttp.web_protocol import RequestHandler

from gateway.core.headers import request_id
from gateway.core.refusals import parser_refusal
from gateway.server.logs import AccessEntry, access_record, get_logger
from gateway.server.render import render

__all__ = ["MAX_CONNECTIONS", "GatewayRunner", "PurePythonParser", "require_c_parser"]

_log = get_logger()


class PurePythonParser(RuntimeError):
    """aiohttp would parse requests with its pure-Python parser, which accepts several inputs
    the C parser refuses (``Transfer-Encoding: chunked, chunked``, raw UTF-8 in the target,
    lower-case and unknown methods); the gateway refuses to serve with it."""


def require_c_parser() -> None:
    """Raise `PurePythonParser` unless aiohttp's C HTTP parser is the one in use."""
    # The parser class web_protocol actually instantiates, whatever http_parser exports.
    parser: type = getattr(web_protocol, "HttpRequestParser")  # noqa: B009
    if parser.__module__ != "aiohttp._http_parser":
        raise PurePythonParser(
            "aiohttp's C HTTP parser is not in use (AIOHTTP_NO_EXTENSIONS is set, or the "
            "installed aiohttp has no compiled extensions); refusing to serve with the "
            "pure-Python parser"
        )


class _GatewayProtocol(RequestHandler):
    __slots__ = ()

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if request.writer.output_size > 0:
            raise ConnectionError("response already started; closing the connection")
        refusal = parser_refusal(status)
        rid = request_id([])
        response = render(refusal, rid)
        response.force_close()
        if status >= 500 and exc is not None:
            _log.error(
                "request_failed", **{"error.type": type(exc).__name__, "http.request.id": rid}
            )
        entry = AccessEntry(
            started=datetime.now(UTC),
            request_id=rid,
            client_ip=request.remote,
            status=status,
            response_bytes=len(response.body or b""),  # type: ignore[arg-type]
            auth_reason=refusal.reason,
        )
        _log.info("access", **access_record(entry))
        return response


class _GatewayHTTPServer(web.Server):
    max_connections = 0  # set by GatewayRunner; 0 is no limit

    def __call__(self) -> RequestHandler:
        return _GatewayProtocol(self, loop=self._loop, **self._kwargs)

    def connection_made(self, handler: RequestHandler, transport: asyncio.Transport) -> None:
        super().connection_made(handler, transport)
        if self.max_connections and len(self._connections) > self.max_connections:
            # Over the limit: close at once rather than let it hold a slot the others need.
            transport.close()


MAX_CONNECTIONS = web.AppKey("max_connections", int)


class GatewayRunner(web.AppRunner):
    """An `AppRunner` whose connections answer parser errors in the gateway's own shape and
    that holds at most ``app[MAX_CONNECTIONS]`` client connections (0: no limit)."""

    __slots__ = ()

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        # aiohttp builds its Server inside Application; swapping the class only changes which
        # protocol each new connection gets (covered by the parser-error tests).
        server.__class__ = _GatewayHTTPServer
        server.max_connections = self.app.get(MAX_CONNECTIONS, 0)  # type: ignore[attr-defined]
        return server
