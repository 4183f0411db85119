"""`gateway log summary`, the pure part: access-log lines in, a summary of a time window out.

`parse_line` reads one line (an `AccessLine`, or why it is not one), `LogTally` counts lines as
they stream by in bounded memory, and `LogTally.summary` answers for a window: requests and
refusals by route and reason, the clients refused most, minutes with a burst of forged-token
refusals, and for report-mode routes every client that enforce mode would refuse, and why.

Memory: lines are counted under a key of (second, route, status, result, reason, client) where
the client is kept only for refused and would-deny lines, so a day of allowed traffic costs a few
counters per route and second. For the same reason the window is applied to whole seconds.
Reading files, progress and printing are in `gateway.tools.log_report`.
"""

from __future__ import annotations

import enum
import json
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

__all__ = [
    "FORGED_REASONS",
    "AccessLine",
    "Client",
    "ForgedBurst",
    "LineKind",
    "LogTally",
    "RefusedClient",
    "RouteCounts",
    "Summary",
    "Window",
    "WouldDenyClient",
    "parse_bound",
    "parse_line",
]

# Refusals a legitimate client does not produce by accident: tokens made or altered by hand.
FORGED_REASONS = frozenset(
    {"bad_signature", "alg_not_allowed", "unknown_kid", "unknown_issuer", "malformed"}
)
DENIED = "denied"
WOULD_DENY = "would_deny"
_DURATION = re.compile(r"([0-9]+)(s|m|h|d)")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400}


class LineKind(enum.Enum):
    """A line that is not an access line: another event, or not a gateway line at all."""

    OTHER_EVENT = "other_event"  # a JSON object with another event.action (startup, reload...)
    BAD = "bad"  # not JSON, not an object, or an access line with a missing or mistyped field


@dataclass(frozen=True, slots=True)
class Client:
    """Who sent a request, as far as the line says (any part may be unknown)."""

    client_id: str | None = None
    user_id: str | None = None
    client_ip: str | None = None

    def as_json(self) -> dict[str, str | None]:
        """The access log's own field names."""
        return {
            "gateway.client.id": self.client_id,
            "user.id": self.user_id,
            "client.ip": self.client_ip,
        }


@dataclass(frozen=True, slots=True)
class AccessLine:
    """The fields of one access line that the summary reads."""

    at: datetime
    route: str | None
    status: int | None
    result: str
    reason: str | None
    client: Client


def parse_line(line: bytes | str) -> AccessLine | LineKind:
    """One log line as an `AccessLine`, or the kind of line it is instead (never raises)."""
    try:
        value = orjson.loads(line)
    except orjson.JSONDecodeError:
        # orjson refuses escaped lone surrogates, which the gateway writes for undecodable bytes.
        try:
            value = json.loads(line)
        except ValueError:
            return LineKind.BAD
    if not isinstance(value, dict):
        return LineKind.BAD
    if value.get("event.action") != "access":
        return LineKind.OTHER_EVENT if "event.action" in value else LineKind.BAD
    return _access(value)


def _access(value: dict[str, Any]) -> AccessLine | LineKind:
    at = _timestamp(value.get("@timestamp"))
    result = _field(value, "gateway.auth.result")
    status = value.get("http.response.status_code")
    if at is None or not isinstance(result, str):
        return LineKind.BAD
    if status is not None and (not isinstance(status, int) or isinstance(status, bool)):
        return LineKind.BAD
    texts = [
        _field(value, name)
        for name in ("gateway.route", "gateway.auth.reason", "gateway.client.id", "user.id",
                     "client.ip")
    ]  # fmt: skip
    if any(text is not None and not isinstance(text, str) for text in texts):
        return LineKind.BAD
    route, reason, client_id, user_id, client_ip = texts
    return AccessLine(
        at=at,
        route=route,
        status=status,
        result=result,
        reason=reason,
        client=Client(client_id, user_id, client_ip),
    )


# Lines written before the gateway's fields moved under gateway.* (ECS, issue 15) still count:
# a log kept for days spans an upgrade.
_BEFORE_ECS = {
    "gateway.route": "http.route",
    "gateway.auth.result": "auth.result",
    "gateway.auth.reason": "auth.reason",
    "gateway.client.id": "client.id",
}


def _field(value: dict[str, Any], name: str) -> Any:
    if name in value:
        return value[name]
    return value.get(_BEFORE_ECS.get(name, name))


