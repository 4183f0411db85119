"""Small network facts shared by config validation and the key fetcher."""

from __future__ import annotations

import ipaddress

import yarl

__all__ = ["https_or_loopback", "is_loopback"]


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
