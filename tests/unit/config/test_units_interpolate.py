"""Pure tests of `gateway.config.units` and `gateway.config.interpolate`: small grammars."""

from __future__ import annotations

import re

import pytest

from gateway.config.interpolate import (
    MalformedReference,
    MissingVariable,
    interpolate,
    interpolate_all,
)
from gateway.config.units import parse_duration

DURATIONS = [
    pytest.param("500ms", 0.5, id="ms"),
    pytest.param("30s", 30.0, id="s"),
    pytest.param("15m", 900.0, id="m"),
    pytest.param("1h", 3600.0, id="h"),
    pytest.param("0s", 0.0, id="zero"),
    pytest.param("1ms", 0.001, id="one-ms"),
    pytest.param("90m", 5400.0, id="ninety-m"),
    pytest.param("007s", 7.0, id="leading-zeros"),
    pytest.param(" 30s ", 30.0, id="surrounding-space"),
    pytest.param("0ms", 0.0, id="zero-ms"),
    pytest.param("1500ms", 1.5, id="ms-over-a-second"),
    pytest.param("1s", 1.0, id="one-s"),
    pytest.param("90s", 90.0, id="s-over-a-minute"),
    pytest.param("1m", 60.0, id="one-m"),
    pytest.param("2h", 7200.0, id="hours"),
    pytest.param("3601s", 3601.0, id="s-over-an-hour"),
]


@pytest.mark.parametrize(("text", "seconds"), DURATIONS)
def test_parse_duration(text: str, seconds: float) -> None:
    """A whole number with ms, s, m or h is read as that many seconds."""
    assert parse_duration(text) == seconds


BAD_DURATION_TEXT = [
    pytest.param("30", id="no-unit"),
    pytest.param("s", id="no-number"),
    pytest.param("", id="empty"),
    pytest.param("1.5s", id="fraction"),
    pytest.param("-1s", id="negative"),
    pytest.param("+1s", id="plus-sign"),
    pytest.param("1d", id="days"),
    pytest.param("30S", id="upper-case-unit"),
    pytest.param("1 s", id="space-inside"),
    pytest.param("1h30m", id="compound"),
    pytest.param("1_000ms", id="underscore"),
    pytest.param("30sec", id="long-unit"),
    pytest.param("1us", id="microseconds"),
    pytest.param("\uff13\uff10s", id="fullwidth-digits"),
    pytest.param("\u0663s", id="arabic-indic-digit"),
]


@pytest.mark.parametrize("text", BAD_DURATION_TEXT)
def test_parse_duration_refuses_bad_text(text: str) -> None:
    """Anything but ASCII digits and one unit is refused with a message showing the value."""
    message = f"bad duration '{text}': use a whole number and ms, s, m or h (e.g. 30s)"
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        parse_duration(text)


BAD_DURATION_TYPES = [
    pytest.param(30, "30", id="int"),
    pytest.param(1.5, "1.5", id="float"),
    pytest.param(None, "None", id="none"),
    pytest.param(True, "True", id="bool"),
    pytest.param(["30s"], "['30s']", id="list"),
]


@pytest.mark.parametrize(("value", "shown"), BAD_DURATION_TYPES)
def test_parse_duration_refuses_non_strings(value: object, shown: str) -> None:
    """A value that is not a string (a bare YAML number) is refused, asking for a unit."""
    message = f"bad duration {shown}: write it with a unit, like 500ms, 30s, 15m or 1h"
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        parse_duration(value)


ENVIRON = {"HOST": "db.internal", "PORT": "5432", "EMPTY": "", "REF": "${HOST}", "_X1": "x"}

INTERPOLATED = [
    pytest.param("plain", "plain", id="no-dollar"),
    pytest.param("${HOST}", "db.internal", id="whole"),
    pytest.param("tcp://${HOST}:${PORT}/db", "tcp://db.internal:5432/db", id="embedded"),
    pytest.param("${_X1}", "x", id="underscore-name"),
    pytest.param("${EMPTY}", "", id="set-empty"),
    pytest.param("${UNSET:-fallback}", "fallback", id="default-unset"),
    pytest.param("${HOST:-fallback}", "db.internal", id="default-set"),
    pytest.param("${UNSET:-}", "", id="empty-default"),
    pytest.param("${UNSET:-a b:c}", "a b:c", id="default-with-punctuation"),
    pytest.param("${EMPTY:-fallback}", "fallback", id="default-set-empty"),
    pytest.param("$${HOST}", "${HOST}", id="escaped"),
    pytest.param("$${UNSET}", "${UNSET}", id="escaped-unset"),
    pytest.param("${REF}", "${HOST}", id="value-not-reinterpolated"),
    pytest.param("$HOST", "$HOST", id="no-braces"),
    pytest.param("cost: $5", "cost: $5", id="lone-dollar"),
    pytest.param("$$", "$$", id="double-dollar"),
    pytest.param("${HOST}}", "db.internal}", id="extra-brace"),
]


@pytest.mark.parametrize(("value", "expected"), INTERPOLATED)
def test_interpolate(value: str, expected: str) -> None:
    """``${NAME}`` takes the variable, ``:-`` supplies a default and ``$${`` is a literal ``${``."""
    assert interpolate(value, ENVIRON) == expected


MISSING = [
    pytest.param("${UNSET}", "UNSET", id="unset"),
    pytest.param("x-${HOST}-${UNSET}", "UNSET", id="second-unset"),
    pytest.param("${host}", "host", id="case-sensitive"),
]

MALFORMED = [
    pytest.param("${HOST", id="unclosed"),
    pytest.param("${}", id="empty-name"),
    pytest.param("${1X}", id="digit-first"),
    pytest.param("${A-B}", id="dash-in-name"),
    pytest.param("${HOST:default}", id="colon-without-dash"),
]


@pytest.mark.parametrize(("value", "name"), MISSING)
def test_interpolate_refuses_unset(value: str, name: str) -> None:
    """An unset variable without a default raises naming it."""
    with pytest.raises(MissingVariable) as caught:
        interpolate(value, ENVIRON)
    assert caught.value.name == name
    assert str(caught.value) == name


@pytest.mark.parametrize("value", MALFORMED)
def test_interpolate_refuses_broken_syntax(value: str) -> None:
    """Broken ``${`` syntax is its own error, never mistaken for an unset variable."""
    with pytest.raises(MalformedReference, match=r"malformed '\$\{' reference"):
        interpolate(value, ENVIRON)


def test_interpolate_all_walks_lists_and_mappings() -> None:
    """Every string inside lists and mappings is interpolated; each one that cannot be is a
    message in document order and becomes None, and other values pass through."""
    value = {"a": ["${SET}", "${UNSET}", 3], "b": {"c": "${BROKEN"}, "d": True}
    result, problems = interpolate_all(value, {"SET": "x"})
    assert result == {"a": ["x", None, 3], "b": {"c": None}, "d": True}
    assert problems[0] == "environment variable UNSET is not set"
    assert problems[1].startswith("malformed '${' reference")
    assert len(problems) == 2
