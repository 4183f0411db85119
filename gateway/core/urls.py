"""URLs: where a forwarded request goes, and which URLs keys may be fetched from."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

import yarl

from gateway.core.models import Origin, Route, Upstream
from gateway.core.target import CanonicalTarget

__all__ = [
    "UpstreamTarget",
    "has_credentials",
    "https_or_loopback",
    "is_loopback",
    "upstream_url",
    "without_userinfo",
]

# The userinfo of a URL (``user:password@``, ``:password@``, ``user@``), up to its last '@'.
_USERINFO = re.compile(r"(?<=//)[^/?#]*@")


def without_userinfo(text: str) -> str:
    """``text`` for a problem message, its userinfo cut out: config problems are printed and
    logged (a rejected reload), and the userinfo is a credential."""
    return _USERINFO.sub("", text)


def has_credentials(url: yarl.URL) -> bool:
    """Whether ``url`` has a userinfo (a password alone, ``http://:secret@host``, has no user)."""
    return url.raw_user is not None or url.raw_password is not None


def is_loopback(url: yarl.URL) -> bool:
    """Whether the URL's host is ``localhost`` or a loopback address."""
    host = (url.host or "").strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def https_or_loopback(url: yarl.URL, *, allow_insecure_http: bool = False) -> bool:
    """Keys travel over https, or plain http to a loopback host, or where explicitly allowed."""
    if url.scheme == "https":
        return True
    return url.scheme == "http" and (allow_insecure_http or is_loopback(url))


@dataclass(frozen=True, slots=True, init=False)
class UpstreamTarget:
    """Where a forwarded request goes: the upstream's origin, and the path and query the
    upstream receives, exactly as written on its request line. (Made for every forwarded
    request: its ``__init__`` is written out, to be compiled with the module.)"""

    origin: Origin
    path_qs: str

    def __init__(self, origin: Origin, path_qs: str) -> None:
        object.__setattr__(self, "origin", origin)
        object.__setattr__(self, "path_qs", path_qs)

    @property
    def path(self) -> str:
        """The path, without the query."""
        return self.path_qs.partition("?")[0]

    def __str__(self) -> str:
        origin = self.origin
        return f"{origin.scheme}://{origin.authority}{self.path_qs}"

    @property
    def without_query(self) -> str:
        """The URL without its query (which is forwarded as sent and may carry anything), for
        traces and `gateway explain`."""
        origin = self.origin
        return f"{origin.scheme}://{origin.authority}{self.path}"


def upstream_url(upstream: Upstream, route: Route, target: CanonicalTarget) -> UpstreamTarget:
    """Where the upstream receives the request: the canonical path, unchanged unless the route
    strips its prefix, under the upstream's base path, with the query exactly as sent (nothing
    decoded or resolved again)."""
    path = target.path
    if route.strip_prefix and route.path != "/":
        path = path[len(route.path) :] or "/"
        if not path.startswith("/"):
            path = "/" + path
    origin = upstream.origin
    query = target.query
    path = origin.base_path + path
    return UpstreamTarget(origin, f"{path}?{query}" if query else path)
