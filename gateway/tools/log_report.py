"""`gateway log summary`, the I/O part: read log files (plain or gzip) or stdin into a
`LogTally`, with a progress bar on large inputs, and print a `Summary` as tables.

Log values are data from the network (route patterns are the operator's, but client ids and
subjects come from tokens): they are shown as plain text, never as rich markup, with control
characters escaped so that no line can drive the terminal.
"""

from __future__ import annotations

import gzip
import io
import os
import re
import sys
import zlib
from collections.abc import Iterable, Iterator, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import IO, TextIO

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from gateway.tools.log_summary import FORGED_REASONS, Client, LogTally, Summary

__all__ = ["PROGRESS_MIN_BYTES", "read_logs", "render"]

# Below this much input the summary is printed before a progress bar would be worth drawing.
PROGRESS_MIN_BYTES = 8 * 1024 * 1024
_GZIP_MAGIC = b"\x1f\x8b"
_PROGRESS_EVERY = 4096  # lines between progress updates (a bar update costs microseconds)
_UNSAFE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def read_logs(
    tally: LogTally, paths: Sequence[Path], *, stdin: IO[bytes] | None = None
) -> list[str]:
    """Count every line of ``paths`` (``-`` is ``stdin``) into ``tally``; the warnings to show.

    A file that cannot be opened raises `OSError`; compressed data that ends early or is corrupt
    is a warning, and the lines before it still count.
    """
    warnings: list[str] = []
    sizes = [_size(path) for path in paths]
    total = sum(size for size in sizes if size is not None)
    show = sys.stderr.isatty() and total >= PROGRESS_MIN_BYTES
    with ExitStack() as stack:
        progress: Progress | None = None
        task: TaskID | None = None
        if show:
            progress = stack.enter_context(
                Progress(
                    TextColumn("[progress.description]{task.description}"),
                    BarColumn(),
                    DownloadColumn(),
                    TimeRemainingColumn(),
                    console=Console(file=sys.stderr),
                    transient=True,
                )
            )
            task = progress.add_task("reading logs", total=total)
        done = 0
        for path in paths:
            with ExitStack() as files:
                raw = (stdin or sys.stdin.buffer) if str(path) == "-" else None
                if raw is None:
                    raw = files.enter_context(path.open("rb"))
                name = "stdin" if str(path) == "-" else str(path)
                for position in _count_lines(tally, raw, name, warnings):
                    if progress is not None and task is not None:
                        progress.update(task, completed=done + position)
                size = _size(path)
                done += size or 0
    return warnings


def _size(path: Path) -> int | None:
    if str(path) == "-":
        return None
    try:
        return os.stat(path).st_size
    except OSError:
        return None  # reported when the file is opened


def _count_lines(tally: LogTally, raw: IO[bytes], name: str, warnings: list[str]) -> Iterator[int]:
    """Count ``raw``'s lines, yielding now and then how far into the raw bytes it is."""
    source: IO[bytes] = raw
    peek = getattr(raw, "peek", None)
    head = peek(2)[:2] if peek is not None else b""
    if len(head) < 2:
        # A pipe may have a single byte ready: read the two, then put them back in front.
        head = raw.read(2)
        source = io.BufferedReader(_Rejoined(head, raw))
    stream: Iterable[bytes] = source
    if head == _GZIP_MAGIC:
        stream = gzip.GzipFile(fileobj=source, mode="rb")
    count = 0
    try:
        for line in stream:
            tally.add_line(line)
            count += 1
            if count % _PROGRESS_EVERY == 0:
                yield _tell(raw)
    except (EOFError, OSError, zlib.error) as exc:
        warnings.append(
            f"{name}: the compressed data ends early or is corrupt after {count} lines "
            f"({exc}); the rest is not counted"
        )
    yield _tell(raw)


class _Rejoined(io.RawIOBase):
    """``head`` (bytes already read from ``rest``) followed by the rest of ``rest``."""

    def __init__(self, head: bytes, rest: IO[bytes]) -> None:
        self._head = head
        self._rest = rest

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        if self._head:
            size = min(len(buffer), len(self._head))
            buffer[:size] = self._head[:size]
            self._head = self._head[size:]
            return size
        data = self._rest.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def _tell(raw: IO[bytes]) -> int:
    try:
        return raw.tell()
    except OSError:
        return 0  # a pipe


