"""Header values, framing and expectations the gateway refuses before deciding anything else.

A header value whose bytes are not UTF-8 cannot be forwarded byte for byte (400 ``bad_header``).

RFC 9112 section 6.1: a request whose ``Transfer-Encoding`` names any coding other than a final
``chunked`` cannot be framed by a server that only knows chunked (501); ``Transfer-Encoding`` on
an HTTP/1.0 request is a smuggling signal, since HTTP/1.0 has no such header (400, and the
connection is closed). RFC 9110 section 10.1.1: an ``Expect`` other than ``100-continue`` is
answered 417.
"""

from __future__ import annotations

from collections.abc import Iterable

from gateway.core.headers import forwardable_value
from gateway.core.refusals import (
    EXPECTATION_FAILED,
    TRANSFER_ENCODING_ON_HTTP10,
    UNSUPPORTED_TRANSFER_CODING,
    Refusal,
    from_target_error,
)
from gateway.core.target import TargetError, TargetProblem

__all__ = ["expects_continue", "protocol_refusal"]

_BAD_HEADER = from_target_error(TargetError(TargetProblem.BAD_HEADER))


def protocol_refusal(
    headers: Iterable[tuple[str, str]], version: tuple[int, int]
) -> Refusal | None:
    """The refusal for the request's header values, framing or expectation, or None when all
    are fine: one pass over the headers. A value that cannot be passed on byte for byte comes
    first (400 ``bad_header``), then an unmet expectation (417), then the framing."""
    codings: list[str] = []
    unmet_expectation = False
    for name, value in headers:
        if not value.isascii() and not forwardable_value(value):  # ASCII always is
            return _BAD_HEADER
        lower = name.lower()
        if lower == "transfer-encoding":
            codings.extend(part.strip().lower() for part in value.split(","))
        elif lower == "expect" and version >= (1, 1) and value.strip().lower() != "100-continue":
            unmet_expectation = True
    if unmet_expectation:
        return EXPECTATION_FAILED
    if not codings:
        return None
    if version < (1, 1):
        return TRANSFER_ENCODING_ON_HTTP10
    if codings != ["chunked"]:  # chunked is final and applied once (RFC 9112 section 6.1)
        return UNSUPPORTED_TRANSFER_CODING
    return None


def expects_continue(expect: str | None, version: tuple[int, int]) -> bool:
    """Whether a client that sent this ``Expect`` waits for ``100 Continue`` before its body."""
    return version >= (1, 1) and expect is not None and expect.strip().lower() == "100-continue"
