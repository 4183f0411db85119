"""aiohttp's request object, built with what the gateway reads of it already known.

aiohttp works out most of a request's properties (``method``, ``headers``, ``raw_path``,
``remote``, ...) the first time each is read, by a Python function call, and keeps the value in
the request's private ``_cache`` (propcache's `under_cached_property`, which aiohttp calls
``reify``). The door reads about ten of them for every request; those first reads were about
7 % of a refusal's instructions. `RequestFactory`, the server's request factory, builds the same
`web.BaseRequest` and fills that cache at once, from the parsed message, with the values
aiohttp's own properties compute (``tests/unit/server/test_requests.py`` compares them on real
requests). `check_prefilled` fails loudly at start-up if a release changes how they are kept.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web
from aiohttp.helpers import reify
from aiohttp.streams import EmptyStreamReader, StreamReader

from gateway.server.shapes import PrivateShapeChanged

__all__ = ["PREFILLED", "RequestFactory", "check_prefilled"]

# The properties filled in advance; each is a `reify` of `web.BaseRequest`, kept in ``_cache``.
PREFILLED = (
    "method",
    "version",
    "headers",
    "raw_path",
    "keep_alive",
    "content",
    "body_exists",
    "remote",
    "scheme",
)


def check_prefilled() -> None:
    """Raise `PrivateShapeChanged` unless each of `PREFILLED` is still a cached property of
    `web.BaseRequest` that keeps its value in the request's ``_cache`` under its own name
    (propcache keys the cache by the wrapped function's name)."""
    changed = [
        name
        for name in PREFILLED
        if not isinstance(web.BaseRequest.__dict__.get(name), reify)
        or getattr(web.BaseRequest.__dict__[name].wrapped, "__name__", None) != name
    ]
    if "_cache" not in web.BaseRequest.ATTRS:
        changed.append("_cache")
    if changed:
        raise PrivateShapeChanged(
            "aiohttp's request properties changed shape; gateway.server.requests needs "
            "updating: " + ", ".join(f"BaseRequest.{name}" for name in changed)
        )


class RequestFactory:
    """Builds each request (``web.Server.request_factory``): a plain `web.BaseRequest`, its
    properties in `PREFILLED` already in its cache."""

    __slots__ = ("_loop",)

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def __call__(
        self,
        message: Any,  # a RawRequestMessage; not a tuple when the C parser made it
        payload: StreamReader,
        protocol: Any,  # the connection (a RequestHandler)
        writer: Any,
        task: asyncio.Task[None],
    ) -> web.BaseRequest:
        request = web.BaseRequest(message, payload, protocol, writer, task, self._loop)
        # Private: `_cache`, where each `reify` property keeps its value once computed.
        known: dict[str, Any] = request._cache
        known["method"] = message.method
        known["version"] = message.version
        known["headers"] = message.headers
        known["raw_path"] = message.path
        known["keep_alive"] = not message.should_close
        known["content"] = payload
        known["body_exists"] = type(payload) is not EmptyStreamReader
        peer = protocol.peername  # the connection's, looked up once per connection
        if peer is None:
            known["remote"] = None
        elif isinstance(peer, list | tuple):
            known["remote"] = str(peer[0])
        else:
            known["remote"] = str(peer)
        known["scheme"] = "https" if protocol.ssl_context else "http"
        return request