def _timestamp(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    if moment.tzinfo is None:
        return None  # RFC 3339 always has an offset; a naive time would be a guess
    return moment.astimezone(UTC)


def parse_bound(text: str) -> datetime | timedelta:
    """A window bound: an RFC 3339 time, or a duration back from the newest line (``90s``,
    ``15m``, ``1h``, ``2d``); ``ValueError`` with a message otherwise."""
    match = _DURATION.fullmatch(text.strip())
    if match is not None:
        return timedelta(seconds=int(match.group(1)) * _UNIT[match.group(2)])
    moment = _timestamp(text.strip())
    if moment is None:
        raise ValueError(
            f"{text!r} is neither an RFC 3339 time (2026-01-31T12:00:00Z) nor a duration "
            "(30s, 15m, 1h, 2d)"
        )
    return moment


@dataclass(frozen=True, slots=True)
class Window:
    """The bounds asked for; a duration counts back from the newest access line read."""

    since: datetime | timedelta | None = None
    until: datetime | timedelta | None = None

    def resolve(self, newest: datetime | None) -> tuple[datetime | None, datetime | None]:
        """Absolute bounds (None: open) once the newest line is known."""
        return _resolve(self.since, newest), _resolve(self.until, newest)


def _resolve(bound: datetime | timedelta | None, newest: datetime | None) -> datetime | None:
    if isinstance(bound, timedelta):
        return None if newest is None else newest - bound
    return bound


@dataclass(frozen=True, slots=True)
class RouteCounts:
    """One route's requests by auth result, and its refusals by reason."""

    route: str | None
    requests: int
    allowed: int
    public: int
    denied: int
    would_deny: int
    refusals: dict[str, int]  # reason -> count (denied lines)
    statuses: dict[int, int]


@dataclass(frozen=True, slots=True)
class RefusedClient:
    """A client and how often it was refused, by reason."""

    client: Client
    refusals: int
    reasons: dict[str, int]


@dataclass(frozen=True, slots=True)
class ForgedBurst:
    """A minute with at least the threshold of forged-token refusals."""

    minute: datetime
    count: int
    reasons: dict[str, int]
    clients: int  # distinct clients among them


@dataclass(frozen=True, slots=True)
class WouldDenyClient:
    """A client that enforce mode would refuse on a report-mode route, and why."""

    client: Client
    requests: int
    reasons: dict[str, int]


@dataclass(frozen=True, slots=True)
class Summary:
    """What `gateway log summary` reports."""

    since: datetime | None
    until: datetime | None
    newest: datetime | None
    lines: dict[str, int]  # read, access, in_window, other_events, bad
    routes: list[RouteCounts]
    top_refused: list[RefusedClient]
    burst_threshold: int
    bursts: list[ForgedBurst]
    would_deny: dict[str | None, list[WouldDenyClient]] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        """A JSON-ready dict (times as RFC 3339, clients under the access log's field names)."""
        return {
            "window": {
                "since": _text(self.since),
                "until": _text(self.until),
                "newest_line": _text(self.newest),
            },
            "lines": self.lines,
            "routes": [
                {
                    "route": r.route,
                    "requests": r.requests,
                    "allowed": r.allowed,
                    "public": r.public,
                    "denied": r.denied,
                    "would_deny": r.would_deny,
                    "refusals": r.refusals,
                    "statuses": {str(k): v for k, v in r.statuses.items()},
                }
                for r in self.routes
            ],
            "top_refused_clients": [
                {**c.client.as_json(), "refusals": c.refusals, "reasons": c.reasons}
                for c in self.top_refused
            ],
            "forged_bursts": {
                "reasons": sorted(FORGED_REASONS),
                "threshold_per_minute": self.burst_threshold,
                "minutes": [
                    {
                        "minute": _text(b.minute),
                        "count": b.count,
                        "reasons": b.reasons,
                        "clients": b.clients,
                    }
                    for b in self.bursts
                ],
            },
            "would_deny": [
                {
                    "route": route,
                    "clients": [
                        {**c.client.as_json(), "requests": c.requests, "reasons": c.reasons}
                        for c in clients
                    ],
                }
                for route, clients in self.would_deny.items()
            ],
        }


def _text(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


# (second, route, status, result, reason, client): client is None for lines nobody refused.
_Key = tuple[int, str | None, int | None, str, str | None, Client | None]


@dataclass(slots=True)
class LogTally:
    """Counts lines as they are read; `summary` answers for a window afterwards."""

    counts: Counter[_Key] = field(default_factory=Counter)
    read: int = 0
    other_events: int = 0
    bad: int = 0
    newest: datetime | None = None

    def add_line(self, line: bytes | str) -> None:
        """Parse and count one line (blank lines are not counted at all)."""
        if not line.strip():
            return
        self.read += 1
        parsed = parse_line(line)
        if parsed is LineKind.BAD:
            self.bad += 1
        elif parsed is LineKind.OTHER_EVENT:
            self.other_events += 1
        else:
            assert isinstance(parsed, AccessLine)
            self.add(parsed)

    def add(self, line: AccessLine) -> None:
        """Count one access line."""
        if self.newest is None or line.at > self.newest:
            self.newest = line.at
        keep_client = line.result in (DENIED, WOULD_DENY)
        second = int(line.at.timestamp() // 1)
        key = (
            second,
            line.route,
            line.status,
            line.result,
            line.reason,
            line.client if keep_client else None,
        )
        self.counts[key] += 1

    def summary(self, window: Window, *, top: int = 10, burst_threshold: int = 20) -> Summary:
        """The summary of the lines whose second lies in the window (bounds included)."""
        since, until = window.resolve(self.newest)
        low = None if since is None else int(since.timestamp() // 1)
        high = None if until is None else int(until.timestamp() // 1)
        routes: dict[str | None, Counter[str]] = defaultdict(Counter)
        refusals: dict[str | None, Counter[str]] = defaultdict(Counter)
        statuses: dict[str | None, Counter[int]] = defaultdict(Counter)
        refused: dict[Client, Counter[str]] = defaultdict(Counter)
        forged: dict[int, Counter[str]] = defaultdict(Counter)
        forged_clients: dict[int, set[Client]] = defaultdict(set)
        would_deny: dict[str | None, dict[Client, Counter[str]]] = defaultdict(
            lambda: defaultdict(Counter)
        )
        in_window = 0
        for (second, route, status, result, reason, client), n in self.counts.items():
            if (low is not None and second < low) or (high is not None and second > high):
                continue
            in_window += n
            routes[route][result] += n
            if status is not None:
                statuses[route][status] += n
            why = reason or "unknown"
            if result == DENIED and client is not None:
                refusals[route][why] += n
                refused[client][why] += n
                if why in FORGED_REASONS:
                    minute = second - second % 60
                    forged[minute][why] += n
                    forged_clients[minute].add(client)
            elif result == WOULD_DENY and client is not None:
                would_deny[route][client][why] += n
        return Summary(
            since=since,
            until=until,
            newest=self.newest,
            lines={
                "read": self.read,
                "access": sum(self.counts.values()),
                "in_window": in_window,
                "other_events": self.other_events,
                "bad": self.bad,
            },
            routes=_route_counts(routes, refusals, statuses),
            top_refused=_top_refused(refused, top),
            burst_threshold=burst_threshold,
            bursts=[
                ForgedBurst(
                    minute=datetime.fromtimestamp(minute, UTC),
                    count=sum(reasons.values()),
                    reasons=_ordered(reasons),
                    clients=len(forged_clients[minute]),
                )
                for minute, reasons in sorted(forged.items())
                if sum(reasons.values()) >= burst_threshold
            ],
            would_deny={
                route: sorted(
                    (
                        WouldDenyClient(client, sum(reasons.values()), _ordered(reasons))
                        for client, reasons in clients.items()
                    ),
                    key=lambda c: (-c.requests, _client_order(c.client)),
                )
                for route, clients in sorted(would_deny.items(), key=lambda i: i[0] or "")
            },
        )


def _route_counts(
    routes: dict[str | None, Counter[str]],
    refusals: dict[str | None, Counter[str]],
    statuses: dict[str | None, Counter[int]],
) -> list[RouteCounts]:
    rows = [
        RouteCounts(
            route=route,
            requests=sum(results.values()),
            allowed=results["allowed"],
            public=results["public"],
            denied=results[DENIED],
            would_deny=results[WOULD_DENY],
            refusals=_ordered(refusals[route]),
            statuses=dict(sorted(statuses[route].items())),
        )
        for route, results in routes.items()
    ]
    return sorted(rows, key=lambda r: (-r.requests, r.route or ""))


def _top_refused(refused: dict[Client, Counter[str]], top: int) -> list[RefusedClient]:
    rows = [
        RefusedClient(client, sum(reasons.values()), _ordered(reasons))
        for client, reasons in refused.items()
    ]
    rows.sort(key=lambda r: (-r.refusals, _client_order(r.client)))
    return rows[:top]


def _client_order(client: Client) -> tuple[str, str, str]:
    return (client.client_id or "", client.user_id or "", client.client_ip or "")


def _ordered(counts: Counter[str]) -> dict[str, int]:
    """Most frequent first, ties by name (stable output for people and for diffs)."""
    return dict(sorted(counts.items(), key=lambda item: (-item[1], item[0])))
