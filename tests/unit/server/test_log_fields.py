"""Every key the gateway can log is an ECS field or sits under ``gateway.``, with one type.

Three views cover "every key": the source (each structlog call site, read with `ast`: its event
name and field names), the access line (built in one place, `RequestRecord.access_fields`), and
the lines themselves (the autouse `log_capture` fixture holds every line of every test to the
catalogue, values included; the subprocess tests do the same for `gateway run`'s output).
"""

from __future__ import annotations

import ast
import io
import json
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from gateway.server.access import RequestRecord
from gateway.server.log_fields import (
    ACCESS_FIELDS,
    ECS_FIELDS,
    ECS_VERSION,
    FIELDS,
    GATEWAY_FIELDS,
    NAMESPACE,
    matches_type,
)
from gateway.server.logs import configure, get_logger
from tests.support import log_line_problems

ROOT = Path(__file__).resolve().parents[3]
PACKAGE = ROOT / "gateway"
_LEVELS = frozenset({"debug", "info", "warning", "error", "exception", "critical"})


@dataclass(frozen=True)
class LogCall:
    """One structlog call in the source: where, which event, which fields."""

    where: str
    event: str | None
    fields: tuple[str, ...]
    problems: tuple[str, ...]


def _is_log_call(node: ast.Call) -> bool:
    func = node.func
    if isinstance(func, ast.Name):  # `log = _log.info if ... else _log.debug; log(...)`
        return func.id == "log"
    if not isinstance(func, ast.Attribute) or func.attr not in _LEVELS:
        return False
    target = func.value
    if isinstance(target, ast.Name):
        return target.id in {"_log", "log"}
    return isinstance(target, ast.Call) and getattr(target.func, "id", None) == "get_logger"


def _log_calls() -> list[LogCall]:
    calls = []
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call) or not _is_log_call(node):
                continue
            where = f"{path.relative_to(ROOT)}:{node.lineno}"
            event = None
            if node.args and isinstance(node.args[0], ast.Constant):
                event = str(node.args[0].value)
            fields: list[str] = []
            problems: list[str] = []
            for keyword in node.keywords:
                if keyword.arg == "exc_info":
                    continue
                if keyword.arg is not None:
                    problems.append(f"plain keyword {keyword.arg!r} (not a catalogue name)")
                elif isinstance(keyword.value, ast.Dict):
                    for key in keyword.value.keys:
                        if isinstance(key, ast.Constant) and isinstance(key.value, str):
                            fields.append(key.value)
                        else:
                            problems.append("a field name that is not a string literal")
                else:
                    problems.append("** of something other than a dict literal")
            calls.append(LogCall(where, event, tuple(fields), tuple(problems)))
    return calls


LOG_CALLS = _log_calls()


def test_the_scan_finds_the_log_calls() -> None:
    """The scan sees the call sites (a scan that found none would pass everything)."""
    events = {call.event for call in LOG_CALLS}
    assert {
        "startup",
        "config_reload",
        "jwks_fetched",
        "upstream_failed",
        "worker_exited",
    } <= events
    assert len(LOG_CALLS) > 30


@pytest.mark.parametrize("call", LOG_CALLS, ids=[call.where for call in LOG_CALLS])
def test_every_log_call_names_catalogued_fields(call: LogCall) -> None:
    """Each call site names its event with a literal and its fields with catalogue names."""
    assert call.event is not None, call
    assert re.fullmatch(r"[a-z_]+", call.event), call
    assert not call.problems, call
    assert [name for name in call.fields if name not in FIELDS] == [], call


def test_every_gateway_field_is_namespaced_and_no_key_is_an_object_elsewhere() -> None:
    """Our fields are all under ``gateway.``; ECS fields are not; and no field is the prefix of
    another (a key that is a value in one line and an object in another is a mapping conflict)."""
    assert all(name.startswith(f"{NAMESPACE}.") for name in GATEWAY_FIELDS)
    assert not any(name.startswith(f"{NAMESPACE}.") for name in ECS_FIELDS)
    names = sorted(FIELDS)
    clashes = [(a, b) for a in names for b in names if b.startswith(f"{a}.")]
    assert clashes == []


