"""Structured JSON output: one object per line on stdout, for every event the gateway prints.

`configure` sets structlog (and the standard library's root logger, where aiohttp and asyncio
write) to render JSON lines. Every line starts with ``@timestamp``, ``log.level``,
``event.action``, ``ecs.version`` and ``process.pid``; the fields a line may carry are listed in
`gateway.server.log_fields`. The access line's fields are built in `gateway.server.access`.
"""

from __future__ import annotations

import collections
import logging
import os
import re
import sys
import time
from collections.abc import MutableMapping
from datetime import datetime
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, ClassVar, TextIO

import orjson
import structlog

from gateway.server.log_fields import ECS_VERSION

if TYPE_CHECKING:
    import asyncio

__all__ = [
    "batch_lines",
    "configure",
    "get_logger",
    "now_rfc3339",
    "process_id",
    "rfc3339",
    "rfc3339_ns",
    "write_line",
]

_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}


def _timestamp(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    if "@timestamp" not in event:
        event["@timestamp"] = now_rfc3339()
    return event


_LINE_BREAKERS = re.compile("[\u0085\u2028\u2029\x1c-\x1e]")
_SURROGATE = re.compile(r"[\ud800-\udfff]")
_second: list[Any] = [-1, ""]  # the last whole second formatted, and its text
# ".000Z" to ".999Z": a lookup, where formatting the number cost 2,500 instructions a line.
_MILLISECONDS = tuple(f".{millisecond:03d}Z" for millisecond in range(1000))


def now_rfc3339() -> str:
    """The current UTC time as RFC 3339 with milliseconds."""
    nanoseconds = time.time_ns()
    return _format(nanoseconds // 1_000_000_000, nanoseconds // 1_000_000 % 1000)


def _format(second: int, millisecond: int) -> str:
    # Formatting the whole second is most of the cost; it is cached for the next call.
    if second != _second[0]:
        _second[:] = [second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))]
    text: str = _second[1]
    return text + _MILLISECONDS[millisecond]


def _dumps(value: Any, **_: Any) -> str:
    """orjson; a value holding lone surrogates (bytes of a header that are not UTF-8, which
    Python keeps as U+DC80..U+DCFF) is written with them spelled out as text first."""
    try:
        data = orjson.dumps(value, default=str)
    except TypeError:
        data = orjson.dumps(_spelled_out(value), default=str)
    text = data.decode()
    # Unicode line separators are valid JSON but split the line for `splitlines` readers. They
    # are never ASCII (JSON escapes the control characters among them), and an ASCII test is
    # far cheaper than the search over every line.
    if not data.isascii() and _LINE_BREAKERS.search(text):
        text = _LINE_BREAKERS.sub(lambda match: f"\\u{ord(match.group()):04x}", text)
    return text


