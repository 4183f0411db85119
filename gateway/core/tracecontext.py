"""W3C Trace Context headers (https://www.w3.org/TR/trace-context/), read and written as values.

The gateway parses the client's ``traceparent`` and ``tracestate`` itself rather than through
OpenTelemetry's propagator: that one reads only the first of several ``traceparent`` headers
(the recommendation says several are invalid) and logs the offending client bytes of a malformed
``tracestate``, and no request byte may reach a log line. Anything malformed is simply not
continued: the request starts a new trace.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["TraceParent", "format_traceparent", "format_tracestate", "parse_traceparent",
           "parse_tracestate"]  # fmt: skip

SAMPLED = 0x01
# Longer headers are not parsed at all (a future version may append fields; 512 is plenty).
_MAX_TRACEPARENT = 512
# W3C: vendors should propagate at least 512 characters of tracestate; longer is dropped whole.
_MAX_TRACESTATE = 512
_MAX_MEMBERS = 32
_TRACEPARENT = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?")
_KEY = (
    r"(?:[a-z][a-z0-9_\-*/]{0,255}"
    r"|[a-z0-9][a-z0-9_\-*/]{0,240}@[a-z][a-z0-9_\-*/]{0,13})"
)
_VALUE = r"[\x20-\x2b\x2d-\x3c\x3e-\x7e]{0,255}[\x21-\x2b\x2d-\x3c\x3e-\x7e]"
_MEMBER = re.compile(f"({_KEY})=({_VALUE})")


@dataclass(frozen=True, slots=True)
class TraceParent:
    """The caller's position in a trace: its trace id, its span id, its trace flags."""

    trace_id: int
    span_id: int
    flags: int

    @property
    def sampled(self) -> bool:
        """Whether the caller recorded its span (and asks that the trace be kept)."""
        return bool(self.flags & SAMPLED)


def parse_traceparent(values: Sequence[str]) -> TraceParent | None:
    """The one ``traceparent`` header's context, or None when there is none, several, or it is
    malformed (then the request starts a new trace)."""
    if len(values) != 1 or len(values[0]) > _MAX_TRACEPARENT:
        return None
    match = _TRACEPARENT.fullmatch(values[0])
    if match is None:
        return None
    version, trace_hex, span_hex, flags_hex, rest = match.groups()
    if version == "ff" or (version == "00" and rest is not None):
        return None
    trace_id, span_id = int(trace_hex, 16), int(span_hex, 16)
    if trace_id == 0 or span_id == 0:
        return None
    return TraceParent(trace_id, span_id, int(flags_hex, 16))


def parse_tracestate(values: Sequence[str]) -> tuple[tuple[str, str], ...]:
    """The ``tracestate`` members, in order (several headers are one list); nothing when any
    member is malformed or repeated, or the list is too long (the vendors' data is dropped, the
    trace is still continued)."""
    if sum(len(value) + 1 for value in values) - 1 > _MAX_TRACESTATE:
        return ()
    members: dict[str, str] = {}
    for value in values:
        for member in value.split(","):
            member = member.strip(" \t")
            if not member:
                continue  # empty list members are allowed
            match = _MEMBER.fullmatch(member)
            if match is None or match.group(1) in members:
                return ()
            members[match.group(1)] = match.group(2)
    if len(members) > _MAX_MEMBERS:
        return ()
    return tuple(members.items())


def format_traceparent(trace_id: int, span_id: int, flags: int) -> str:
    """A version-00 ``traceparent`` value."""
    return f"00-{trace_id:032x}-{span_id:016x}-{flags & 0xFF:02x}"


def format_tracestate(members: Sequence[tuple[str, str]]) -> str:
    """A ``tracestate`` value (empty for no members: then send no header)."""
    return ",".join(f"{key}={value}" for key, value in members)
