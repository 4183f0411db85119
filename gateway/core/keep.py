"""Bounded memos for the request path: an answer worked out once for each distinct key, with a
cap on how many are kept (canonical targets and Host names, trusted-proxy hops, challenges,
refusal wires, the door's answer fields)."""

from __future__ import annotations

from typing import TypeVar

__all__ = ["keep"]

_Key = TypeVar("_Key")
_Value = TypeVar("_Value")


def keep(kept: dict[_Key, _Value], key: _Key, value: _Value, max_entries: int) -> _Value:
    """Store ``value`` under ``key`` and return it. A full ``kept`` is emptied first: keys that
    are ever new (a client's, an attacker's) cost at most ``max_entries`` entries, and a key
    dropped is only worked out again."""
    if len(kept) >= max_entries:
        kept.clear()
    kept[key] = value
    return value