def _safe(value: str | None) -> Text:
    if value is None:
        return Text("-", style="dim")
    return Text(_UNSAFE.sub(lambda m: f"\\x{ord(m.group()):02x}", value))


def _reasons(reasons: dict[str, int]) -> Text:
    return _safe(", ".join(f"{reason} {count}" for reason, count in reasons.items()))


def _client_cells(client: Client) -> list[Text]:
    return [_safe(client.client_id), _safe(client.user_id), _safe(client.client_ip)]


def _moment(value: object) -> str:
    return str(value) if value is not None else "-"


def render(summary: Summary, out: TextIO) -> None:
    """Print the summary as tables (plain text when ``out`` is not a terminal)."""
    console = Console(file=out, highlight=False)
    data = summary.as_json()
    window = data["window"]
    lines = summary.lines
    console.print(
        Text(
            f"window: {_moment(window['since'])} .. {_moment(window['until'])} "
            f"(newest line {_moment(window['newest_line'])})\n"
            f"lines: {lines['read']} read, {lines['access']} access, {lines['in_window']} in the "
            f"window, {lines['other_events']} other events, {lines['bad']} not readable"
        )
    )

    routes = Table(title="Requests by route", title_justify="left")
    for heading in ("route", "requests", "allowed", "public", "denied", "would deny", "statuses"):
        routes.add_column(heading, justify="left" if heading in ("route", "statuses") else "right")
    for row in summary.routes:
        statuses = ", ".join(f"{status} {count}" for status, count in row.statuses.items())
        routes.add_row(
            _safe(row.route), str(row.requests), str(row.allowed), str(row.public),
            str(row.denied), str(row.would_deny), Text(statuses),
        )  # fmt: skip
    console.print(routes)

    refusals = Table(title="Refusals by route and reason", title_justify="left")
    for heading, justify in (("route", "left"), ("reason", "left"), ("refusals", "right")):
        refusals.add_column(heading, justify=justify)  # type: ignore[arg-type]
    for row in summary.routes:
        for reason, count in row.refusals.items():
            refusals.add_row(_safe(row.route), _safe(reason), str(count))
    console.print(refusals if refusals.row_count else Text("No refusals in the window."))

    clients = Table(title="Clients refused most", title_justify="left")
    for heading in ("client id", "user.id", "client.ip", "refusals", "reasons"):
        clients.add_column(heading, justify="right" if heading == "refusals" else "left")
    for refused in summary.top_refused:
        clients.add_row(*_client_cells(refused.client), str(refused.refusals),
                        _reasons(refused.reasons))  # fmt: skip
    if clients.row_count:
        console.print(clients)

    reasons = ", ".join(sorted(FORGED_REASONS))
    title = f"Forged-token bursts (>= {summary.burst_threshold} per minute of {reasons})"
    if summary.bursts:
        bursts = Table(title=title, title_justify="left")
        for heading in ("minute", "refusals", "clients", "reasons"):
            bursts.add_column(heading, justify="right" if heading != "reasons" else "left")
        for burst in summary.bursts:
            minute = burst.minute.strftime("%Y-%m-%dT%H:%MZ")
            bursts.add_row(minute, str(burst.count), str(burst.clients), _reasons(burst.reasons))
        console.print(bursts)
    else:
        console.print(Text(f"{title}: none."))

    if not summary.would_deny:
        console.print(Text("Report mode: no request would be refused under enforce."))
        return
    would = Table(title="Report mode: clients enforce would refuse, and why", title_justify="left")
    for heading in ("route", "client id", "user.id", "client.ip", "requests", "reasons"):
        would.add_column(heading, justify="right" if heading == "requests" else "left")
    for route, route_clients in summary.would_deny.items():
        for client in route_clients:
            would.add_row(_safe(route), *_client_cells(client.client), str(client.requests),
                          _reasons(client.reasons))  # fmt: skip
    console.print(would)
