"""Cross-origin resource sharing (CORS, the Fetch standard) for one route, as values.

A route's `CorsPolicy` says which web origins may call it from a browser. The gateway owns CORS
on such a route: it answers the preflight itself (before any token work, without reaching the
upstream), puts the CORS fields on every answer for an allowed origin, refusals included (so a
page can read why it was refused), and removes the upstream's own ``Access-Control-*`` fields
(two ``Access-Control-Allow-Origin`` fields make the browser refuse the response).

Origins, as written in routes.yaml:

- ``https://app.example.com`` (any scheme, a host, an optional port): that origin exactly.
  Scheme and host compare case-insensitively and a default port (``:443``, ``:80``) is
  ignored, as browsers serialise origins;
- ``https://*.example.com`` (http or https): exactly one more DNS label in front of the rest
  (``https://a.example.com``), never two (``a.b.example.com``), never none (``example.com``),
  never another scheme or port; at least two labels after the ``*``;
- ``null`` literally: the opaque origin (sandboxed frames, ``file:`` pages); never implied;
- ``*``: every origin (only without ``credentials``: browsers refuse that pair).

The only request value a CORS answer repeats is the Origin, and only after it matched an allowed
origin, in its canonical form (lower case, no default port): a grammar of letters, digits, ``.``,
``-``, ``:`` and ``[]``, so nothing else of the request can be reflected.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field

from multidict import CIMultiDict

__all__ = [
    "ALWAYS_EXPOSED",
    "PREFLIGHT_VARY",
    "CorsError",
    "CorsHeaders",
    "CorsPolicy",
    "PreflightRequest",
    "answer_preflight",
    "apply_cors",
    "canonical_origin",
    "preflight_request",
    "request_origin",
    "response_cors",
]

# Fields the gateway itself may put on an answer of a CORS route (a refusal's challenge, its
# Retry-After, the rate-limit fields): exposed to the page always, so it can read why.
ALWAYS_EXPOSED = ("WWW-Authenticate", "Retry-After", "RateLimit", "RateLimit-Policy")
# Request headers a browser sends on a preflight, and so the caches a preflight answer varies by.
PREFLIGHT_VARY = "Origin, Access-Control-Request-Method, Access-Control-Request-Headers"

_DEFAULT_PORTS = {"http": "80", "https": "443"}
_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_HOST = rf"(?:{_LABEL}(?:\.{_LABEL})*|\[[0-9a-f:.]+\])"
# scheme "://" host [":" port], nothing else (no path, no userinfo, no trailing slash).
_ORIGIN = re.compile(rf"([a-z][a-z0-9+.-]*)://({_HOST})(?::([0-9]{{1,5}}))?")
_PATTERN = re.compile(rf"(https?)://\*((?:\.{_LABEL}){{2,}})(?::([0-9]{{1,5}}))?")
_HEADER_NAME = re.compile(r"[A-Za-z0-9-]+")
_METHOD = re.compile(r"[A-Z0-9!#$%&'*+.^_`|~-]+")


class CorsError(ValueError):
    """A `CorsPolicy` that cannot be built (the message is for the operator)."""


def canonical_origin(value: str) -> str | None:
    """An origin as browsers serialise it (lower case, no default port), or None when
    ``value`` is not ``scheme://host[:port]`` (``null`` is not an origin here: it is matched
    only literally)."""
    lowered = value.lower()
    match = _ORIGIN.fullmatch(lowered)
    if match is None:
        return None
    scheme, host, port = match.groups()
    if port is None or _DEFAULT_PORTS.get(scheme) == port.lstrip("0"):
        return f"{scheme}://{host}"
    if int(port) > 65535:
        return None
    return f"{scheme}://{host}:{int(port)}"


@dataclass(frozen=True, slots=True)
class _OriginPattern:
    """``scheme://*.rest[:port]``: one DNS label where the ``*`` is."""

    written: str
    scheme: str
    suffix: str  # ".example.com"
    port: str  # "" for the scheme's default port, else ":8443"

    def matches(self, origin: str) -> bool:
        head = f"{self.scheme}://"
        tail = self.suffix + self.port
        if not (origin.startswith(head) and origin.endswith(tail)):
            return False
        label = origin[len(head) : len(origin) - len(tail)]
        return re.fullmatch(_LABEL, label) is not None


