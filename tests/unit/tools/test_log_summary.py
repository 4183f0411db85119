"""The log summary's pure part: line parsing, window bounds and the aggregation, on hand-written
access lines."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from gateway.tools.log_summary import (
    AccessLine,
    Client,
    LineKind,
    LogTally,
    Window,
    parse_bound,
    parse_line,
)

T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)


def line(
    seconds: float = 0,
    *,
    route: str | None = "/orders",
    status: int = 200,
    result: str = "allowed",
    reason: str | None = None,
    client_id: str | None = None,
    user_id: str | None = None,
    ip: str = "10.0.0.1",
) -> str:
    """An access line as the gateway writes it, ``seconds`` after T0."""
    at = T0 + timedelta(seconds=seconds)
    fields: dict[str, Any] = {
        "@timestamp": at.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "log.level": "info",
        "event.action": "access",
        "http.request.id": "r1",
        "client.ip": ip,
        "http.request.method": "GET",
        "url.path": "/orders/1",
        "gateway.route": route,
        "http.response.status_code": status,
        "event.duration": 1000,
        "gateway.upstream.name": "orders",
        "gateway.upstream.duration": None,
        "http.request.body.bytes": 0,
        "http.response.body.bytes": 0,
        "user_agent.original": "curl/8",
        "user.id": user_id,
        "gateway.client.id": client_id,
        "gateway.auth.result": result,
        "gateway.auth.reason": reason,
    }
    return json.dumps(fields)


def denied(seconds: float, reason: str, **kwargs: Any) -> str:
    """A refused request's line (status 401 unless given)."""
    kwargs.setdefault("status", 403 if reason == "insufficient_scope" else 401)
    return line(seconds, result="denied", reason=reason, **kwargs)


def tally(*lines: str) -> LogTally:
    """A tally of the given lines."""
    counted = LogTally()
    for text in lines:
        counted.add_line(text)
    return counted


# --- parsing ---------------------------------------------------------------------------------


def test_access_line_is_parsed() -> None:
    """An access line yields its time (UTC), route, status, result, reason and client."""
    parsed = parse_line(denied(1.5, "expired", client_id="app", user_id="alice").encode())
    assert parsed == AccessLine(
        at=T0 + timedelta(seconds=1.5),
        route="/orders",
        status=401,
        result="denied",
        reason="expired",
        client=Client("app", "alice", "10.0.0.1"),
    )


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ('{"@timestamp": "2026-03-01T12:00:00.000Z", "event.action": "startup"}',
         LineKind.OTHER_EVENT),
        ('{"event.action": "jwks_fetch_failed", "issuer": "idp"}', LineKind.OTHER_EVENT),
        ("Traceback (most recent call last):", LineKind.BAD),
        ('{"@timestamp": "2026-03-01T12:00:00.000Z", "event.action": "acc', LineKind.BAD),
        ("[1, 2]", LineKind.BAD),
        ('"access"', LineKind.BAD),
        ('{"message": "no event.action"}', LineKind.BAD),
        ('{"event.action": "access", "gateway.auth.result": "allowed"}', LineKind.BAD),
        ('{"event.action": "access", "@timestamp": "yesterday", "gateway.auth.result": "allowed"}',
         LineKind.BAD),
        ('{"event.action": "access", "@timestamp": "2026-03-01T12:00:00",'
         ' "gateway.auth.result": "x"}', LineKind.BAD),
        ('{"event.action": "access", "@timestamp": "2026-03-01T12:00:00Z"}', LineKind.BAD),
        ('{"event.action": "access", "@timestamp": "2026-03-01T12:00:00Z",'
         ' "gateway.auth.result": "a", "http.response.status_code": "200"}', LineKind.BAD),
        ('{"event.action": "access", "@timestamp": "2026-03-01T12:00:00Z",'
         ' "gateway.auth.result": "a", "gateway.client.id": 7}', LineKind.BAD),
        (b"\xff\xfe not utf-8", LineKind.BAD),
    ],
    ids=["startup", "jwks", "not-json", "truncated", "array", "string", "no-action",
         "no-timestamp", "bad-timestamp", "naive-timestamp", "no-result", "status-text",
         "client-number", "bad-bytes"],
)  # fmt: skip
def test_lines_that_are_not_access_lines(text: str | bytes, kind: LineKind) -> None:
    """Other events are told apart from lines that cannot be read; neither raises."""
    assert parse_line(text) is kind


