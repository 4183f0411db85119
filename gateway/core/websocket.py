"""WebSocket handshakes (RFC 6455 section 4) as pure values: what a client asked for, whether an
upstream's answer really switched protocols, and the bearer token a browser can only send as a
subprotocol.

A tunnel is a classic smuggling vector (an upstream that answers ``200`` to an upgrade while a
proxy then treats the connection as raw bytes; ``h2c``), so both sides are judged strictly:

- The client: ``GET``, HTTP/1.1, exactly one ``Upgrade: websocket``, ``Connection`` naming
  ``upgrade``, ``Sec-WebSocket-Version: 13``, a ``Sec-WebSocket-Key`` of 16 base64 bytes, and
  no body (no ``Transfer-Encoding``, no ``Content-Length`` but 0), at most one ``Origin``.
  Anything else that names ``websocket`` in ``Upgrade`` is refused (400), never guessed at.
- The upstream: ``101``, ``Upgrade: websocket``, ``Connection: upgrade``, the
  ``Sec-WebSocket-Accept`` our key calls for, at most one subprotocol and one the client
  offered, no extension (none was offered). Anything else opens no tunnel.

Browsers cannot set ``Authorization`` on a WebSocket. The one bearer convention accepted is
Kubernetes': a subprotocol entry ``base64url.bearer.authorization.k8s.io.<base64url(token)>``
(prefix matched in any case, so no spelling of it is ever passed on as a subprotocol).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from gateway.core.errors import MalformedCredentials

__all__ = [
    "BEARER_PROTOCOL_PREFIX",
    "WEBSOCKET_VERSION",
    "HandshakeError",
    "SwitchError",
    "Upgrade",
    "accept_value",
    "bearer_subprotocol",
    "check_switch",
    "new_key",
    "parse_upgrade",
    "subprotocol_token",
]

WEBSOCKET_VERSION = "13"
BEARER_PROTOCOL_PREFIX = "base64url.bearer.authorization.k8s.io."
_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_KEY = re.compile(r"[A-Za-z0-9+/]{21}[AQgw]==")  # 16 bytes, canonical base64
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")  # RFC 9110 token
_B64URL = re.compile(r"[A-Za-z0-9_-]+")
_B64TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*")  # RFC 6750 b64token


class HandshakeError(Exception):
    """The client's upgrade request is not a WebSocket handshake the gateway will tunnel;
    ``problem`` names what is wrong (for logs and tests, never client data)."""

    def __init__(self, problem: str) -> None:
        super().__init__(problem)
        self.problem = problem


class SwitchError(Exception):
    """The upstream's answer does not switch to WebSocket as asked; ``problem`` says how."""

    def __init__(self, problem: str) -> None:
        super().__init__(problem)
        self.problem = problem


@dataclass(frozen=True, slots=True)
class Upgrade:
    """A well-formed WebSocket handshake request.

    ``protocols``: the subprotocols offered, bearer entries removed (what the upstream may be
    offered); ``bearer``: the bearer entries themselves (`subprotocol_token` reads them);
    ``origin``: the page's origin (browsers always send it; CORS does not apply to WebSocket, so
    a route's policy must check it at the handshake).
    """

    key: str
    protocols: tuple[str, ...] = ()
    bearer: tuple[str, ...] = field(default=(), repr=False)
    origin: str | None = None


def parse_upgrade(
    method: str, version: tuple[int, int], headers: Iterable[tuple[str, str]]
) -> Upgrade | None:
    """The WebSocket handshake the request makes; None when no ``Upgrade`` names ``websocket``
    (another upgrade, such as ``h2c``, is not a WebSocket one and is never tunnelled).

    Raises `HandshakeError` for a request that asks for WebSocket but is not exactly a valid
    handshake.
    """
    upgrade: list[str] = []
    connection: list[str] = []
    versions: list[str] = []
    keys: list[str] = []
    offered: list[str] = []
    origins: list[str] = []
    body = False
    for name, value in headers:
        lower = name.lower()
        if lower == "upgrade":
            upgrade.append(value)
        elif lower == "connection":
            connection.extend(_tokens(value))
        elif lower == "sec-websocket-version":
            versions.append(value.strip())
        elif lower == "sec-websocket-key":
            keys.append(value.strip())
        elif lower == "sec-websocket-protocol":
            offered.extend(part.strip() for part in value.split(","))
        elif lower == "origin":
            origins.append(value)
        elif lower == "transfer-encoding" or (lower == "content-length" and value.strip() != "0"):
            body = True
    if not any("websocket" in _tokens(value) for value in upgrade):
        return None
    if body:  # bytes after the head belong to the tunnel: a body would be read as frames
        raise HandshakeError("body")
    if method != "GET":
        raise HandshakeError("method")
    if version != (1, 1):
        raise HandshakeError("http_version")
    if len(upgrade) != 1 or upgrade[0].strip().lower() != "websocket":
        raise HandshakeError("upgrade")
    if "upgrade" not in connection:
        raise HandshakeError("connection")
    if versions != [WEBSOCKET_VERSION]:
        raise HandshakeError("websocket_version")
    if len(keys) != 1 or not _KEY.fullmatch(keys[0]):
        raise HandshakeError("key")
    if len(origins) > 1:  # which one the page is on cannot be told: never a guess
        raise HandshakeError("origin")
    protocols: list[str] = []
    bearer: list[str] = []
    for entry in offered:
        if not _TOKEN.fullmatch(entry):
            raise HandshakeError("protocol")
        if bearer_subprotocol(entry):
            bearer.append(entry)
        elif entry not in protocols:
            protocols.append(entry)
    return Upgrade(keys[0], tuple(protocols), tuple(bearer), origins[0] if origins else None)