def _pattern(written: str) -> _OriginPattern:
    match = _PATTERN.fullmatch(written.lower())
    if match is None:
        raise CorsError(
            f"origin pattern '{written}': write http(s)://*.domain.tld[:port], the '*' standing "
            "for exactly one DNS label, with at least two labels after it"
        )
    scheme, suffix, port = match.groups()
    shown_port = "" if port is None or _DEFAULT_PORTS[scheme] == port else f":{int(port)}"
    return _OriginPattern(written, scheme, suffix, shown_port)


@dataclass(frozen=True, slots=True, kw_only=True)
class CorsPolicy:
    """Which origins may call a route from a browser, and what they may send and read.

    ``methods`` None: the route's own methods. ``headers`` are request header names the page may
    send, beside the CORS-safelisted ones; on a protected route ``Authorization`` is always
    allowed (the page must send its token), on a public route only when listed.
    ``max_age`` None: the browser's default (5 s).
    """

    origins: tuple[str, ...]
    methods: frozenset[str] | None = None
    headers: frozenset[str] = frozenset()  # lower-cased
    expose_headers: tuple[str, ...] = ()
    credentials: bool = False
    max_age: int | None = None
    # Derived once at construction (validated there).
    any_origin: bool = field(init=False, repr=False, compare=False)
    _exact: frozenset[str] = field(init=False, repr=False, compare=False)
    _patterns: tuple[_OriginPattern, ...] = field(init=False, repr=False, compare=False)
    _exposed: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.origins:
            raise CorsError("'origins' must list at least one origin")
        exact: set[str] = set()
        patterns = []
        for written in self.origins:
            if written == "*":
                continue
            if written == "null":
                exact.add("null")
            elif "*" in written:
                patterns.append(_pattern(written))
            else:
                canonical = canonical_origin(written)
                if canonical is None or written.rstrip("/") != written:
                    raise CorsError(
                        f"'{written}' is not an origin: write scheme://host[:port] "
                        "(no path, no trailing slash; IDNs in punycode)"
                    )
                exact.add(canonical)
        any_origin = "*" in self.origins
        if any_origin and self.credentials:
            raise CorsError(
                "origins '*' cannot go with 'credentials: true' (browsers refuse the pair): "
                "list the origins"
            )
        if any_origin and len(self.origins) > 1:
            raise CorsError("origins '*' allows every origin: list nothing else beside it")
        for name in (*self.headers, *self.expose_headers):
            if not _HEADER_NAME.fullmatch(name):
                raise CorsError(f"'{name}' is not a header name (letters, digits and '-')")
        for method in self.methods or ():
            if not _METHOD.fullmatch(method):
                raise CorsError(f"'{method}' is not a method (methods are upper-case: GET, POST)")
        if self.max_age is not None and not 0 <= self.max_age <= 86400:
            raise CorsError("'max_age' must be from 0 to 24h (browsers cap it lower)")
        exposed: dict[str, str] = {}  # each name once, whatever its case
        for name in (*ALWAYS_EXPOSED, *self.expose_headers):
            exposed.setdefault(name.lower(), name)
        object.__setattr__(self, "any_origin", any_origin)
        object.__setattr__(self, "_exact", frozenset(exact))
        object.__setattr__(self, "_patterns", tuple(patterns))
        object.__setattr__(self, "_exposed", ", ".join(exposed.values()))

    def allowed_origin(self, origin: str) -> str | None:
        """The value of ``Access-Control-Allow-Origin`` for a request's ``Origin``: ``*``, the
        origin in canonical form, or None when it is not allowed."""
        if self.any_origin:
            return "*"
        if origin in self._exact:  # browsers send the canonical form: one lookup
            return origin
        canonical = canonical_origin(origin)
        if canonical is None:
            return None
        if canonical in self._exact:
            return canonical
        if any(pattern.matches(canonical) for pattern in self._patterns):
            return canonical
        return None

    def allowed_headers(self, *, protected: bool) -> frozenset[str]:
        """The request header names (lower case) a page may send."""
        return self.headers | {"authorization"} if protected else self.headers

    def actual_fields(self, allowed: str) -> tuple[tuple[str, str], ...]:
        """The fields on an answer (forwarded or refused) for an allowed origin."""
        fields = [("Access-Control-Allow-Origin", allowed)]
        if self.credentials:
            fields.append(("Access-Control-Allow-Credentials", "true"))
        fields.append(("Access-Control-Expose-Headers", self._exposed))
        return tuple(fields)

    def __str__(self) -> str:
        parts = [f"origins {', '.join(self.origins)}"]
        if self.methods is not None:
            parts.append(f"methods {', '.join(sorted(self.methods))}")
        if self.headers:
            parts.append(f"headers {', '.join(sorted(self.headers))}")
        if self.expose_headers:
            parts.append(f"expose {', '.join(self.expose_headers)}")
        parts.append(f"credentials {'true' if self.credentials else 'false'}")
        if self.max_age is not None:
            parts.append(f"max_age {self.max_age}s")
        return "; ".join(parts)


