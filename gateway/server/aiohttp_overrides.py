"""Every place the gateway reaches into aiohttp's private parts, in one module.

aiohttp answers a request its parser refuses before any middleware runs, with a text body that
quotes the offending bytes (an ``Authorization`` line among them) and an error log entry that
does the same. `GatewayRunner` serves the application with a protocol whose error responses are
the gateway's JSON refusal, quote nothing the client sent, and are logged as one access line;
it also caps the number of client connections, and serves the gateway's door as aiohttp's
low-level handler (``app[HANDLER]``): no router, no middleware, a plain `web.BaseRequest`.

Each override below says which private attribute or class it relies on. `PRIVATE_SHAPES` lists
them all, and `check_private_shapes` (run on every server the runner builds) fails loudly when an
aiohttp release changes one, instead of letting the gateway silently fall back to aiohttp's own
behaviour. ``pyproject.toml`` bounds aiohttp below its next minor version for the same reason.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable, Mapping
from typing import cast

from aiohttp import helpers, http_writer, web, web_protocol, web_response
from aiohttp.base_protocol import BaseProtocol
from aiohttp.http import SERVER_SOFTWARE
from aiohttp.http_writer import StreamWriter
from aiohttp.web_protocol import RequestHandler

from gateway.server.connection import GatewayConnection
from gateway.server.requests import RequestFactory, check_prefilled
from gateway.server.shapes import PrivateShapeChanged
from gateway.server.tracebacks import drop_tracebacks
from gateway.server.wire import serialize_head

__all__ = [
    "HANDLER",
    "HEADER_TIMEOUT",
    "MAX_CONNECTIONS",
    "PARSER_REFUSALS",
    "PRIVATE_SHAPES",
    "GatewayRunner",
    "PrivateShapeChanged",
    "PurePythonParser",
    "check_private_shapes",
    "missing_shapes",
    "private_owners",
    "require_c_parser",
    "send_continue",
    "send_whole",
]


class PurePythonParser(RuntimeError):
    """aiohttp would parse requests with its pure-Python parser, which accepts several inputs
    the C parser refuses (``Transfer-Encoding: chunked, chunked``, raw UTF-8 in the target,
    lower-case and unknown methods); the gateway refuses to serve with it."""


# (owner, attribute, what the gateway uses it for). Instance attributes of `web.Server` are
# checked on a real instance.
PRIVATE_SHAPES: tuple[tuple[str, str, str], ...] = (
    ("web_protocol", "HttpRequestParser", "the parser class each connection instantiates"),
    ("RequestHandler", "handle_error", "the error page for requests the parser refuses"),
    ("AppRunner", "_make_server", "where the runner builds its web.Server"),
    ("Server", "_loop", "passed to each new RequestHandler"),
    ("Server", "_kwargs", "the handler settings passed to each new RequestHandler"),
    ("Server", "_connections", "the open connections, counted against max_connections"),
    ("Server", "connection_made", "called for each new connection"),
    ("RequestHandler", "data_received", "where the header deadline watches a head arrive"),
    ("RequestHandler", "_current_request", "whether a request is being handled"),
    ("RequestHandler", "_messages", "requests parsed but not yet handled"),
    # The connection's request loop (`GatewayConnection.start`) and the state it keeps.
    ("RequestHandler", "start", "the request loop the connection's task runs"),
    ("RequestHandler", "_handle_request", "calls the handler, then finish_response"),
    ("RequestHandler", "_waiter", "the future the loop waits on for the next request"),
    ("RequestHandler", "_force_close", "the connection is closing, nothing more is read"),
    ("RequestHandler", "_close", "close once the current request is answered"),
    ("RequestHandler", "_keepalive", "whether the last answer kept the connection"),
    ("RequestHandler", "_keepalive_timeout", "the keep-alive timeout, from the server"),
    ("RequestHandler", "_keepalive_handle", "the keep-alive timer, one per connection"),
    ("RequestHandler", "_next_keepalive_close_time", "when that timer closes the connection"),
    ("RequestHandler", "_process_keepalive", "that timer's callback"),
    ("RequestHandler", "_logging_enabled", "whether aiohttp's access log wants a start time"),
    ("RequestHandler", "_parser", "freed a slot by message_consumed for each request taken"),
    ("RequestHandler", "_buffer_paused", "reading paused while parsed requests queue up"),
    ("RequestHandler", "_msg_queue_resume_size", "how short that queue must be to resume"),
    ("RequestHandler", "_resume_reading_if_drained", "resumes reading"),
    ("RequestHandler", "_manager", "the server, which counts requests"),
    ("RequestHandler", "_request_factory", "builds each request"),
    ("RequestHandler", "_request_handler", "the door"),
    ("RequestHandler", "_task_handler", "the connection's task, given to each request"),
    ("RequestHandler", "_make_error_handler", "answers a request the parser refused"),
    ("web_protocol", "_ErrInfo", "a request the parser refused, queued as a message"),
    ("web_protocol", "ERROR", "the placeholder message of such a request"),
    ("web_protocol", "_PAYLOAD_ACCESS_ERROR", "set on a body once its request is answered"),
    ("StreamWriter", "output_size", "whether a response has started on the connection"),
    ("Server", "request_handler", "replaced by the door (the low-level handler)"),
    ("Server", "request_factory", "replaced by requests.RequestFactory (plain BaseRequest)"),
    ("helpers", "rfc822_formatted_time", "the Date field, as aiohttp writes it"),
    ("helpers", "must_be_empty_body", "whether a whole response is sent without its body"),
    ("helpers", "should_remove_content_length", "whether its Content-Length is dropped"),
    ("Response", "_eof_sent", "marks a response the door wrote whole as finished"),
    ("Response", "_keep_alive", "tells aiohttp whether a whole response kept the connection"),
    ("web_response", "REASON_PHRASES", "the reason phrase of a status the upstream gave none"),
    ("Response", "_write_headers", "where a streamed answer's head is serialized"),
    ("Response", "_send_headers_immediately", "whether that head is sent at once"),
    ("StreamWriter", "_headers_buf", "the serialized head, written by send_headers"),
    ("StreamWriter", "_headers_written", "whether that head went out"),
    ("StreamWriter", "_on_headers_sent", "a hook that reads the head's fields (then unused)"),
)


def private_owners(server: web.Server) -> dict[str, object]:
    """The real objects `PRIVATE_SHAPES` names, instances where the attribute is set in
    ``__init__`` (``server``: a real one)."""
    writer = StreamWriter(cast(BaseProtocol, None), server._loop)
    return {
        "web_protocol": web_protocol,
        "RequestHandler": RequestHandler,
        "AppRunner": web.AppRunner,
        "Server": server,
        "StreamWriter": writer,
        "http_writer": http_writer,
        "helpers": helpers,
        "Response": web.Response(),
        "web_response": web_response,
    }


def missing_shapes(owners: Mapping[str, object]) -> list[str]:
    """Each internal in `PRIVATE_SHAPES` that ``owners`` lacks, or whose signature changed."""
    missing = [
        f"{owner}.{name} ({use})"
        for owner, name, use in PRIVATE_SHAPES
        if not hasattr(owners[owner], name)
    ]
    expected = {
        "handle_error": ["self", "request", "status", "exc", "message"],
        "_handle_request": ["self", "request", "start_time", "request_handler"],
    }
    for name, parameters in expected.items():
        method = getattr(owners["RequestHandler"], name, None)
        if method is None:
            continue  # reported as missing above
        if list(inspect.signature(method).parameters)[: len(parameters)] != parameters:
            missing.append(f"RequestHandler.{name} (its parameters changed)")
    return missing


def check_private_shapes(server: web.Server) -> None:
    """Raise `PrivateShapeChanged` unless every internal in `PRIVATE_SHAPES` is as expected."""
    missing = missing_shapes(private_owners(server))
    if missing:
        raise PrivateShapeChanged(
            "aiohttp's internals changed shape; the gateway's overrides need updating: "
            + "; ".join(missing)
        )


def require_c_parser() -> None:
    """Raise `PurePythonParser` unless aiohttp's C HTTP parser is the one in use."""
    # Override: `web_protocol.HttpRequestParser` is the parser class each connection actually
    # instantiates, whatever `aiohttp.http_parser` exports.
    parser: type = getattr(web_protocol, "HttpRequestParser")  # noqa: B009
    if parser.__module__ != "aiohttp._http_parser":
        raise PurePythonParser(
            "aiohttp's C HTTP parser is not in use (AIOHTTP_NO_EXTENSIONS is set, or the "
            "installed aiohttp has no compiled extensions); refusing to serve with the "
            "pure-Python parser"
        )


