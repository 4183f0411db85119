"""Whole responses as bytes: the door's refusals, and the upstream's small answers.

aiohttp's way to send a whole response is a `web.Response`, its header multidict, and the
serialization of both; `send_whole` already cut that to one write, and was still most of a
refusal's cost. Here a response the door writes whole is a `Whole`: its status line and fields
as bytes, and its body. Only what depends on the moment of writing is added then:
Content-Length, the defaults aiohttp would add (Content-Type, Date, Server) and the Connection
field, in `send_whole`'s order and by its rules, so the bytes are those `send_whole` writes for
the same response (``tests/unit/server/test_wire_*.py`` compare them).

- A refusal's `Whole` comes from its `RefusalWire`, made once per refusal from the same
  `render` and `serialize_head`: a request adds its id to the body.
- An upstream's answer read whole (`whole_answer`) keeps the upstream's fields as the bytes
  that came, less the hop-by-hop ones and Content-Length. (aiohttp's serializer drops the
  bytes of a value that are not UTF-8; these are written as they came.)
- A streamed answer (`KeptBytesResponse`) keeps aiohttp's framing and fields, and has its head
  written with those bytes kept too.

What cannot be written exactly that way is left to `render` and `send_whole` (`None` from
`RefusalWire.whole` and `whole_answer`). The aiohttp internals used are listed in
`gateway.server.aiohttp_overrides.PRIVATE_SHAPES` (the Date value, the
default reason phrases, ``_eof_sent``, ``_keep_alive`` and the writer's ``output_size``).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from typing import Any

from aiohttp import helpers, http_writer, web
from aiohttp.http import SERVER_SOFTWARE
from aiohttp.web_response import REASON_PHRASES

from gateway.core.headers import HOP_BY_HOP_BYTES
from gateway.core.keep import keep
from gateway.core.refusals import Refusal
from gateway.server.render import PLAIN_ID, render
from gateway.server.tracebacks import drop_tracebacks

__all__ = [
    "KeptBytesResponse",
    "RefusalWire",
    "Whole",
    "added_fields",
    "send",
    "serialize_head",
    "whole_answer",
    "wire_for",
]

_SERVER = f"Server: {SERVER_SOFTWARE}\r\n".encode()
_DEFAULT_TYPE = b"Content-Type: application/octet-stream\r\n"
_KEEP_ALIVE_10 = b"Connection: keep-alive\r\n\r\n"
_CLOSE_11 = b"Connection: close\r\n\r\n"
_END = b"\r\n"
# Beyond this many distinct refusals (fresh ones: a 429's RateLimit fields, a 503's Retry-After)
# the cache starts again rather than grow.
_MAX_WIRES = 256


class Whole:
    """A response to write whole: its status line and fields up to Content-Length (``head``),
    its body, and which of aiohttp's defaults it still needs."""

    __slots__ = ("body", "date", "head", "server", "status", "typed")

    def __init__(
        self,
        status: int,
        head: bytes,
        body: bytes,
        *,
        typed: bool = True,
        date: bool = True,
        server: bool = True,
    ) -> None:
        self.status = status
        self.head = head
        self.body = body
        self.typed = typed  # False: Content-Type application/octet-stream is added
        self.date = date  # True: a Date field is added
        self.server = server  # True: aiohttp's Server field is added


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
        fields = _field_lines(rendered.headers.items())
        self._head_11 = f"HTTP/1.1 {status}\r\n".encode() + fields
        self._head_10 = f"HTTP/1.0 {status}\r\n".encode() + fields

    def whole(self, version: tuple[int, int], request_id: str, added: bytes) -> Whole | None:
        """The refusal for a request of this HTTP version and id, with the door's ``added``
        fields (`added_fields`); None when the version is neither 1.0 nor 1.1 or the id would
        need escaping (the caller renders the refusal instead)."""
        if version == (1, 1):
            head = self._head_11
        elif version == (1, 0):
            head = self._head_10
        else:
            return None
        if PLAIN_ID.fullmatch(request_id) is None:
            return None
        body = self._body_head + request_id.encode() + b'"}'
        return Whole(self.refusal.status, head + added if added else head, body)


_wires: dict[int, RefusalWire] = {}


