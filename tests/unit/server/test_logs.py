"""Every line the gateway prints is one JSON object with ECS field names."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import re
from datetime import UTC, datetime

import pytest

from gateway.server.access import AccessEntry, RequestRecord, access_record
from gateway.server.logs import (
    batch_lines,
    configure,
    get_logger,
    rfc3339,
    rfc3339_ns,
    write_line,
)

# The contract's access fields, the gateway's own moved under gateway.* (ECS, issue 15), and the
# two every line carries.
SPEC_FIELDS = {
    "@timestamp", "log.level", "event.action", "ecs.version", "process.pid", "http.request.id",
    "client.ip", "http.request.method", "url.path", "gateway.route", "http.response.status_code",
    "event.duration", "gateway.upstream.name", "gateway.upstream.duration",
    "http.request.body.bytes", "http.response.body.bytes", "user_agent.original", "user.id",
    "gateway.client.id", "gateway.auth.result", "gateway.auth.reason",
}  # fmt: skip


def _entry(**overrides: object) -> AccessEntry:
    values: dict[str, object] = {
        "started": datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC),
        "duration_ns": 1500,
        "request_id": "abc",
        "client_ip": "127.0.0.1",
        "method": "GET",
        "path": "/orders/1",
        "route": "/orders",
        "status": 200,
        "upstream": "orders",
        "upstream_duration_ns": 1000,
        "request_bytes": 0,
        "response_bytes": 10,
        "user_agent": "curl",
        "user_id": "alice",
        "client_id": None,
        "auth_result": "allowed",
        "auth_reason": None,
    }
    values.update(overrides)
    return AccessEntry(**values)  # type: ignore[arg-type]


def test_access_record_has_exactly_the_spec_fields() -> None:
    """The access record carries the spec's field names, an RFC 3339 UTC timestamp, and no query."""
    record = access_record(_entry())
    # Beyond the spec: the trace ids (null with tracing off, and below the door).
    assert set(record) == SPEC_FIELDS | {"trace.id", "span.id"}
    assert (record["trace.id"], record["span.id"]) == (None, None)
    assert record["@timestamp"] == "2026-01-02T03:04:05.678Z"
    assert record["event.action"] == "access"


@pytest.mark.parametrize(
    ("user_agent", "logged"),
    [
        ('x","user.id":"admin', None),
        ("back\\slash", None),
        ("bytes\udcff\udcfe", "bytes\\xff\\xfe"),
        ("a lone \ud800 surrogate", "a lone \\ud800 surrogate"),
        ("new\nline", None),
        ("\x00", None),
    ],
    ids=["quote-injection", "backslash", "undecodable-bytes", "lone-surrogate", "newline", "nul"],
)
def test_hostile_values_stay_one_valid_json_line(user_agent: str, logged: str | None) -> None:
    """Quotes, backslashes, newlines and undecodable bytes in a logged value stay inside its
    JSON string: one line, valid JSON, no injected field. Bytes that are not UTF-8 (lone
    surrogates in Python) are spelled out as text, never as a surrogate escape that strict
    parsers (serde_json, in Vector) refuse."""
    stream = io.StringIO()
    configure("info", stream)
    try:
        get_logger().info("access", **access_record(_entry(user_agent=user_agent)))
    finally:
        configure("info")
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1
    assert re.search(r"(?<!\\)\\u[dD][89a-fA-F]", lines[0]) is None  # no surrogate escape
    parsed = json.loads(lines[0])
    assert parsed["user.id"] == "alice"
    assert parsed["user_agent.original"] == (user_agent if logged is None else logged)


def test_standard_library_logs_and_tracebacks_are_json() -> None:
    """Records from aiohttp/asyncio loggers become JSON with `message`, `log.logger` and the
    traceback in `error.stack_trace`."""
    stream = io.StringIO()
    configure("info", stream)
    try:
        try:
            raise RuntimeError("boom")
        except RuntimeError:
            logging.getLogger("aiohttp.server").exception("Error handling request")
        logging.getLogger("asyncio").debug("filtered by level")
    finally:
        configure("info")
    (line,) = [json.loads(text) for text in stream.getvalue().splitlines()]
    assert line["log.logger"] == "aiohttp.server"
    assert line["message"] == "Error handling request"
    assert line["log.level"] == "error"
    assert "RuntimeError: boom" in line["error.stack_trace"]


def test_level_filters_structlog_events() -> None:
    """`logging.level: warning` drops info events."""
    stream = io.StringIO()
    configure("warning", stream)
    try:
        get_logger().info("startup")
        get_logger().warning("jwks_fetch_failed", **{"gateway.jwks.issuer": "idp"})
    finally:
        configure("info")
    (line,) = [json.loads(text) for text in stream.getvalue().splitlines()]
    assert line["event.action"] == "jwks_fetch_failed"