def test_escaped_lone_surrogate_is_read() -> None:
    """A line with an escaped lone surrogate (undecodable header bytes) is still an access line."""
    text = line().replace('"curl/8"', '"\\udcff"')
    assert isinstance(parse_line(text), AccessLine)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90s", timedelta(seconds=90)),
        ("15m", timedelta(minutes=15)),
        ("1h", timedelta(hours=1)),
        ("2d", timedelta(days=2)),
        ("2026-03-01T12:00:00Z", T0),
        ("2026-03-01T14:00:00.500+02:00", T0 + timedelta(milliseconds=500)),
    ],
)
def test_window_bounds(text: str, expected: datetime | timedelta) -> None:
    """A bound is a duration (s, m, h, d) or an RFC 3339 time, normalised to UTC."""
    assert parse_bound(text) == expected


@pytest.mark.parametrize("text", ["yesterday", "1w", "-1h", "2026-03-01T12:00:00", ""])
def test_bad_window_bounds(text: str) -> None:
    """Anything else is refused with a message that shows both accepted forms."""
    with pytest.raises(ValueError, match="RFC 3339"):
        parse_bound(text)


# --- aggregation -----------------------------------------------------------------------------


def test_lines_are_counted_by_kind() -> None:
    """Access lines, other events and unreadable lines are counted apart; blank lines not at
    all."""
    summary = tally(line(), '{"event.action": "startup"}', "garbage", "", "   ", line(1)).summary(
        Window()
    )
    assert summary.lines == {
        "read": 4, "access": 2, "in_window": 2, "other_events": 1, "bad": 1,
    }  # fmt: skip


def test_requests_and_refusals_by_route_and_reason() -> None:
    """Each route's requests are split by auth result and its refusals counted by reason; the
    busiest route comes first."""
    summary = tally(
        line(0),
        line(1),
        denied(2, "expired"),
        denied(3, "expired"),
        denied(4, "insufficient_scope"),
        line(5, route="/health", result="public"),
        line(6, route=None, status=404, result="denied", reason="no_route"),
    ).summary(Window())
    orders, *others = summary.routes
    assert (orders.route, orders.requests, orders.allowed, orders.denied) == ("/orders", 5, 2, 3)
    assert orders.refusals == {"expired": 2, "insufficient_scope": 1}
    assert orders.statuses == {200: 2, 401: 2, 403: 1}
    assert {(row.route, row.public, row.denied) for row in others} == {
        ("/health", 1, 0),
        (None, 0, 1),
    }


def test_clients_refused_most() -> None:
    """Clients are ranked by refusals (client id, user and address together), limited to top."""
    lines = [denied(i, "expired", client_id="app", user_id="alice") for i in range(3)]
    lines += [denied(10 + i, "bad_signature", ip="203.0.113.9") for i in range(5)]
    lines += [denied(20, "missing", ip="198.51.100.1")]
    lines += [line(30, client_id="app", user_id="alice")]  # allowed: not a refusal
    summary = tally(*lines).summary(Window(), top=2)
    assert [(c.client, c.refusals, c.reasons) for c in summary.top_refused] == [
        (Client(None, None, "203.0.113.9"), 5, {"bad_signature": 5}),
        (Client("app", "alice", "10.0.0.1"), 3, {"expired": 3}),
    ]


def test_forged_token_bursts_per_minute() -> None:
    """A minute is a burst when its forged-token refusals (every forged reason together) reach
    the threshold; other reasons, and minutes below it, are not."""
    minute_one = [denied(i, "bad_signature", ip=f"10.0.1.{i}") for i in range(3)]
    minute_one += [denied(10, "alg_not_allowed"), denied(11, "malformed")]
    minute_one += [denied(12, "expired") for _ in range(10)]
    minute_two = [denied(60 + i, "unknown_kid") for i in range(4)]
    minute_three = [denied(125, "unknown_issuer") for _ in range(5)]
    summary = tally(*minute_one, *minute_two, *minute_three).summary(Window(), burst_threshold=5)
    assert [(b.minute, b.count, b.reasons, b.clients) for b in summary.bursts] == [
        (T0, 5, {"bad_signature": 3, "alg_not_allowed": 1, "malformed": 1}, 4),
        (T0 + timedelta(minutes=2), 5, {"unknown_issuer": 5}, 1),
    ]