def wire_for(refusal: Refusal) -> RefusalWire:
    """The refusal's wire, made on first use. Keyed by identity (a refusal holds a dict, so it
    has no hash): the catalogue's constants and cached challenges hit, and the wire keeps its
    refusal alive so that its id cannot be reused while the entry lasts."""
    wire = _wires.get(id(refusal))
    if wire is None or wire.refusal is not refusal:
        wire = keep(_wires, id(refusal), RefusalWire(refusal), _MAX_WIRES)
    return wire


def added_fields(added: Sequence[tuple[str, str]]) -> bytes:
    """Fields the gateway sets on an answer (HSTS, RateLimit), serialized as in any head
    (`serialize_head`: a CR or LF in a name or value is refused)."""
    return _added(added)[0] if added else b""


def _added(added: Sequence[tuple[str, str]]) -> tuple[bytes, tuple[bytes, ...]]:
    """``added``'s lines, and its names in lower case (the upstream's fields they replace).

    Each field's pair is kept by its name and value: a limited route's values repeat (its
    remaining quota and reset are small numbers), and serializing costs more than the lookup.
    Bounded, emptied when full; only the gateway's own fields come here, never a client's or an
    upstream's."""
    lines = []
    names = []
    for field in added:
        kept = _kept_fields.get(field)
        if kept is None:
            line = _field_lines((field,))
            kept = keep(_kept_fields, field, (line, field[0].lower().encode()), _MAX_KEPT_FIELDS)
        lines.append(kept[0])
        names.append(kept[1])
    return b"".join(lines), tuple(names)


_kept_fields: dict[tuple[str, str], tuple[bytes, bytes]] = {}
_MAX_KEPT_FIELDS = 1024


def _field_lines(fields: Iterable[tuple[str, str]]) -> bytes:
    """``name: value`` lines, each with its CR LF (a head without its status line and end)."""
    return serialize_head("", fields)[len(_END) : -len(_END)]


# The upstream's fields never passed on as they came: hop-by-hop ones, and Content-Length (the
# answer gets its own, from the body it carries).
_NOT_PASSED = HOP_BY_HOP_BYTES | {b"content-length"}
# Connection values that name no field of their own (anything else: left to `response_headers`).
_PLAIN_CONNECTION = frozenset({b"keep-alive", b"close", b"keep-alive, close", b"close, keep-alive"})
# Fields whose presence spares the answer one of aiohttp's defaults.
_CONTENT_TYPE, _DATE, _SERVER_FIELD = b"content-type", b"date", b"server"
_DEFAULTED = frozenset({_CONTENT_TYPE, _DATE, _SERVER_FIELD})


def whole_answer(
    version: tuple[int, int],
    status: int,
    reason: bytes,
    raw: Sequence[tuple[bytes, bytes]],
    body: bytes,
    added: Sequence[tuple[str, str]],
) -> Whole | None:
    """An upstream's answer, read whole, as `send_whole` would write its `web.Response`: the
    upstream's fields less the hop-by-hop ones and its Content-Length, then ``added``. None when
    the client's version is neither 1.0 nor 1.1, the upstream's Connection names fields to drop,
    or it sent a field ``added`` replaces (the caller builds the `web.Response`)."""
    if version == (1, 1):
        line = b"HTTP/1.1 %d %s\r\n"
    elif version == (1, 0):
        line = b"HTTP/1.0 %d %s\r\n"
    else:
        return None
    extra, replaced = _added(added) if added else (b"", ())
    parts = [line % (status, reason or REASON_PHRASES.get(status, "").encode())]
    defaulted: set[bytes] = set()
    for name, value in raw:
        lower = name.lower()
        if lower in _NOT_PASSED:
            if lower == b"connection" and value.lower() not in _PLAIN_CONNECTION:
                return None
            continue
        if lower in replaced:
            return None
        if lower in _DEFAULTED:
            defaulted.add(lower)
        parts.append(b"%s: %s\r\n" % (name, value))
    if extra:
        parts.append(extra)
    return Whole(
        status, b"".join(parts), body, typed=_CONTENT_TYPE in defaulted or not body,
        date=_DATE not in defaulted, server=_SERVER_FIELD not in defaulted,
    )  # fmt: skip


_SENT: dict[tuple[int, bool], web.StreamResponse] = {}


def _sent(status: int, keep_alive: bool) -> web.StreamResponse:
    """A finished response, for aiohttp to read after the handler: its status and whether the
    connection stays open. Shared: it holds nothing of any request."""
    response = _SENT.get((status, keep_alive))
    if response is None:
        response = web.StreamResponse(status=status)
        response._keep_alive = keep_alive
        response._eof_sent = True  # aiohttp's prepare and write_eof return at once
        _SENT[(status, keep_alive)] = response
    return response


