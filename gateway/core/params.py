"""Route paths with named segments, and the claims those segments are bound to.

A route path may name whole segments: ``/tenants/{tenant}/orders``. A ``{name}`` segment matches
exactly one non-empty segment of the canonical request path (never ``/``; the canonical path
has no ``.`` or ``..`` segments). A route may then bind a segment to a claim
(``bind: {tenant: tenant_id}``): the request is allowed only if the token's claim allows the
value the upstream will read from that segment.

What is compared, and why:

- The value is the canonical segment (the bytes the gateway forwards) percent-decoded once, as
  the upstream's framework decodes it before handing it to a handler: ``/tenants/a%20b`` is the
  tenant ``a b``, and a claim ``a%20b`` does not reach it. Escapes that do not decode to UTF-8
  allow nothing. Encoded slashes never get this far (the request target refuses ``%2F``).
- Case-sensitively, whatever the upstream's ``case_insensitive`` says: that option folds the
  route's literal segments, not the value a handler reads, so ``/tenants/ACME`` needs a claim
  saying ``ACME``.
- On an ``ignore_suffix`` upstream, a value in the request's last segment is read as sent and
  without each ``.suffix`` (``alice.v1.json``: also ``alice`` as Rails reads it and
  ``alice.v1`` as Spring's greedy suffix pattern does): the claim must allow every reading, so a
  claim ``alice.json`` never reaches ``alice``. A trailing slash does not hide the last segment
  (``/users/alice.json/``): Rails and Spring drop it before they route.
- A string claim allows exactly its value; a list claim allows each of its string members;
  anything else (a number, a boolean, an object, a missing claim) allows nothing.

Specificity (which of two matching routes wins) is decided segment by segment from the left: a
literal segment beats a parameter at the same depth, and a route with more segments beats one
that is a prefix of it. So the longest literal prefix comes first: ``/tenants/me`` before
``/tenants/{tenant}``, and ``/tenants/{tenant}/orders`` before ``/tenants/{tenant}``. Two routes
of the same shape (the same literals at the same depths, parameters at the same depths) match
the same paths equally well: the configuration requires them to be spelt alike.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_to_bytes

__all__ = [
    "NO_CAPTURES",
    "Binding",
    "Captures",
    "PathPattern",
    "PatternError",
    "bindings_hold",
    "claim_allows",
    "has_params",
    "segment_value",
]

_NAME = r"[a-z_][a-z0-9_]*"
_PARAM = re.compile(r"\{(" + _NAME + r")\}")


class PatternError(ValueError):
    """A route path whose named segments are not written as whole ``{name}`` segments."""


@dataclass(frozen=True, slots=True)
class Binding:
    """``bind: {param: claim}``: the path parameter ``param`` must be allowed by ``claim``."""

    param: str
    claim: str

    def __str__(self) -> str:
        return f"{self.param}={self.claim}"


def has_params(path: str) -> bool:
    """Whether a route path names a segment (cheap: route paths without braces have none)."""
    return "{" in path


@dataclass(frozen=True, slots=True)
class PathPattern:
    """A route path split into segments: a literal, or a parameter (its name)."""

    path: str
    literals: tuple[str, ...]  # "" where the segment is a parameter
    names: tuple[str | None, ...]  # the parameter's name, or None for a literal

    @classmethod
    def parse(cls, path: str) -> PathPattern:
        """Split a route path; a brace anywhere but around a whole segment's name is an error."""
        parts = path.split("/")[1:] if path != "/" else []
        literals: list[str] = []
        names: list[str | None] = []
        for part in parts:
            param = _PARAM.fullmatch(part)
            if param is not None:
                if param.group(1) in names:
                    raise PatternError(f"parameter '{{{param.group(1)}}}' appears twice")
                literals.append("")
                names.append(param.group(1))
            elif "{" in part or "}" in part:
                raise PatternError(
                    f"'{part}' is not a parameter: a parameter is a whole segment written "
                    "{name}, the name lower-case letters, digits and '_' (not first a digit)"
                )
            else:
                literals.append(part)
                names.append(None)
        return cls(path, tuple(literals), tuple(names))

    @property
    def params(self) -> tuple[str, ...]:
        """The parameter names, left to right."""
        return tuple(name for name in self.names if name is not None)

    @property
    def shape(self) -> tuple[str | None, ...]:
        """What the pattern matches, whatever its parameters are called: two routes of one
        shape match the same paths equally well."""
        return tuple(None if name is not None else lit for lit, name in zip(
            self.literals, self.names, strict=True
        ))  # fmt: skip

    @property
    def literal_prefix(self) -> str:
        """The path up to the first parameter (``/tenants`` for ``/tenants/{tenant}/orders``)."""
        depth = next((i for i, name in enumerate(self.names) if name is not None), None)
        if depth is None:
            return self.path
        return "/" + "/".join(self.literals[:depth])

    def specificity(self, *, exact: bool) -> tuple[int, ...]:
        """A sort key, ascending = more specific first, for routes that match the same path:
        per segment 0 for a literal and 1 for a parameter, then 2 (so a longer pattern comes
        before its own prefix), then 0 for an exact route and 1 for a prefix one."""
        kinds = tuple(0 if name is None else 1 for name in self.names)
        return (*kinds, 2, 0 if exact else 1)

    def match(self, path: str, *, exact: bool, fold_case: bool = False) -> Captures | None:
        """The parameters' segments if ``path`` is this pattern's path or under it (unless
        ``exact``), else None. ``fold_case`` compares literals case-blind; a parameter keeps the
        segment exactly as sent."""
        return self.matcher(exact=exact, fold_case=fold_case)(path)

    def matcher(self, *, exact: bool, fold_case: bool = False) -> Callable[[str], Captures | None]:
        """`match` for one exactness and case rule, compiled once (a regular expression: the
        route table keeps one per route path)."""
        regex = _compile(self, exact=exact, fold_case=fold_case)
        names = self.params
        last_name = self.names[-1] if self.names else None

        def match(path: str) -> Captures | None:
            found = regex.match(path)
            if found is None:
                return None
            values = tuple((name, found.group(name)) for name in names)
            end = found.end()
            # A trailing slash leaves the segment last for an upstream that drops it (Rails).
            last = end == len(path) or (end == len(path) - 1 and path[end] == "/")
            return Captures(values, last_name if last else None)

        return match