def test_the_door_writes_the_same_access_line_as_structlog_would() -> None:
    """The door's access line (record fields, written without structlog) is byte for byte the
    line structlog prints for `access_record` of the same request."""
    entry = _entry(user_agent="bytes\udcff and \u2028 separator")
    record = RequestRecord(
        request_id="abc", path="/orders/1", route="/orders", upstream="orders",
        upstream_ns=1000, response_bytes=10, user_id="alice", auth_result="allowed",
    )  # fmt: skip
    fields = record.access_fields(
        timestamp="2026-01-02T03:04:05.678Z", duration_ns=1500, client_ip="127.0.0.1",
        method="GET", status=200, user_agent=entry.user_agent,
    )  # fmt: skip
    assert list(fields.items()) == list(access_record(entry).items())
    direct, through_structlog = io.StringIO(), io.StringIO()
    configure("info", direct)
    try:
        write_line(fields)
        configure("info", through_structlog)
        get_logger().info("access", **access_record(entry))
    finally:
        configure("info")
    assert direct.getvalue() == through_structlog.getvalue()
    configure("warning", direct)
    try:
        write_line(fields)
    finally:
        configure("info")
    assert direct.getvalue() == through_structlog.getvalue()


class _Writes(io.StringIO):
    """A stream that remembers each write call."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[str] = []

    def write(self, text: str) -> int:
        self.calls.append(text)
        return super().write(text)


def test_every_line_is_one_write_with_its_newline() -> None:
    """Each event reaches the stream as a single write ending in its newline (the access line,
    structlog's events and standard-library records alike): with unbuffered stdout shared by
    several workers, a newline written on its own lets another worker's line in between."""
    stream = _Writes()
    configure("info", stream)
    try:
        write_line(access_record(_entry()))
        get_logger().info("startup", **{"gateway.config.version": "abc"})
        get_logger().error("startup_failed", **{"error.message": "port taken"})
        logging.getLogger("aiohttp.server").warning("Error handling request")
    finally:
        configure("info")
    assert len(stream.calls) == 4
    assert all(call.endswith("\n") and call.count("\n") == 1 for call in stream.calls)
    assert all(json.loads(call)["ecs.version"] for call in stream.calls)


def _lines_of_one_turn(count: int, user_agent: str = "wrk") -> _Writes:
    """``count`` access lines written in one turn of a loop that batches, then one more turn."""
    stream = _Writes()
    configure("info", stream)

    async def one_turn() -> None:
        batch_lines(asyncio.get_running_loop())
        for index in range(count):
            write_line(access_record(_entry(request_id=str(index), user_agent=user_agent)))
        assert len(stream.calls) == 1  # the turn's first line, at once
        await asyncio.sleep(0)  # the turn ends
        await asyncio.sleep(0)

    try:
        asyncio.run(one_turn())
    finally:
        batch_lines(None)
        configure("info")
    return stream


def test_the_lines_of_one_turn_after_its_first_are_written_together() -> None:
    """Under load one turn of the loop answers many requests: the first line is written at
    once, the rest when the turn ends, in their order, as few writes of whole lines."""
    stream = _lines_of_one_turn(3)
    assert len(stream.calls) == 2
    assert [json.loads(line)["http.request.id"] for line in stream.getvalue().splitlines()] == [
        "0", "1", "2",
    ]  # fmt: skip
    assert stream.calls[1].count("\n") == 2


@pytest.mark.parametrize("user_agent", ["wrk", "\u00e9\u6f22\u5b57" * 100])
def test_a_batched_write_is_whole_lines_of_at_most_pipe_buf_bytes(user_agent: str) -> None:
    """Several workers share one stdout: a write of up to PIPE_BUF (4096) bytes to a pipe is
    never interleaved with another's, so each write of a batch stays under it (counted in
    bytes: a User-Agent outside ASCII takes up to four a character) and ends a line."""
    stream = _lines_of_one_turn(60, user_agent)
    batched = stream.calls[1:]
    assert len(batched) > 1
    for call in batched:
        assert len(call.encode()) <= 4096
        assert call.endswith("\n")
        assert all(json.loads(line) for line in call.splitlines())
    assert len(stream.getvalue().splitlines()) == 60


def test_other_events_and_the_end_of_batching_write_what_is_pending_first() -> None:
    """A structlog event comes after the access lines written before it; stopping the batch
    (the server's end) writes what is pending."""
    stream = _Writes()
    configure("info", stream)

    async def turn() -> None:
        batch_lines(asyncio.get_running_loop())
        write_line(access_record(_entry(request_id="first")))
        write_line(access_record(_entry(request_id="pending")))
        get_logger().info("stopped")
        write_line(access_record(_entry(request_id="last")))
        assert "last" not in stream.getvalue()
        batch_lines(None)
        assert "last" in stream.getvalue()

    try:
        asyncio.run(turn())
    finally:
        configure("info")
    events = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [event.get("http.request.id", event["event.action"]) for event in events] == [
        "first", "pending", "stopped", "last",
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("nanoseconds", "text"),
    [
        (0, "1970-01-01T00:00:00.000Z"),
        (1_700_000_000_123_456_789, "2023-11-14T22:13:20.123Z"),
        (1_700_000_000_999_999_999, "2023-11-14T22:13:20.999Z"),
        (1_700_000_001_007_000_000, "2023-11-14T22:13:21.007Z"),
    ],
)
def test_timestamps_are_rfc3339_utc_with_milliseconds(nanoseconds: int, text: str) -> None:
    assert rfc3339_ns(nanoseconds) == text
    moment = datetime.fromtimestamp(nanoseconds // 1_000_000_000, UTC).replace(
        microsecond=nanoseconds // 1000 % 1_000_000
    )
    assert rfc3339(moment) == text