def bearer_subprotocol(entry: str) -> bool:
    """Whether a subprotocol entry is (any spelling of) the bearer convention's."""
    return entry[: len(BEARER_PROTOCOL_PREFIX)].lower() == BEARER_PROTOCOL_PREFIX


def subprotocol_token(bearer: Sequence[str]) -> str | None:
    """The bearer token carried by the subprotocol entries (None when there is none).

    Raises `MalformedCredentials` for two entries, another spelling of the prefix, or a value
    that is not the base64url (unpadded) of one RFC 6750 token.
    """
    if not bearer:
        return None
    if len(bearer) > 1:
        raise MalformedCredentials("Send exactly one bearer subprotocol")
    entry = bearer[0]
    encoded = entry[len(BEARER_PROTOCOL_PREFIX) :]
    if not entry.startswith(BEARER_PROTOCOL_PREFIX) or not _B64URL.fullmatch(encoded):
        raise MalformedCredentials("The bearer subprotocol is malformed")
    try:
        decoded = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
    except (binascii.Error, ValueError):
        raise MalformedCredentials("The bearer subprotocol is malformed") from None
    token = decoded.decode("ascii", "replace")
    if _b64url(decoded) != encoded or not _B64TOKEN.fullmatch(token):
        raise MalformedCredentials("The bearer subprotocol is malformed")
    return token


def accept_value(key: str) -> str:
    """The ``Sec-WebSocket-Accept`` a server must answer ``key`` with."""
    return base64.b64encode(hashlib.sha1(key.encode("ascii") + _GUID).digest()).decode()  # noqa: S324 - RFC 6455 mandates SHA-1


def new_key() -> str:
    """A fresh ``Sec-WebSocket-Key`` (16 random bytes, base64)."""
    return base64.b64encode(os.urandom(16)).decode()


def check_switch(
    status: int, headers: Mapping[str, str] | Iterable[tuple[str, str]], key: str,
    offered: Sequence[str],
) -> str | None:  # fmt: skip
    """The subprotocol the upstream chose (None for none), if its answer really switched to
    WebSocket for ``key``; raises `SwitchError` otherwise."""
    if status != 101:
        raise SwitchError("status")
    items = headers.items() if isinstance(headers, Mapping) else headers
    upgrade: list[str] = []
    connection: list[str] = []
    accept: list[str] = []
    chosen: list[str] = []
    for name, value in items:
        lower = name.lower()
        if lower == "upgrade":
            upgrade.append(value.strip().lower())
        elif lower == "connection":
            connection.extend(_tokens(value))
        elif lower == "sec-websocket-accept":
            accept.append(value.strip())
        elif lower == "sec-websocket-protocol":
            chosen.extend(part.strip() for part in value.split(","))
        elif lower == "sec-websocket-extensions":
            raise SwitchError("extensions")  # none was offered
    if upgrade != ["websocket"]:
        raise SwitchError("upgrade")
    if "upgrade" not in connection:
        raise SwitchError("connection")
    if accept != [accept_value(key)]:
        raise SwitchError("accept")
    if not chosen:
        return None
    if len(chosen) != 1 or chosen[0] not in offered:
        raise SwitchError("protocol")
    return chosen[0]


def _tokens(value: str) -> list[str]:
    return [part.strip().lower() for part in value.split(",") if part.strip()]


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()