def _compile(pattern: PathPattern, *, exact: bool, fold_case: bool) -> re.Pattern[str]:
    """``/tenants/{tenant}`` -> ``/tenants/(?P<tenant>[^/]+)`` then the end of the path (exact)
    or of a segment (prefix). A parameter never takes an empty, ``.`` or ``..`` segment (the
    canonical path has none; refused here too, for any other caller)."""
    body = "".join(
        "/" + (re.escape(literal) if name is None else rf"(?P<{name}>(?!\.\.?(?:/|$))[^/]+)")
        for literal, name in zip(pattern.literals, pattern.names, strict=True)
    )
    if not body:  # the root: every path, or "/" alone
        body = "/$" if exact else "/"
    else:
        body += "$" if exact else "(?=/|$)"
    # The canonical path is ASCII (other bytes stay escaped): ASCII case folding only.
    return re.compile(body, re.ASCII | (re.IGNORECASE if fold_case else 0))


@dataclass(frozen=True, slots=True)
class Captures:
    """The canonical segments a route's parameters matched, and which parameter (if any) took
    the request path's last segment, a trailing slash aside (the one a suffix-stripping upstream
    reads several ways)."""

    values: tuple[tuple[str, str], ...] = ()
    last: str | None = None


NO_CAPTURES = Captures()


def segment_value(segment: str) -> str | None:
    """What a decoding upstream reads from a canonical segment: percent-decoded once, UTF-8;
    None when the bytes are not UTF-8 (nothing can be allowed to equal them)."""
    if "%" not in segment:
        return segment
    try:
        return unquote_to_bytes(segment).decode("utf-8")
    except UnicodeDecodeError:
        return None


def _readings(segment: str, *, last: bool, strip_suffix: bool) -> tuple[str | None, ...]:
    """Every value an upstream may read from a parameter's segment (see the module docstring)."""
    readings = [segment_value(segment)]
    if last and strip_suffix:
        dot = segment.find(".")
        while dot > 0:  # every stem: frameworks disagree on which dot starts the suffix
            readings.append(segment_value(segment[:dot]))
            dot = segment.find(".", dot + 1)
    return tuple(readings)


def claim_allows(claim: object, value: str | None) -> bool:
    """A string claim allows its own value; a list claim each string member; nothing else
    allows anything (fail closed: a number, boolean, object or missing claim)."""
    if value is None:
        return False
    if isinstance(claim, str):
        return claim == value
    if isinstance(claim, list):
        return any(isinstance(item, str) and item == value for item in claim)
    return False


def bindings_hold(
    bindings: Sequence[Binding],
    captures: Captures,
    payload: Mapping[str, Any],
    *,
    strip_suffix: bool = False,
) -> bool:
    """Whether every binding's claim allows every reading of its parameter's segment (on a
    ``strip_suffix`` upstream the last segment is also read without its ``.suffix``)."""
    segments = dict(captures.values)
    for binding in bindings:
        segment = segments.get(binding.param)
        if segment is None:
            return False
        claim = payload.get(binding.claim)
        last = binding.param == captures.last
        if not all(
            claim_allows(claim, value)
            for value in _readings(segment, last=last, strip_suffix=strip_suffix)
        ):
            return False
    return True
