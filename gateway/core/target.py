"""The one canonical form of a request target.

The path the router matches, the path the authoriser checks and the path the upstream receives
are the same string, built here once from the raw request target. aiohttp's ``request.path`` is
already percent-decoded (``%2F`` becomes ``/``) and ``yarl.URL`` resolves ``..`` again when built
from a string, so neither may be used for routing or forwarding: a path matched in one form and
forwarded in another is the classic gateway bypass (``/public/%2e%2e/admin``).
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from typing import TypeVar

from gateway.core.keep import keep

__all__ = [
    "CanonicalTarget",
    "TargetError",
    "TargetProblem",
    "canonicalize",
    "canonicalize_path",
    "check_host",
    "host_name",
]

_UNRESERVED = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
# Escapes decoded before matching: every byte that may also appear raw in a path segment with the
# same meaning to a decoding framework (unreserved, sub-delims but ';', ':' and '@'). Flask,
# Starlette and aiohttp route ``/v1/admin%3Areindex`` as ``/v1/admin:reindex``; so does the
# gateway, and it forwards the decoded form. Everything else stays escaped: '/', '\\' and ';'
# are refused, and '%', '?', '#', spaces and non-ASCII bytes would change the path's structure
# or be decoded a second time.
_DECODED = _UNRESERVED | frozenset(b"!$&'()*+,=:@")
_HEX = frozenset("0123456789abcdefABCDEF")
# RFC 3986 pchar minus ';' (path parameters are refused: Tomcat/Spring strip them upstream).
_PATH_CHARS = frozenset(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~!$&'()*+,=:@/%"
)
_QUERY_FORBIDDEN = frozenset(chr(c) for c in range(0x21)) | {"\x7f", "#"}
# A path made only of these decodes to itself.
_PLAIN_PATH = re.compile("[" + "".join(re.escape(ch) for ch in sorted(_PATH_CHARS - {"%"})) + "]*")


class TargetProblem(enum.Enum):
    """Why a request target was refused; the value is the access log's ``auth.reason``."""

    NOT_ORIGIN_FORM = "not_origin_form"
    FRAGMENT = "fragment"
    BACKSLASH = "backslash"
    ENCODED_SLASH = "encoded_slash"
    PATH_PARAMETER = "path_parameter"
    CONTROL_CHARACTER = "control_character"
    BAD_CHARACTER = "bad_character"
    BAD_ESCAPE = "bad_escape"
    ESCAPES_ROOT = "escapes_root"
    BAD_HOST = "bad_host"
    BAD_HEADER = "bad_header"  # a header value that cannot be passed on byte for byte


class TargetError(ValueError):
    """The request target is not acceptable (answered with 400 ``bad_request``)."""

    def __init__(self, problem: TargetProblem) -> None:
        super().__init__(problem.value)
        self.problem = problem


@dataclass(frozen=True, slots=True, init=False)
class CanonicalTarget:
    """A request target split into its canonical path and its query exactly as sent.

    Made for every request: its ``__init__`` is written out, to be compiled with the module
    (the one dataclasses writes is Python), and sets the frozen fields as that one does.
    """

    path: str
    query: str | None

    def __init__(self, path: str, query: str | None) -> None:
        object.__setattr__(self, "path", path)
        object.__setattr__(self, "query", query)

    def __str__(self) -> str:
        return self.path if self.query is None else f"{self.path}?{self.query}"


# RFC 3986 host (a DNS-style name, IPv4, or a bracketed IPv6 literal) and an optional port. The
# underscore is accepted: container and service names carry it, and it is harmless in a URL.
_HOST = re.compile(r"(?P<host>[A-Za-z0-9._-]{1,253}|\[[0-9A-Fa-f:.]{2,45}\])(?::[0-9]{1,5})?")


# Results kept for the values seen most: a request's Host and target repeat across requests,
# and working them out again (a regular expression, a decoding pass) was 4 % of a refusal.
# Bounded in count and in the length of what is kept, and emptied when full, so that a client
# sending ever new values costs memory only up to the bound. Only accepted values are kept: a
# refused one raises again each time, as it did.
_KEPT_MAX = 1024
_KEPT_LENGTH = 256
_host_names: dict[str, str] = {}
_targets: dict[str, CanonicalTarget] = {}
_Kept = TypeVar("_Kept")