@dataclass(frozen=True, slots=True)
class CorsHeaders:
    """What a CORS route's answer gets: ``fields`` (empty when the origin is not allowed or
    there is none) and ``Vary: Origin`` (the answer depends on it either way)."""

    fields: tuple[tuple[str, str], ...] = ()


def request_origin(values: Sequence[str]) -> str | None:
    """The ``Origin`` a request's fields say (None without one). A browser sends one field:
    two or more are read as an origin no policy lists (``""``), never as whichever one matches,
    so such a request gets no CORS fields, and such a preflight is refused."""
    if not values:
        return None
    return values[0] if len(values) == 1 else ""


@dataclass(frozen=True, slots=True)
class PreflightRequest:
    """What a preflight asks: from which origin, for which method, with which headers."""

    origin: str
    method: str
    headers: tuple[str, ...]  # lower-cased names


def preflight_request(method: str, headers: Iterable[tuple[str, str]]) -> PreflightRequest | None:
    """The preflight a request is, or None: an ``OPTIONS`` with ``Origin`` and
    ``Access-Control-Request-Method`` (an ``OPTIONS`` without them is an ordinary request)."""
    if method != "OPTIONS":
        return None
    requested = None
    origins: list[str] = []
    names: list[str] = []
    for name, value in headers:
        lowered = name.lower()
        if lowered == "origin":
            origins.append(value)
        elif lowered == "access-control-request-method":
            requested = value
        elif lowered == "access-control-request-headers":
            names.extend(part.strip().lower() for part in value.split(",") if part.strip())
    origin = request_origin(origins)
    if origin is None or requested is None:
        return None
    return PreflightRequest(origin, requested.strip(), tuple(names))


def answer_preflight(
    policy: CorsPolicy, preflight: PreflightRequest, *, route_methods: Collection[str] | None,
    protected: bool,
) -> tuple[tuple[str, str], ...] | str:  # fmt: skip
    """The 204's fields for an allowed preflight, or why it is refused (the access log's
    ``auth.reason``; the refusal carries no CORS fields, so the browser blocks the request)."""
    allowed = policy.allowed_origin(preflight.origin)
    if allowed is None:
        return "cors_origin_not_allowed"
    method = preflight.method
    methods = policy.methods if policy.methods is not None else route_methods
    if not _METHOD.fullmatch(method) or (methods is not None and method not in methods):
        return "cors_method_not_allowed"
    may_send = policy.allowed_headers(protected=protected)
    if any(name not in may_send for name in preflight.headers):
        return "cors_headers_not_allowed"
    fields = [("Access-Control-Allow-Origin", allowed)]
    if policy.credentials:
        fields.append(("Access-Control-Allow-Credentials", "true"))
    fields.append(("Access-Control-Allow-Methods", method))
    if may_send:
        fields.append(("Access-Control-Allow-Headers", ", ".join(sorted(may_send))))
    if policy.max_age is not None:
        fields.append(("Access-Control-Max-Age", str(policy.max_age)))
    fields.append(("Vary", PREFLIGHT_VARY))
    return tuple(fields)


_NO_FIELDS = CorsHeaders()


def response_cors(policy: CorsPolicy | None, origin: str | None) -> CorsHeaders | None:
    """What the answer of a route with ``policy`` gets for a request with ``origin``: None on a
    route without CORS (the upstream's own fields pass untouched)."""
    if policy is None:
        return None
    if origin is None:
        return _NO_FIELDS
    allowed = policy.allowed_origin(origin)
    return CorsHeaders(policy.actual_fields(allowed)) if allowed is not None else _NO_FIELDS


def apply_cors(headers: CIMultiDict[str], cors: CorsHeaders) -> None:
    """Set a CORS route's fields on an answer's headers: every ``Access-Control-*`` already
    there (the upstream's) removed, ours set, ``Origin`` added to ``Vary`` unless listed (an
    upstream's ``Vary`` is kept)."""
    for name in [name for name in headers if name[:15].lower() == "access-control-"]:
        headers.popall(name, None)
    for name, value in cors.fields:
        headers[name] = value
    varies = [
        token.strip().lower() for value in headers.getall("Vary", ()) for token in value.split(",")
    ]
    if "origin" not in varies and "*" not in varies:
        headers.add("Vary", "Origin")