def test_the_access_line_has_the_catalogue_order_and_types() -> None:
    """The access line's keys are exactly `ACCESS_FIELDS`, in order, each of its type."""
    record = RequestRecord(
        request_id="abc", path="/orders/1", route="/orders", upstream="orders",
        upstream_ns=1000, response_bytes=10, user_id="alice", client_id="cli",
        auth_result="allowed",
    )  # fmt: skip
    fields = record.access_fields(
        timestamp="2026-01-02T03:04:05.678Z", duration_ns=1500, client_ip="127.0.0.1",
        method="GET", status=200, user_agent="curl",
    )  # fmt: skip
    assert tuple(fields) == ACCESS_FIELDS
    assert log_line_problems(fields) == []
    assert fields["ecs.version"] == ECS_VERSION


def test_every_access_field_carries_the_requests_own_value() -> None:
    """Each field of a fully noted request holds that request's value (the line starts from a
    template: a field left out would keep the template's null)."""
    record = RequestRecord(
        request_id="rid", path="/p", route="/r", upstream="up", upstream_ns=11,
        request_bytes=12, response_bytes=13, auth_result="allowed", auth_reason="why",
        user_id="alice", client_id="cli",
    )  # fmt: skip
    record.trace_id, record.span_id = "t" * 32, "s" * 16
    fields = record.access_fields(
        timestamp="2026-01-02T03:04:05.678Z", duration_ns=14, client_ip="10.0.0.1",
        method="PATCH", status=201, user_agent="ua",
    )  # fmt: skip
    assert fields == {
        "@timestamp": "2026-01-02T03:04:05.678Z", "log.level": "info",
        "event.action": "access", "ecs.version": ECS_VERSION, "process.pid": os.getpid(),
        "http.request.id": "rid", "client.ip": "10.0.0.1", "http.request.method": "PATCH",
        "url.path": "/p", "gateway.route": "/r", "http.response.status_code": 201,
        "event.duration": 14, "gateway.upstream.name": "up", "gateway.upstream.duration": 11,
        "http.request.body.bytes": 12, "http.response.body.bytes": 13,
        "user_agent.original": "ua", "user.id": "alice", "gateway.client.id": "cli",
        "gateway.auth.result": "allowed", "gateway.auth.reason": "why",
        "trace.id": "t" * 32, "span.id": "s" * 16,
    }  # fmt: skip


def test_structlog_and_standard_library_lines_carry_the_common_fields() -> None:
    """Our events, aiohttp's records, tracebacks and Python warnings all come out with
    ``ecs.version`` and ``process.pid`` and nothing outside the catalogue."""
    stream = io.StringIO()
    configure("debug", stream)
    try:
        get_logger().info("startup", **{"gateway.config.version": "abc"})
        try:
            raise RuntimeError("boom")
        except RuntimeError:
            get_logger().exception("request_failed", **{"http.request.id": "r1"})
            logging.getLogger("aiohttp.server").exception("Error handling request")
        logging.getLogger("asyncio").warning("slow callback %s", "x")
        # where logging.captureWarnings sends Python warnings (pytest keeps real ones itself)
        logging.getLogger("py.warnings").warning("x.py:1: DeprecationWarning: old")
    finally:
        configure("info")
    lines = [json.loads(text) for text in stream.getvalue().splitlines()]
    assert len(lines) == 5
    assert [log_line_problems(line) for line in lines] == [[]] * 5
    assert "RuntimeError: boom" in lines[1]["error.stack_trace"]
    assert lines[4]["log.logger"] == "py.warnings"


def test_matches_type_reads_values_as_elasticsearch_would() -> None:
    """Arrays hold the item type, null is always fine, a boolean is not a number."""
    assert matches_type(["a", "b"], "keyword")
    assert matches_type(None, "long")
    assert not matches_type(True, "long")
    assert not matches_type("1", "long")
    assert matches_type(1, "float")
    assert not matches_type(1, "keyword")


def _readme_field_table() -> dict[str, str]:
    text = (ROOT / "README.md").read_text()
    section = text.split("### Every field", 1)[1].split("The events (", 1)[0]
    return dict(re.findall(r"^\| `([^`]+)` \| (\w+) \|", section, flags=re.MULTILINE))


def test_the_readme_lists_every_field_with_its_type() -> None:
    """The README's field list is the catalogue: same names, same types."""
    assert _readme_field_table() == dict(FIELDS)


def test_the_readme_names_every_event() -> None:
    """Every event a call site can write is named in the README's field list."""
    text = (ROOT / "README.md").read_text()
    section = text.split("### Every field", 1)[1].split("\n#", 1)[0]
    events = {call.event or "" for call in LOG_CALLS} | {"access", "log"}
    assert sorted(event for event in events if f"`{event}`" not in section) == []