def _spelled_out(value: Any) -> Any:
    """``value`` with every lone surrogate written as ``\\xNN`` (the byte it stands for) or
    ``\\uNNNN``: JSON may escape a lone surrogate, but strict parsers (serde_json, which Vector
    uses) refuse the whole line, and a client must not be able to keep its line out of the
    pipeline with one stray byte."""
    if isinstance(value, str):
        return _SURROGATE.sub(_spell, value)
    if isinstance(value, dict):
        return {key: _spelled_out(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_spelled_out(item) for item in value]
    return value


def _spell(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code - 0xDC00:02x}" if 0xDC80 <= code <= 0xDCFF else f"\\u{code:04x}"


def _ecs_fields(_: Any, method: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """Rename structlog's keys to ECS names and put the common fields first."""
    head = {
        "@timestamp": event.pop("@timestamp", None),
        "log.level": event.pop("log.level", None) or event.pop("level", method),
        "event.action": event.pop("event.action", None) or event.get("event"),
        "ecs.version": event.pop("ecs.version", ECS_VERSION),
        "process.pid": event.pop("process.pid", _Output.pid),
    }
    event.pop("level", None)
    event.pop("event", None)
    if "exception" in event:
        event["error.stack_trace"] = event.pop("exception")
    return {**head, **event}


def rfc3339(moment: datetime) -> str:
    """A moment as RFC 3339 UTC with milliseconds (the per-second text is cached)."""
    return _format(int(moment.timestamp()), moment.microsecond // 1000)


def rfc3339_ns(nanoseconds: int) -> str:
    """A `time.time_ns` value as RFC 3339 UTC with milliseconds."""
    return _format(nanoseconds // 1_000_000_000, nanoseconds // 1_000_000 % 1000)


class _Output:
    """Where `write_line` writes: the stream structlog prints to, and whether info is logged."""

    stream: ClassVar[TextIO | None] = None  # None: sys.stdout at the time of writing
    info_enabled: ClassVar[bool] = True
    # set again by `configure`: each worker process configures its own
    pid: ClassVar[int] = os.getpid()


def process_id() -> int:
    """The pid every line carries as ``process.pid`` (which worker wrote it)."""
    return _Output.pid


def write_line(fields: dict[str, Any]) -> None:
    """Write one info-level event that is already in its final shape (``@timestamp``,
    ``log.level``, ``event.action``, ``ecs.version`` and ``process.pid`` first) as a JSON line,
    without structlog's processors: what structlog would print for the same fields, on the same
    stream, flushed. The access log's hot path (one dict, one dumps, one write).

    While a serving loop batches (`batch_lines`), the first line of a turn of the loop is
    written at once and the others of that turn together when it ends."""
    if not _Output.info_enabled:
        return
    line = _dumps(fields)
    if _Turn.open:
        _Turn.lines.append(line)
        return
    _write(line)
    loop = _Turn.loop
    if loop is not None:
        _Turn.open = True
        loop.call_soon(_end_turn)


# What one write(2) may carry to stay whole when several workers write to one pipe: POSIX
# keeps writes of up to PIPE_BUF bytes (4096 on Linux) from interleaving with others.
_ATOMIC_WRITE = 4096


class _Turn:
    """The access lines of the current turn of the serving loop after its first (`batch_lines`).

    Under load a turn answers many requests (about twenty at 50 connections on one core), and
    a write per line was a system call per request, and on a pipe to a log shipper a wake-up of
    the reader per request."""

    loop: ClassVar[asyncio.AbstractEventLoop | None] = None
    open: ClassVar[bool] = False  # a line was written in this turn; `_end_turn` is scheduled
    # A deque: its append and popleft are atomic, so an event written from another thread
    # (a config reload's `load` runs in one) writes what is pending without losing a line.
    lines: ClassVar[collections.deque[str]] = collections.deque()


def batch_lines(loop: asyncio.AbstractEventLoop | None) -> None:
    """From now on, write the access lines of each turn of ``loop`` after its first together
    when the turn ends; None writes what is pending and stops batching."""
    _Turn.loop = loop
    _Turn.open = False
    _write_pending()


def _end_turn() -> None:
    _Turn.open = False
    _write_pending()


def _write_pending() -> None:
    lines = _Turn.lines
    if not lines:
        return
    stream = _Output.stream or sys.stdout
    chunk: list[str] = []
    size = 0
    while lines:
        line = lines.popleft()
        length = (len(line) if line.isascii() else len(line.encode())) + 1
        if chunk and size + length > _ATOMIC_WRITE:
            stream.write("\n".join(chunk) + "\n")
            stream.flush()
            chunk, size = [], 0
        chunk.append(line)
        size += length
    if chunk:  # another thread may have written the rest
        stream.write("\n".join(chunk) + "\n")
        stream.flush()


def _write(line: str) -> None:
    # One write per line, newline included: stdout is unbuffered in the image
    # (PYTHONUNBUFFERED), and with --workers N every worker writes to the same stdout, so a
    # newline written separately lets another worker's line land in the middle of this one.
    if _Turn.lines:
        _write_pending()  # lines keep their order
    stream = _Output.stream or sys.stdout
    stream.write(line + "\n")
    stream.flush()


# structlog's output: each rendered event through `_write` (structlog's PrintLogger prints the
# newline as a second write), on the stream of the moment (tests swap stdout). structlog calls the
# method named after the level.
_LINE_LOGGER = SimpleNamespace(
    **dict.fromkeys(
        ("msg", "log", "debug", "info", "warn", "warning", "fatal", "failure", "err", "error",
         "critical", "exception"),
        _write,
    )
)  # fmt: skip


def _line_logger(*_: Any) -> SimpleNamespace:
    return _LINE_LOGGER


def configure(level: str = "info", stream: TextIO | None = None) -> None:
    """Render every event, ours and the standard library's, as one JSON object per line."""
    numeric = _LEVELS[level]
    output = stream or sys.stdout
    # Like structlog's PrintLogger: standard output is looked up when writing (tests swap it).
    _Output.stream = None if output is sys.stdout else output
    _Output.info_enabled = numeric <= logging.INFO
    _Output.pid = os.getpid()
    shared: list[Any] = [
        structlog.stdlib.add_log_level,
        _timestamp,
        structlog.processors.format_exc_info,
    ]
    structlog.configure(
        processors=[*shared, _ecs_fields, structlog.processors.JSONRenderer(serializer=_dumps)],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=_line_logger,
        cache_logger_on_first_use=False,
    )
    handler = logging.StreamHandler(output)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[*shared, _foreign_record],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                _ecs_fields,
                structlog.processors.JSONRenderer(serializer=_dumps),
            ],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(numeric)
    # aiohttp's own access log would be a second, unstructured line per request.
    logging.getLogger("aiohttp.access").disabled = True
    logging.captureWarnings(True)


def _foreign_record(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """A standard-library record (aiohttp, asyncio, warnings): its text becomes ``message``."""
    record = event.get("_record")
    if record is not None:
        event["log.logger"] = record.name
        event["message"] = event.pop("event", "")
        event["event"] = "log"
    return event


def get_logger(**bound: Any) -> Any:
    """A structlog logger, optionally with bound context."""
    return structlog.get_logger(**bound)
