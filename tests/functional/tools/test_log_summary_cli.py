"""`gateway log summary` as a user runs it: on a gzip file, on stdin, as tables and as JSON, on
lines built by the gateway's own access-log code."""

from __future__ import annotations

import gzip
import io
import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from gateway.server.access import AccessEntry, access_record
from gateway.tools import log_report
from gateway.tools.log_summary import LogTally

T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)


def _entry(seconds: float, **fields: Any) -> str:
    """One access line exactly as the gateway writes it, ``seconds`` after T0."""
    defaults = {"status": 200, "auth_result": "allowed", "client_ip": "10.0.0.1",
                "route": "/orders"}  # fmt: skip
    entry = AccessEntry(
        started=T0 + timedelta(seconds=seconds), request_id="r", method="GET",
        path="/orders/1", **{**defaults, **fields},
    )  # fmt: skip
    return json.dumps(access_record(entry))


def _log_lines() -> list[str]:
    """Two hours of a small gateway: old traffic, then a forged-token burst, a report-mode
    route and some noise."""
    lines = ['{"@timestamp": "2026-03-01T10:00:00.000Z", "event.action": "startup"}']
    lines += [_entry(-3600 + i) for i in range(5)]  # outside --since 30m
    lines += [_entry(-3600, status=401, auth_result="denied", auth_reason="expired")]
    lines += [
        _entry(i, status=401, auth_result="denied", auth_reason="bad_signature",
               client_ip=f"203.0.113.{i % 3}")
        for i in range(25)
    ]  # fmt: skip
    lines += [
        _entry(100, route="/legacy", auth_result="would_deny", auth_reason="missing"),
        _entry(101, route="/legacy", auth_result="would_deny", auth_reason="insufficient_scope",
               client_id="batch", user_id="svc-batch"),
        _entry(102, route="/legacy", auth_result="allowed", client_id="web", user_id="carol"),
    ]  # fmt: skip
    lines += ["this is not JSON", '{"event.action": "config_reload", "result": "applied"}']
    lines += [_entry(120, user_agent="\x1b[31mred\x1b[0m", auth_result="denied",
                     auth_reason="missing", status=401)]  # fmt: skip
    return lines


def _run(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    environ = {**os.environ, "COLUMNS": "160"}
    return subprocess.run(
        [sys.executable, "-m", "gateway", "log", "summary", *args],
        input=stdin, capture_output=True, timeout=60, check=False, env=environ,
    )  # fmt: skip


def _check_json(data: dict[str, Any]) -> None:
    assert data["lines"] == {
        "read": 38, "access": 35, "in_window": 29, "other_events": 2, "bad": 1,
    }  # fmt: skip
    assert data["window"]["since"] == "2026-03-01T11:32:00.000Z"
    assert data["window"]["newest_line"] == "2026-03-01T12:02:00.000Z"
    orders = next(row for row in data["routes"] if row["route"] == "/orders")
    assert orders["refusals"] == {"bad_signature": 25, "missing": 1}
    assert orders["allowed"] == 0
    assert [c["client.ip"] for c in data["top_refused_clients"][:3]] == [
        "203.0.113.0", "203.0.113.1", "203.0.113.2",
    ]  # fmt: skip
    minutes = data["forged_bursts"]["minutes"]
    assert minutes == [{"minute": "2026-03-01T12:00:00.000Z", "count": 25,
                        "reasons": {"bad_signature": 25}, "clients": 3}]  # fmt: skip
    assert data["would_deny"] == [
        {"route": "/legacy", "clients": [
            {"gateway.client.id": None, "user.id": None, "client.ip": "10.0.0.1", "requests": 1,
             "reasons": {"missing": 1}},
            {"gateway.client.id": "batch", "user.id": "svc-batch", "client.ip": "10.0.0.1",
             "requests": 1, "reasons": {"insufficient_scope": 1}},
        ]},
    ]  # fmt: skip


@pytest.mark.slow
def test_gzip_file_as_json(tmp_path: Path) -> None:
    """A gzip file is read as such; --json reports the window, counts, bursts and would-deny
    clients."""
    path = tmp_path / "gateway.log.gz"
    with gzip.open(path, "wt") as out:
        out.write("\n".join(_log_lines()) + "\n")
    result = _run(str(path), "--since", "30m", "--json", "--burst-threshold", "20")
    assert result.returncode == 0, result.stderr
    assert result.stderr == b""
    _check_json(json.loads(result.stdout))


@pytest.mark.slow
def test_stdin_as_json_and_as_tables() -> None:
    """Standard input gives the same JSON; the tables name routes, reasons and clients, and no
    control character from a log line reaches the terminal."""
    data = ("\n".join(_log_lines()) + "\n").encode()
    as_json = _run("--since", "30m", "--json", stdin=data)
    assert as_json.returncode == 0, as_json.stderr
    _check_json(json.loads(as_json.stdout))
    tables = _run("-", "--since", "2026-03-01T11:32:00Z", stdin=gzip.compress(data))
    assert tables.returncode == 0, tables.stderr
    text = tables.stdout.decode()
    for expected in ("Requests by route", "/legacy", "bad_signature 25", "svc-batch",
                     "Forged-token bursts", "2026-03-01T12:00Z", "203.0.113.0"):  # fmt: skip
        assert expected in text, expected
    assert "\x1b" not in text


@pytest.mark.slow
def test_truncated_gzip_warns_and_counts_what_it_read(tmp_path: Path) -> None:
    """A gzip file cut short is a warning on stderr, not a traceback; the lines before the cut
    count."""
    path = tmp_path / "cut.log.gz"
    whole = gzip.compress(("\n".join(_log_lines()) + "\n").encode())
    path.write_bytes(whole[: len(whole) - 12])
    result = _run(str(path), "--json")
    assert result.returncode == 0
    assert b"Traceback" not in result.stderr
    assert b"ends early or is corrupt" in result.stderr
    assert json.loads(result.stdout)["lines"]["read"] > 0


@pytest.mark.slow
def test_user_mistakes(tmp_path: Path) -> None:
    """A missing file is one line and exit 1; a bad --since is a usage error (exit 2); an empty
    window is exit 1."""
    missing = _run(str(tmp_path / "nope.log"))
    assert missing.returncode == 1
    assert missing.stderr.decode().count("\n") == 1
    assert b"nope.log" in missing.stderr
    bad = _run("--since", "yesterday", stdin=b"")
    assert bad.returncode == 2
    assert b"RFC 3339" in bad.stderr
    empty = _run("--since", "2026-03-02T00:00:00Z", "--until", "2026-03-01T00:00:00Z", stdin=b"")
    assert empty.returncode == 1
    assert b"Traceback" not in missing.stderr + bad.stderr + empty.stderr


class _Terminal(io.StringIO):
    """A stderr that says it is a terminal."""

    def isatty(self) -> bool:
        return True


@pytest.mark.slow
@pytest.mark.parametrize("terminal", [True, False])
def test_progress_bar_only_on_a_terminal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, terminal: bool
) -> None:
    """Large inputs draw a progress bar on stderr when it is a terminal, nothing otherwise; the
    count is the same either way."""
    path = tmp_path / "gateway.log"
    path.write_text("\n".join(_log_lines() * 200) + "\n")
    stderr = _Terminal() if terminal else io.StringIO()
    monkeypatch.setattr(sys, "stderr", stderr)
    monkeypatch.setattr(log_report, "PROGRESS_MIN_BYTES", 1024)
    tally = LogTally()
    assert log_report.read_logs(tally, [path]) == []
    assert tally.read == 38 * 200
    assert bool(stderr.getvalue()) is terminal
