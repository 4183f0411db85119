"""The WebSocket handshake rules (client request, upstream answer) and the bearer subprotocol."""

from __future__ import annotations

import base64

import pytest

from gateway.core.errors import MalformedCredentials
from gateway.core.websocket import (
    BEARER_PROTOCOL_PREFIX,
    HandshakeError,
    SwitchError,
    accept_value,
    check_switch,
    new_key,
    parse_upgrade,
    subprotocol_token,
)

KEY = "dGhlIHNhbXBsZSBub25jZQ=="  # RFC 6455 section 1.3's example
HANDSHAKE = [
    ("Upgrade", "websocket"),
    ("Connection", "Upgrade"),
    ("Sec-WebSocket-Version", "13"),
    ("Sec-WebSocket-Key", KEY),
]
JWT = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhIn0.c2ln"


def bearer_entry(token: str) -> str:
    return BEARER_PROTOCOL_PREFIX + base64.urlsafe_b64encode(token.encode()).rstrip(b"=").decode()


def replaced(name: str, value: str | None) -> list[tuple[str, str]]:
    kept = [(n, v) for n, v in HANDSHAKE if n != name]
    return kept if value is None else [*kept, (name, value)]


def test_rfc_example_accept_value() -> None:
    """The accept value is RFC 6455's worked example."""
    assert accept_value(KEY) == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


def test_new_keys_are_valid_and_fresh() -> None:
    """A fresh key is 16 base64 bytes the handshake rules accept, and differs each time."""
    key = new_key()
    assert len(base64.b64decode(key)) == 16
    assert key != new_key()
    assert parse_upgrade("GET", (1, 1), replaced("Sec-WebSocket-Key", key)) is not None


def test_valid_handshake() -> None:
    """A valid handshake gives its key and subprotocols, bearer entries set apart."""
    headers = [*HANDSHAKE, ("Sec-WebSocket-Protocol", f"chat, {bearer_entry(JWT)}, v2.chat")]
    upgrade = parse_upgrade("GET", (1, 1), headers)
    assert upgrade is not None
    assert upgrade.key == KEY
    assert upgrade.protocols == ("chat", "v2.chat")
    assert upgrade.bearer == (bearer_entry(JWT),)
    assert JWT not in repr(upgrade)
    assert bearer_entry(JWT) not in repr(upgrade)


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param([], id="no-upgrade"),
        pytest.param(replaced("Upgrade", "h2c"), id="h2c"),
        pytest.param(replaced("Upgrade", "HTTP/2.0"), id="http2"),
        pytest.param(replaced("Upgrade", "websocketx"), id="lookalike-token"),
    ],
)
def test_other_upgrades_are_not_websocket(headers: list[tuple[str, str]]) -> None:
    """Requests that do not name websocket in Upgrade are plain requests (None)."""
    assert parse_upgrade("GET", (1, 1), headers) is None


@pytest.mark.parametrize(
    ("method", "version", "headers", "problem"),
    [
        ("POST", (1, 1), HANDSHAKE, "method"),
        ("HEAD", (1, 1), HANDSHAKE, "method"),
        ("get", (1, 1), HANDSHAKE, "method"),
        ("GET", (1, 0), HANDSHAKE, "http_version"),
        ("GET", (2, 0), HANDSHAKE, "http_version"),
        ("GET", (1, 1), replaced("Upgrade", "websocket, h2c"), "upgrade"),
        ("GET", (1, 1), replaced("Upgrade", "h2c, websocket"), "upgrade"),
        ("GET", (1, 1), [*HANDSHAKE, ("Upgrade", "websocket")], "upgrade"),
        ("GET", (1, 1), replaced("Upgrade", "websocket/13"), None),
        ("GET", (1, 1), replaced("Connection", None), "connection"),
        ("GET", (1, 1), replaced("Connection", "keep-alive"), "connection"),
        ("GET", (1, 1), replaced("Connection", "upgradex"), "connection"),
        ("GET", (1, 1), replaced("Sec-WebSocket-Version", None), "websocket_version"),
        ("GET", (1, 1), replaced("Sec-WebSocket-Version", "8"), "websocket_version"),
        ("GET", (1, 1), [*HANDSHAKE, ("Sec-WebSocket-Version", "13")], "websocket_version"),
        ("GET", (1, 1), replaced("Sec-WebSocket-Key", None), "key"),
        ("GET", (1, 1), replaced("Sec-WebSocket-Key", "c2hvcnQ="), "key"),
        ("GET", (1, 1), replaced("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZR=="), "key"),
        ("GET", (1, 1), replaced("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ"), "key"),
        ("GET", (1, 1), [*HANDSHAKE, ("Sec-WebSocket-Key", KEY)], "key"),
        ("GET", (1, 1), [*HANDSHAKE, ("Sec-WebSocket-Protocol", "a b")], "protocol"),
        ("GET", (1, 1), [*HANDSHAKE, ("Content-Length", "5")], "body"),
        ("GET", (1, 1), [*HANDSHAKE, ("Transfer-Encoding", "chunked")], "body"),
        ("GET", (1, 1), [*HANDSHAKE, ("Sec-WebSocket-Protocol", "a,,b")], "protocol"),
        ("GET", (1, 1), [*HANDSHAKE, ("Sec-WebSocket-Protocol", "a/b")], "protocol"),
        (
            "GET",
            (1, 1),
            [*HANDSHAKE, ("Origin", "https://a.test"), ("origin", "https://a.test")],
            "origin",
        ),
    ],
)
def test_malformed_handshakes_are_refused(
    method: str, version: tuple[int, int], headers: list[tuple[str, str]], problem: str | None
) -> None:
    """Anything that asks for websocket but is not exactly a valid handshake is refused."""
    if problem is None:  # "websocket/13" does not name the websocket token: not a WS upgrade
        assert parse_upgrade(method, version, headers) is None
        return
    with pytest.raises(HandshakeError) as caught:
        parse_upgrade(method, version, headers)
    assert caught.value.problem == problem


