"""What can go wrong between the gateway and an upstream, as values the handler maps to statuses.

The tree is shallow and its leaves carry data::

    UpstreamFailure        the upstream exchange failed; ``kind`` says how (the status follows)
    BodyTooLarge           a request body grew past the route's limit while streaming (413)
    BadResponse            internal: the upstream's bytes are not an acceptable HTTP/1.1 answer
    ConnectionGone         internal: the upstream connection ended before the exchange did
"""

from __future__ import annotations

import copy
from typing import TypeVar

__all__ = ["BadResponse", "BodyTooLarge", "ConnectionGone", "UpstreamFailure", "fresh"]

_E = TypeVar("_E", bound=BaseException)

# The kinds of UpstreamFailure, and the status each one is answered with:
#   timeout         504  connect, response head, next body chunk or request body write too slow
#   client_timeout  504  the client stalled while its body was being streamed upstream
#   busy            503  no pooled connection became free in time (the upstream was never tried)
#   tls             502  handshake or certificate verification failed
#   unreachable     502  refused, reset or closed before a complete answer
#   bad_response    502  the answer was not valid HTTP/1.1 (status line, header bytes, framing)
#   client_closed   502  the client went away while its body was being streamed upstream
_TIMEOUTS = frozenset({"timeout", "client_timeout"})


class UpstreamFailure(Exception):
    """The upstream could not answer; ``kind`` names why (see the table above) and ``detail`` is
    a short, fixed name for the logs (never the upstream's address or a library's text)."""

    def __init__(self, upstream: str, *, kind: str, detail: str) -> None:
        super().__init__(detail)
        self.upstream = upstream
        self.kind = kind
        self.detail = detail

    def __reduce__(self) -> tuple[object, ...]:
        return _upstream_failure, (self.upstream, self.kind, self.detail)

    @property
    def timed_out(self) -> bool:
        """Whether the exchange was too slow (504) rather than unreachable or refused (502)."""
        return self.kind in _TIMEOUTS

    @property
    def busy(self) -> bool:
        """Whether the gateway's own pool to the upstream was full (503, upstream never tried)."""
        return self.kind == "busy"


class BodyTooLarge(Exception):
    """A request body without a Content-Length grew past the route's limit while streaming; the
    upstream connection was reset, so the upstream never sees a complete (truncated) body."""


class BadResponse(Exception):
    """The upstream's bytes are not an acceptable HTTP/1.1 response; ``reason`` says which rule
    they broke (``parse``, ``upgrade``, ``status_reason``, ``header_bytes``, ``too_many_headers``,
    ``head_too_large``, ``trailers_too_large``)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class ConnectionGone(Exception):
    """The upstream connection closed or was reset before the exchange on it was complete."""


def _upstream_failure(upstream: str, kind: str, detail: str) -> UpstreamFailure:
    return UpstreamFailure(upstream, kind=kind, detail=detail)


def fresh(error: _E) -> _E:
    """A new exception equal to ``error``, to raise in its place.

    An exception that is kept (by a connection, a finished task) and raised again collects the
    raising frames in its traceback; those frames hold whatever holds the exception, and through
    it the request and its buffered body: a reference cycle only the collector frees, which
    under the gateway's rare collections (`settle_heap`) piles up by the megabyte. A copy has no
    traceback and nothing keeps it.
    """
    return copy.copy(error)
