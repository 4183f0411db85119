"""W3C Trace Context parsing: what is continued, and every malformed form that starts anew."""

from __future__ import annotations

import pytest

from gateway.core.tracecontext import (
    TraceParent,
    format_traceparent,
    format_tracestate,
    parse_traceparent,
    parse_tracestate,
)

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
SPAN = "00f067aa0ba902b7"
VALID = f"00-{TRACE}-{SPAN}-01"


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([VALID], TraceParent(int(TRACE, 16), int(SPAN, 16), 1)),
        ([f"00-{TRACE}-{SPAN}-00"], TraceParent(int(TRACE, 16), int(SPAN, 16), 0)),
        ([f"00-{TRACE}-{SPAN}-03"], TraceParent(int(TRACE, 16), int(SPAN, 16), 3)),
        # A later version may append fields after a dash: the four known ones are read.
        ([f"01-{TRACE}-{SPAN}-01-future"], TraceParent(int(TRACE, 16), int(SPAN, 16), 1)),
        ([f"cc-{TRACE}-{SPAN}-01"], TraceParent(int(TRACE, 16), int(SPAN, 16), 1)),
    ],
    ids=["sampled", "unsampled", "random-flag", "future-version-fields", "future-version"],
)
def test_a_valid_traceparent_is_read(values: list[str], expected: TraceParent) -> None:
    """The ids and flags of a well-formed header."""
    assert parse_traceparent(values) == expected


@pytest.mark.parametrize(
    "values",
    [
        [],
        [VALID, VALID],
        [f"00-{TRACE.upper()}-{SPAN}-01"],
        [f"00-{TRACE}-{SPAN.upper()}-01"],
        [f"00-{'0' * 32}-{SPAN}-01"],
        [f"00-{TRACE}-{'0' * 16}-01"],
        [f"ff-{TRACE}-{SPAN}-01"],
        [f"00-{TRACE}-{SPAN}-01-extra"],
        [f"01-{TRACE}-{SPAN}-01extra"],
        [f"0-{TRACE}-{SPAN}-01"],
        [f"00-{TRACE}0-{SPAN}-01"],
        [f"00-{TRACE}-{SPAN}-1"],
        [f" {VALID}"],
        [f"{VALID}\n"],
        [VALID.replace("-", "_")],
        [f"{VALID},{VALID}"],
        [f"01-{TRACE}-{SPAN}-01-" + "x" * 600],
        [f"00-{TRACE[:-1]}g-{SPAN}-01"],
        ["\u0660\u0660-" + TRACE + "-" + SPAN + "-01"],
    ],
    ids=[
        "none", "two-headers", "upper-trace", "upper-span", "zero-trace", "zero-span",
        "version-ff", "version-00-extra", "future-no-dash", "short-version", "long-trace",
        "short-flags", "leading-space", "trailing-newline", "underscores", "comma-joined",
        "too-long", "non-hex", "arabic-digits",
    ],
)  # fmt: skip
def test_anything_else_is_not_continued(values: list[str]) -> None:
    """Absent, repeated or malformed: None (the request starts a new trace)."""
    assert parse_traceparent(values) is None


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (["a=1,b=2"], (("a", "1"), ("b", "2"))),
        (["a=1", "b=2"], (("a", "1"), ("b", "2"))),
        ([" a=1 ,\t, b=x y "], (("a", "1"), ("b", "x y"))),
        (["tenant@sys=v", "k_-*/9=!"], (("tenant@sys", "v"), ("k_-*/9", "!"))),
        ([], ()),
        ([""], ()),
    ],
    ids=["one-header", "two-headers", "whitespace-and-empty", "multi-tenant", "none", "empty"],
)
def test_tracestate_members_are_read_in_order(
    values: list[str], expected: tuple[tuple[str, str], ...]
) -> None:
    """Several headers are one list; optional whitespace and empty members are allowed."""
    assert parse_tracestate(values) == expected


@pytest.mark.parametrize(
    "values",
    [
        ["A=1"],
        ["a=1,a=2"],
        ["a=1", "a=2"],
        ["a"],
        ["a=b=c"],
        ["a=1,b"],
        ["a= "],
        ["1a=1"],
        ["a=\u00e9"],
        ["a=1\x00"],
        [",".join(f"k{n}=v" for n in range(33))],
        ["a=" + "x" * 600],
    ],
    ids=[
        "upper-key", "repeated", "repeated-across-headers", "no-value", "equals-in-value",
        "one-bad-member", "blank-value", "digit-first-key", "non-ascii", "nul",
        "33-members", "too-long",
    ],
)  # fmt: skip
def test_a_malformed_tracestate_is_dropped_whole(values: list[str]) -> None:
    """Any malformed or repeated member, too many members or too many characters: nothing."""
    assert parse_tracestate(values) == ()


def test_formatting_round_trips() -> None:
    """What the gateway writes, it would read back."""
    header = format_traceparent(int(TRACE, 16), int(SPAN, 16), 1)
    assert header == VALID
    assert parse_traceparent([header]) == TraceParent(int(TRACE, 16), int(SPAN, 16), 1)
    members = (("a", "1"), ("t@s", "x y"))
    assert parse_tracestate([format_tracestate(members)]) == members
    assert format_tracestate(()) == ""