def test_the_handshake_carries_its_origin() -> None:
    """The page's Origin, as sent (the route's CORS policy judges it); none for a non-browser."""
    upgrade = parse_upgrade("GET", (1, 1), [*HANDSHAKE, ("ORIGIN", "https://App.test")])
    assert upgrade is not None
    assert upgrade.origin == "https://App.test"
    bare = parse_upgrade("GET", (1, 1), HANDSHAKE)
    assert bare is not None
    assert bare.origin is None


@pytest.mark.parametrize("spelling", ["WebSocket", "WEBSOCKET", " websocket "])
def test_upgrade_token_is_case_insensitive(spelling: str) -> None:
    """The upgrade token and Connection's upgrade are matched in any case."""
    headers = [*replaced("Upgrade", spelling)]
    headers = [(n, "keep-alive, UPGRADE" if n == "Connection" else v) for n, v in headers]
    assert parse_upgrade("GET", (1, 1), headers) is not None


def test_subprotocol_token_round_trip() -> None:
    """The bearer entry decodes to the token; no entry, no token."""
    assert subprotocol_token([bearer_entry(JWT)]) == JWT
    assert subprotocol_token([]) is None


@pytest.mark.parametrize(
    "entries",
    [
        pytest.param([bearer_entry(JWT), bearer_entry(JWT)], id="two-entries"),
        pytest.param([bearer_entry(JWT).upper()], id="upper-case-prefix"),
        pytest.param(["Base64url.Bearer.Authorization.k8s.io." + "YQ"], id="mixed-case-prefix"),
        pytest.param([BEARER_PROTOCOL_PREFIX], id="empty"),
        pytest.param([BEARER_PROTOCOL_PREFIX + "YQ=="], id="padded"),
        pytest.param([BEARER_PROTOCOL_PREFIX + "Y"], id="truncated"),
        pytest.param([BEARER_PROTOCOL_PREFIX + "YR"], id="non-canonical-bits"),
        pytest.param([BEARER_PROTOCOL_PREFIX + "YSBi"], id="space-in-token"),
        pytest.param([bearer_entry("a\x00b")], id="nul-in-token"),
        pytest.param([BEARER_PROTOCOL_PREFIX + "_-8"], id="not-ascii"),
        pytest.param([BEARER_PROTOCOL_PREFIX + JWT], id="raw-jwt-not-encoded"),
    ],
)
def test_malformed_bearer_subprotocols(entries: list[str]) -> None:
    """Every other spelling or encoding of the bearer entry is malformed credentials."""
    with pytest.raises(MalformedCredentials):
        subprotocol_token(entries)


def test_bearer_prefix_in_any_case_is_never_offered_upstream() -> None:
    """A bearer entry in another case is still set apart from the subprotocols."""
    entry = bearer_entry(JWT).upper()
    upgrade = parse_upgrade("GET", (1, 1), [*HANDSHAKE, ("Sec-WebSocket-Protocol", entry)])
    assert upgrade is not None
    assert upgrade.protocols == ()
    assert upgrade.bearer == (entry,)


SWITCH = [
    ("Upgrade", "websocket"),
    ("Connection", "Upgrade"),
    ("Sec-WebSocket-Accept", accept_value(KEY)),
]


def test_a_real_switch_is_accepted() -> None:
    """101 with the right headers and accept value opens a tunnel; its subprotocol is given."""
    assert check_switch(101, SWITCH, KEY, ("chat",)) is None
    chosen = [*SWITCH, ("Sec-WebSocket-Protocol", "chat")]
    assert check_switch(101, chosen, KEY, ("v1", "chat")) == "chat"
    assert check_switch(101, dict(chosen), KEY, ("chat",)) == "chat"


@pytest.mark.parametrize(
    ("status", "headers", "problem"),
    [
        (200, SWITCH, "status"),
        (100, SWITCH, "status"),
        (426, SWITCH, "status"),
        (101, [h for h in SWITCH if h[0] != "Upgrade"], "upgrade"),
        (101, [("Upgrade", "h2c"), *SWITCH[1:]], "upgrade"),
        (101, [*SWITCH, ("Upgrade", "websocket")], "upgrade"),
        (101, [h for h in SWITCH if h[0] != "Connection"], "connection"),
        (101, [h for h in SWITCH if h[0] != "Sec-WebSocket-Accept"], "accept"),
        (101, [*SWITCH[:2], ("Sec-WebSocket-Accept", accept_value(new_key()))], "accept"),
        (101, [*SWITCH, ("Sec-WebSocket-Accept", accept_value(KEY))], "accept"),
        (101, [*SWITCH, ("Sec-WebSocket-Protocol", "other")], "protocol"),
        (101, [*SWITCH, ("Sec-WebSocket-Protocol", "chat, v1")], "protocol"),
        (101, [*SWITCH, ("Sec-WebSocket-Protocol", bearer_entry(JWT))], "protocol"),
        (101, [*SWITCH, ("Sec-WebSocket-Extensions", "permessage-deflate")], "extensions"),
    ],
)
def test_anything_but_a_real_switch_opens_no_tunnel(
    status: int, headers: list[tuple[str, str]], problem: str
) -> None:
    """A non-101, a wrong or missing accept, another upgrade, an unoffered subprotocol or an
    extension nobody offered is not a switch."""
    with pytest.raises(SwitchError) as caught:
        check_switch(status, headers, KEY, ("chat", "v1"))
    assert caught.value.problem == problem
