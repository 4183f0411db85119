"""The door's refusals as bytes made once per refusal: the hot path of a 401, 403 or 404.

A refusal's response differs from one request to the next only in its request id (in the body,
so in Content-Length too), its Date, whether the connection stays open, and the HTTP version of
its status line. `RefusalWire` keeps everything else as bytes, made once from the same
`render` and aiohttp head serializer as `send_whole`, so the bytes are those `send_whole` writes
for the rendered `web.Response` (``tests/unit/server/test_refusal_wire.py`` compares them); a
request then costs a few concatenations and one transport write, instead of a `web.Response`,
its header multidict and its serialization.

What it cannot do exactly that way, it does not do: `RefusalWire.parts` says None when the
request id needs JSON escaping, the version is neither 1.0 nor 1.1, or the connection is going
away, and the caller renders the refusal as before. It relies on the aiohttp internals listed
in `gateway.server.aiohttp_overrides.PRIVATE_SHAPES` (the head serializer, the Date value,
``_eof_sent``, ``_keep_alive`` and the writer's ``output_size``).
"""

from __future__ import annotations

from aiohttp import helpers, http_writer, web
from aiohttp.http import SERVER_SOFTWARE
from multidict import CIMultiDict

from gateway.core.refusals import Refusal
from gateway.server.render import PLAIN_ID, render

__all__ = ["RefusalWire", "added_fields", "send_refusal", "wire_for"]

_SERVER = f"Server: {SERVER_SOFTWARE}\r\n".encode()
_KEEP_ALIVE_10 = b"Connection: keep-alive\r\n\r\n"
_CLOSE_11 = b"Connection: close\r\n\r\n"
_END = b"\r\n"
# Beyond this many distinct refusals (fresh ones: a 429's RateLimit fields, a 503's Retry-After)
# the cache starts again rather than grow.
_MAX_WIRES = 256


class RefusalWire:
    """One refusal's status lines, fixed fields and the JSON body up to the request id."""

    __slots__ = ("_body_head", "_head_10", "_head_11", "refusal")

    def __init__(self, refusal: Refusal) -> None:
        self.refusal = refusal
        # What `render` makes for this refusal, its fields serialized as aiohttp would.
        rendered = render(refusal, "")
        body = rendered.body
        assert isinstance(body, bytes)
        self._body_head = body[: -len(b'"}')]  # the id is the last value, and empty here
        status = f"{refusal.status} {rendered.reason}"
        head = http_writer._serialize_headers("", rendered.headers)[len(_END) : -len(_END)]
        self._head_11 = f"HTTP/1.1 {status}\r\n".encode() + head
        self._head_10 = f"HTTP/1.0 {status}\r\n".encode() + head

    def parts(self, request: web.BaseRequest, request_id: str) -> tuple[bytes, bytes] | None:
        """The status line and fixed fields for this request's HTTP version, and the JSON body
        for its id; None when the version is neither 1.0 nor 1.1, the id would need escaping,
        or the connection is going away (the caller renders the refusal instead)."""
        version = request.version
        if version == (1, 1):
            head = self._head_11
        elif version == (1, 0):
            head = self._head_10
        else:
            return None
        transport = request.transport
        if PLAIN_ID.fullmatch(request_id) is None or transport is None or transport.is_closing():
            return None
        return head, self._body_head + request_id.encode() + b'"}'


_wires: dict[int, RefusalWire] = {}


def wire_for(refusal: Refusal) -> RefusalWire:
    """The refusal's wire, made on first use. Keyed by identity (a refusal holds a dict, so it
    has no hash): the catalogue's constants and cached challenges hit, and the wire keeps its
    refusal alive so that its id cannot be reused while the entry lasts."""
    wire = _wires.get(id(refusal))
    if wire is None or wire.refusal is not refusal:
        if len(_wires) >= _MAX_WIRES:
            _wires.clear()
        wire = _wires[id(refusal)] = RefusalWire(refusal)
    return wire


def added_fields(added: tuple[tuple[str, str], ...]) -> bytes:
    """The door's own fields (HSTS) on every answer, serialized once by aiohttp's serializer
    (which refuses a line break in a name or value)."""
    return http_writer._serialize_headers("", CIMultiDict(added))[len(_END) : -len(_END)]


_SENT: dict[tuple[int, bool], web.StreamResponse] = {}


def _sent(status: int, keep_alive: bool) -> web.StreamResponse:
    """A finished response aiohttp reads after the handler: its status and whether the
    connection stays open. Shared: it holds nothing of any request."""
    response = _SENT.get((status, keep_alive))
    if response is None:
        response = web.StreamResponse(status=status)
        response._keep_alive = keep_alive
        response._eof_sent = True  # aiohttp's prepare and write_eof return at once
        _SENT[(status, keep_alive)] = response
    return response


async def send_refusal(
    request: web.BaseRequest,
    status: int,
    parts: tuple[bytes, bytes],
    *,
    added: bytes,
    close: bool,
) -> web.StreamResponse:
    """Write a refusal whole (``parts`` from `RefusalWire.parts`, ``added``: `added_fields`;
    ``close``: end the connection after it) and return the finished response for aiohttp."""
    head, body = parts
    keep_alive = not close and request.keep_alive
    version = request.version
    if keep_alive:
        ending = _KEEP_ALIVE_10 if version == (1, 0) else _END
    else:
        ending = _CLOSE_11 if version == (1, 1) else _END
    # The same fields, in the same order, as `send_whole` gives the rendered response.
    data = b"%s%sContent-Length: %d\r\nDate: %s\r\n%s%s" % (
        head, added, len(body), helpers.rfc822_formatted_time().encode(), _SERVER, ending,
    )  # fmt: skip
    if request.method != "HEAD":  # a HEAD answer keeps the length of the body it leaves out
        data += body
    transport = request.transport
    assert transport is not None  # `parts` checked it
    transport.write(data)
    writer = request.writer
    writer.output_size += len(data)
    await writer.drain()  # aiohttp's own flow control, as for any response
    return _sent(status, keep_alive)