class _GatewayHTTPServer(web.Server):
    """Override: `web.Server.__call__` makes each connection's protocol (from the private
    `_loop` and `_kwargs`); `connection_made` is told of each new connection."""

    max_connections = 0  # set by GatewayRunner; 0 is no limit
    header_timeout = 0.0  # set by GatewayRunner; 0 is no header deadline
    on_refusal: Callable[[int, str], None] | None = None  # set by GatewayRunner

    def __call__(self) -> RequestHandler:
        protocol = GatewayConnection(self, loop=self._loop, **self._kwargs)
        protocol.header_timeout = self.header_timeout
        protocol.on_refusal = self.on_refusal
        return protocol

    def connection_made(self, handler: RequestHandler, transport: asyncio.Transport) -> None:
        super().connection_made(handler, transport)
        # Private: `_connections` holds every open connection, this one included.
        if self.max_connections and len(self._connections) > self.max_connections:
            # Over the limit: close at once rather than let it hold a slot the others need.
            transport.close()


MAX_CONNECTIONS = web.AppKey("max_connections", int)
HEADER_TIMEOUT = web.AppKey("header_timeout", float)
LowLevelHandler = Callable[[web.BaseRequest], Awaitable[web.StreamResponse]]
HANDLER: web.AppKey[LowLevelHandler] = web.AppKey("handler")
# Told (status, reason) of each request the parser refused: the request metrics count it.
PARSER_REFUSALS: web.AppKey[Callable[[int, str], None]] = web.AppKey("parser_refusals")


