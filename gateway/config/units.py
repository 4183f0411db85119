"""Pure parsing of the config's duration strings (``500ms``, ``30s``, ``15m``, ``1h``)."""

from __future__ import annotations

import re

__all__ = ["parse_duration"]

_DURATION = re.compile(r"([0-9]+)(ms|s|m|h)")  # ASCII digits only
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: object) -> float:
    """Return the duration in seconds, or raise ``ValueError`` with a message for the operator."""
    if not isinstance(text, str):
        raise ValueError(f"bad duration {text!r}: write it with a unit, like 500ms, 30s, 15m or 1h")
    match = _DURATION.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"bad duration '{text}': use a whole number and ms, s, m or h (e.g. 30s)")
    return int(match.group(1)) * _UNIT_SECONDS[match.group(2)]