async def send(request: web.BaseRequest, whole: Whole, *, close: bool) -> web.StreamResponse:
    """Write ``whole`` in one transport write (``close``: end the connection after it) and
    return the finished response for aiohttp. A connection already going away gets nothing,
    as `send_whole` leaves it to aiohttp, whose write then fails."""
    transport = request.transport
    if transport is None or transport.is_closing():
        return _sent(whole.status, False)
    keep_alive = not close and request.keep_alive
    version = request.version
    if keep_alive:
        ending = _KEEP_ALIVE_10 if version == (1, 0) else _END
    else:
        ending = _CLOSE_11 if version == (1, 1) else _END
    body = whole.body
    # The fields, in `send_whole`'s order and by its rules, that depend on the moment.
    data = b"%sContent-Length: %d\r\n%s%s%s%s" % (
        whole.head,
        len(body),
        b"" if whole.typed else _DEFAULT_TYPE,
        _date_field() if whole.date else b"",
        _SERVER if whole.server else b"",
        ending,
    )
    if request.method != "HEAD":  # a HEAD answer keeps the length of the body it leaves out
        data += body
    transport.write(data)
    writer = request.writer
    writer.output_size += len(data)
    # aiohttp's own flow control, as for any response. With nothing left in the transport's
    # buffer (the usual case for an answer this size) writing cannot be paused: the transport
    # pauses its protocol only above its high-water mark. The drain, a coroutine and a Python
    # call, was 2 % of a refusal.
    if transport.get_write_buffer_size():
        try:
            await writer.drain()
        except ConnectionError as error:  # the client left before it took the answer
            drop_tracebacks(error)
            keep_alive = False
    return _sent(whole.status, keep_alive)


_date: list[Any] = [-1, b""]  # the last whole second, and its Date field


def _date_field() -> bytes:
    """The ``Date`` field as aiohttp writes it (its `rfc822_formatted_time`), made once a second
    (calling aiohttp's function, itself cached per second, was a Python call per answer)."""
    second = int(time.time())
    if second != _date[0]:
        _date[:] = [second, b"Date: %s\r\n" % helpers.rfc822_formatted_time().encode()]
    field: bytes = _date[1]
    return field


class KeptBytesResponse(web.StreamResponse):
    """A streamed answer whose head keeps the upstream's bytes.

    Its fields come decoded as UTF-8 with ``surrogateescape`` (`response_headers`), so a byte
    that is not UTF-8 is a lone surrogate, which aiohttp's serializer drops. This head is
    serialized the same way (``name: value`` lines, the same refusal of CR or LF, counted) but
    encoded back with ``surrogateescape``: the bytes that came. aiohttp still decides the
    framing and adds its fields first (`_prepare_headers`); only the writing differs.
    """

    async def _write_headers(self) -> None:
        # Override: `StreamResponse._write_headers` serializes into the writer's private
        # `_headers_buf`, which `send_headers` (or the first body write) sends.
        request, writer = self._req, self._payload_writer
        assert request is not None
        if not isinstance(writer, http_writer.StreamWriter) or writer._on_headers_sent is not None:
            await super()._write_headers()  # another writer, or a signal that reads the fields
            return
        version = request.version
        status_line = f"HTTP/{version[0]}.{version[1]} {self._status} {self._reason}"
        writer._headers_buf = serialize_head(status_line, self._headers.items())
        writer._headers_written = False
        if self._send_headers_immediately:
            writer.send_headers()


def serialize_head(status_line: str, fields: Iterable[tuple[str, str]]) -> bytes:
    """A response head as aiohttp's serializer writes it (``name: value`` lines; a CR or LF in
    the status line, a name or a value refused with ValueError, here by counting them), but
    with every value encoded back with ``surrogateescape``: fields decoded that way from the
    upstream's bytes (`response_headers`) are written as the bytes that came, where aiohttp's
    serializer drops the ones that are not UTF-8."""
    lines = [status_line, *map(": ".join, fields)]
    head = "\r\n".join(lines) + "\r\n\r\n"
    if head.count("\r") != len(lines) + 1 or head.count("\n") != len(lines) + 1:
        raise ValueError("Forbidden control character detected in headers")
    return head.encode("utf-8", "surrogateescape")