class GatewayRunner(web.AppRunner):
    """An `AppRunner` whose connections answer parser errors in the gateway's own shape and
    that holds at most ``app[MAX_CONNECTIONS]`` client connections (0: no limit).

    With ``app[HANDLER]`` set, every request goes straight to that handler with a plain
    `web.BaseRequest`: the application's router, middlewares, ``on_response_prepare`` signal and
    expect handler are not used (the application still owns start-up and clean-up). The door
    does everything itself, and aiohttp's router, middleware chain and `web.Request` cost about
    a fifth of a refusal's time.
    """

    __slots__ = ()

    async def _make_server(self) -> web.Server:
        # Override: `AppRunner._make_server` is where the runner builds its `web.Server`.
        server = await super()._make_server()
        check_private_shapes(server)
        # aiohttp builds its Server inside Application; swapping the class only changes which
        # protocol each new connection gets (covered by the parser-error tests).
        server.__class__ = _GatewayHTTPServer
        server.max_connections = self.app.get(MAX_CONNECTIONS, 0)  # type: ignore[attr-defined]
        server.header_timeout = self.app.get(HEADER_TIMEOUT, 0.0)  # type: ignore[attr-defined]
        server.on_refusal = self.app.get(PARSER_REFUSALS)  # type: ignore[attr-defined]
        handler = self.app.get(HANDLER)
        if handler is not None:
            # Override: `Server.request_handler` and `request_factory` are read by each new
            # connection. The factory builds a plain BaseRequest, its properties known at once.
            check_prefilled()
            server.request_handler = handler
            server.request_factory = RequestFactory(server._loop)
        return server


async def send_continue(request: web.BaseRequest) -> None:
    """Write ``100 Continue`` (the gateway decides first: aiohttp's own expect handler would
    answer before any decision)."""
    await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
    # Private: `output_size` counts response bytes; the interim response is not the response.
    request.writer.output_size = 0


async def send_whole(request: web.BaseRequest, response: web.Response) -> None:
    """Write a whole, unprepared `web.Response` in one transport write: the bytes aiohttp's
    ``prepare`` and ``write_eof`` would write (the same head serialization, but keeping the
    bytes of a field value that are not UTF-8, `wire.serialize_head`; the same Date, Server,
    Content-Length, Content-Type and Connection rules), without their per-response machinery,
    which costs more than the gateway's whole decision for a refusal.

    Afterwards the response counts as finished, so aiohttp writes nothing more; its
    ``keep_alive`` tells aiohttp whether to keep the connection, as if aiohttp had sent it.
    A response aiohttp must shape itself (a payload object, compression, chunking) or a
    connection already closing is left to aiohttp. (The gateway sets no cookies through
    aiohttp: an upstream's ``Set-Cookie`` fields are plain headers.)
    """
    body = b"" if response.body is None else response.body
    transport = request.transport
    if (
        not isinstance(body, bytes)
        or response.prepared
        or response.compression
        or response.chunked
        or transport is None
        or transport.is_closing()
    ):
        return
    method, status, headers = request.method, response.status, response.headers
    keep_alive = response.keep_alive
    if keep_alive is None:
        keep_alive = request.keep_alive
    empty = helpers.must_be_empty_body(method, status)
    if helpers.should_remove_content_length(method, status):
        headers.popall("Content-Length", None)
    elif "Content-Length" not in headers and (body or (status != 304 and method != "HEAD")):
        headers["Content-Length"] = str(len(body))
    if empty:
        headers.popall("Transfer-Encoding", None)
    elif headers.get("Content-Length") != "0":
        headers.setdefault("Content-Type", "application/octet-stream")
    if "Date" not in headers:
        headers["Date"] = helpers.rfc822_formatted_time()
    headers.setdefault("Server", SERVER_SOFTWARE)
    version = request.version
    if "Connection" not in headers:
        if keep_alive:
            if version == (1, 0):
                headers["Connection"] = "keep-alive"
        elif version == (1, 1):
            headers["Connection"] = "close"
    # aiohttp's serialization (and its refusal of a CR or LF in a field, ValueError), with the
    # upstream's bytes that are not UTF-8 kept, where aiohttp's serializer drops them.
    status_line = f"HTTP/{version[0]}.{version[1]} {status} {response.reason}"
    head = serialize_head(status_line, headers.items())
    data = head if empty or not body else head + body
    transport.write(data)
    # Private: `_keep_alive` is what aiohttp reads to keep or close the connection, and
    # `_eof_sent` makes its prepare and write_eof return at once.
    response._keep_alive = keep_alive
    response._eof_sent = True
    writer = request.writer
    writer.output_size += len(data)
    # aiohttp's own flow control: wait while the transport is paused over its high-water mark.
    try:
        await writer.drain()
    except ConnectionError as error:  # the client left before it took the answer
        drop_tracebacks(error)
        response._keep_alive = False