def test_report_mode_clients_that_enforce_would_refuse() -> None:
    """For each report-mode route, every client with a would-deny line, with its reasons;
    allowed requests on the same route and denials elsewhere are not listed."""
    summary = tally(
        line(0, route="/legacy", result="would_deny", reason="missing", ip="10.0.0.7"),
        line(1, route="/legacy", result="would_deny", reason="missing", ip="10.0.0.7"),
        line(2, route="/legacy", result="would_deny", reason="insufficient_scope",
             client_id="batch", user_id="svc-batch"),
        line(3, route="/legacy", result="would_deny", reason="expired",
             client_id="batch", user_id="svc-batch"),
        line(4, route="/legacy", client_id="web", user_id="carol"),
        line(5, route="/beta", result="would_deny", reason="bad_audience", client_id="old"),
        denied(6, "expired", client_id="other"),
    ).summary(Window())  # fmt: skip
    would = {
        route: [(c.client, c.requests, c.reasons) for c in clients]
        for route, clients in summary.would_deny.items()
    }
    assert would == {
        "/beta": [(Client("old", None, "10.0.0.1"), 1, {"bad_audience": 1})],
        "/legacy": [
            (Client(None, None, "10.0.0.7"), 2, {"missing": 2}),
            (Client("batch", "svc-batch", "10.0.0.1"), 2,
             {"expired": 1, "insufficient_scope": 1}),
        ],
    }  # fmt: skip
    legacy = next(row for row in summary.routes if row.route == "/legacy")
    assert (legacy.requests, legacy.allowed, legacy.would_deny) == (5, 1, 4)


def test_duration_window_counts_back_from_the_newest_line() -> None:
    """--since 1m keeps the last minute before the newest line (bounds included), whenever the
    summary is made."""
    counted = tally(line(0), line(59), line(60), denied(119, "expired"), line(120))
    summary = counted.summary(Window(since=timedelta(minutes=1)))
    assert summary.since == T0 + timedelta(seconds=60)
    assert summary.newest == T0 + timedelta(seconds=120)
    assert summary.lines["in_window"] == 3
    assert summary.lines["access"] == 5


def test_absolute_window() -> None:
    """RFC 3339 bounds keep the lines between them, both included; until may be a duration."""
    counted = tally(*(line(seconds) for seconds in (0, 30, 60, 90, 120)))
    between = Window(since=T0 + timedelta(seconds=30), until=T0 + timedelta(seconds=90))
    assert counted.summary(between).lines["in_window"] == 3
    until_a_minute_ago = Window(until=timedelta(minutes=1))
    assert counted.summary(until_a_minute_ago).lines["in_window"] == 3


def test_empty_input() -> None:
    """No lines: an empty summary, with open bounds even for a duration."""
    summary = LogTally().summary(Window(since=timedelta(hours=1)))
    assert summary.since is None
    assert summary.routes == []
    assert summary.as_json()["lines"]["read"] == 0


def test_json_uses_the_access_log_field_names() -> None:
    """The JSON form names clients by the access log's fields and times as RFC 3339 UTC."""
    summary = tally(
        denied(0, "bad_signature", client_id="app", user_id="alice"),
        line(1, route="/legacy", result="would_deny", reason="missing"),
    ).summary(Window(since=timedelta(hours=1)), burst_threshold=1)
    data = json.loads(json.dumps(summary.as_json()))
    assert data["window"]["since"] == "2026-03-01T11:00:01.000Z"
    assert data["top_refused_clients"] == [
        {"gateway.client.id": "app", "user.id": "alice", "client.ip": "10.0.0.1", "refusals": 1,
         "reasons": {"bad_signature": 1}},
    ]  # fmt: skip
    assert data["forged_bursts"]["minutes"] == [
        {"minute": "2026-03-01T12:00:00.000Z", "count": 1, "reasons": {"bad_signature": 1},
         "clients": 1},
    ]  # fmt: skip
    assert data["would_deny"] == [
        {"route": "/legacy", "clients": [
            {"gateway.client.id": None, "user.id": None, "client.ip": "10.0.0.1", "requests": 1,
             "reasons": {"missing": 1}},
        ]},
    ]  # fmt: skip


def test_lines_written_before_the_ecs_rename_are_read_the_same() -> None:
    """A line with the old top-level names (``http.route``, ``auth.*``, ``client.id``) parses
    to the same `AccessLine` as today's, so a log spanning the upgrade is summarised whole."""
    renamed = {
        "gateway.route": "http.route",
        "gateway.auth.result": "auth.result",
        "gateway.auth.reason": "auth.reason",
        "gateway.client.id": "client.id",
    }
    today = json.loads(line(route="/admin", status=401, result="denied", reason="expired",
                            client_id="cli", user_id="u1"))  # fmt: skip
    before = {renamed.get(key, key): value for key, value in today.items()}
    assert set(before) & set(renamed) == set()
    assert parse_line(json.dumps(before)) == parse_line(json.dumps(today))
    parsed = parse_line(json.dumps(before))
    assert isinstance(parsed, AccessLine)
    assert (parsed.route, parsed.reason, parsed.client.client_id) == ("/admin", "expired", "cli")