def host_name(host: str) -> str | None:
    """The host part of a ``Host`` header value (without the port), or None if the value is not
    a host[:port]."""
    name = _host_names.get(host)
    if name is not None:
        return name
    match = _HOST.fullmatch(host)
    if match is None:
        return None
    name = match.group("host")
    _keep(_host_names, host, name)
    return name


def check_host(host: str | None) -> None:
    """Refuse a ``Host`` that is not a host[:port] (``a@b``, ``a/b``, spaces, backslashes): it
    would be copied into ``X-Forwarded-Host``, where an upstream may build URLs from it."""
    if host is not None and host_name(host) is None:
        raise TargetError(TargetProblem.BAD_HOST)


def canonicalize(raw_target: str) -> CanonicalTarget:
    """Split and canonicalise a raw origin-form request target, or raise `TargetError`."""
    target = _targets.get(raw_target)
    if target is not None:
        return target
    if "#" in raw_target:
        raise TargetError(TargetProblem.FRAGMENT)
    raw_path, sep, query = raw_target.partition("?")
    if sep and any(ch in _QUERY_FORBIDDEN or ord(ch) > 0x7E for ch in query):
        raise TargetError(TargetProblem.BAD_CHARACTER)
    target = CanonicalTarget(canonicalize_path(raw_path), query if sep else None)
    _keep(_targets, raw_target, target)
    return target


def _keep(kept: dict[str, _Kept], text: str, answer: _Kept) -> None:
    """Keep ``answer`` for ``text`` unless the text is too long to be worth it."""
    if len(text) <= _KEPT_LENGTH:
        keep(kept, text, answer, _KEPT_MAX)


def canonicalize_path(raw_path: str) -> str:
    """Return the canonical form of an encoded path.

    Escapes of bytes a path may carry raw (unreserved, sub-delims, ``:`` and ``@``) are decoded,
    other escapes keep their bytes (upper-case hex),
    duplicate slashes are merged and dot segments resolved; anything that could be read two
    ways by the next server is refused.
    """
    if not raw_path.startswith("/"):
        raise TargetError(TargetProblem.NOT_ORIGIN_FORM)
    decoded = _decode_pchars(raw_path)
    if "//" not in decoded and "/." not in decoded:
        return decoded  # no empty or dot segment: the loop below would rebuild it unchanged
    segments: list[str] = []
    trailing_slash = False
    for segment in decoded.split("/")[1:]:
        trailing_slash = segment in {"", ".", ".."}
        if segment in {"", "."}:
            continue
        if segment == "..":
            if not segments:
                raise TargetError(TargetProblem.ESCAPES_ROOT)
            segments.pop()
            continue
        segments.append(segment)
    path = "/" + "/".join(segments)
    if trailing_slash and segments:
        path += "/"
    return path


def _decode_pchars(raw_path: str) -> str:
    if _PLAIN_PATH.fullmatch(raw_path):
        return raw_path  # nothing to decode or refuse (the common case, checked in C)
    out: list[str] = []
    i = 0
    length = len(raw_path)
    while i < length:
        ch = raw_path[i]
        if ch == "%":
            hex_digits = raw_path[i + 1 : i + 3]
            if len(hex_digits) != 2 or not set(hex_digits) <= _HEX:
                raise TargetError(TargetProblem.BAD_ESCAPE)
            byte = int(hex_digits, 16)
            _refuse_byte(byte)
            out.append(chr(byte) if byte in _DECODED else "%" + hex_digits.upper())
            i += 3
            continue
        if ch not in _PATH_CHARS:
            _refuse_byte(ord(ch) if ord(ch) < 0x100 else 0x80)
            raise TargetError(TargetProblem.BAD_CHARACTER)
        out.append(ch)
        i += 1
    return "".join(out)


def _refuse_byte(byte: int) -> None:
    if byte < 0x20 or byte == 0x7F:
        raise TargetError(TargetProblem.CONTROL_CHARACTER)
    if byte == 0x2F:
        raise TargetError(TargetProblem.ENCODED_SLASH)
    if byte == 0x5C:
        raise TargetError(TargetProblem.BACKSLASH)
    if byte == 0x3B:
        raise TargetError(TargetProblem.PATH_PARAMETER)
