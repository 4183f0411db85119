"""Request framing and expectations the gateway refuses before deciding anything else.

RFC 9112 section 6.1: a request whose ``Transfer-Encoding`` names any coding other than a final
``chunked`` cannot be framed by a server that only knows chunked (501); ``Transfer-Encoding`` on
an HTTP/1.0 request is a smuggling signal, since HTTP/1.0 has no such header (400, and the
connection is closed). RFC 9110 section 10.1.1: an ``Expect`` other than ``100-continue`` is
answered 417.
"""

from __future__ import annotations

from collections.abc import Iterable

from gateway.core.refusals import (
    EXPECTATION_FAILED,
    TRANSFER_ENCODING_ON_HTTP10,
    UNSUPPORTED_TRANSFER_CODING,
    Refusal,
)

__all__ = ["expects_continue", "protocol_refusal"]


def protocol_refusal(
    headers: Iterable[tuple[str, str]], version: tuple[int, int]
) -> Refusal | None:
    """The refusal for the request's framing or expectation, or None when both are fine."""
    codings: list[str] = []
    for name, value in headers:
        lower = name.lower()
        if lower == "transfer-encoding":
            codings.extend(part.strip().lower() for part in value.split(","))
        elif lower == "expect" and version >= (1, 1) and value.strip().lower() != "100-continue":
            return EXPECTATION_FAILED
    if not codings:
        return None
    if version < (1, 1):
        return TRANSFER_ENCODING_ON_HTTP10
    if codings != ["chunked"]:  # chunked is final and applied once (RFC 9112 section 6.1)
        return UNSUPPORTED_TRANSFER_CODING
    return None


def expects_continue(headers: Iterable[tuple[str, str]], version: tuple[int, int]) -> bool:
    """Whether the client waits for ``100 Continue`` before sending its body."""
    return version >= (1, 1) and any(
        name.lower() == "expect" and value.strip().lower() == "100-continue"
        for name, value in headers
    )
