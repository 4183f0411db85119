"""``trusted_proxies``: the real client address behind an ingress, and nothing a client can spoof
when it connects directly. The tests connect from 127.0.0.1, trusted or not by the config."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import GatewayFactory, LogCapture
from tests.support import (
    DEFAULT_GATEWAY,
    DEV_ISSUER_ENTRY,
    LEEWAY,
    ORDERS_HEALTH,
    ORDERS_READ_WRITE,
    RecordingUpstream,
    TokenFactory,
    gateway_config,
    local_issuer,
    route_table,
)

TRUST_LOOPBACK = DEFAULT_GATEWAY + "trusted_proxies: [127.0.0.1/32, 10.0.0.0/8]\n"
TRUST_OTHERS = DEFAULT_GATEWAY + "trusted_proxies: [10.0.0.0/8, '::1']\n"
TRUST_LOOPBACK_FORWARDED = TRUST_LOOPBACK + "client_ip_header: Forwarded\n"

# Every way a client might try to name its own address, all at once.
SPOOFS = {
    "X-Forwarded-For": "198.51.100.66",
    "Forwarded": "for=198.51.100.67",
    "X-Real-IP": "198.51.100.68",
    "True-Client-IP": "198.51.100.69",
    "CF-Connecting-IP": "198.51.100.70",
    "X-Client-IP": "198.51.100.71",
}


def access_ips(log_capture: LogCapture) -> list[Any]:
    """The ``client.ip`` of every access line so far."""
    return [line["client.ip"] for line in log_capture.events("access")]


async def test_a_trusted_proxys_header_names_the_client_in_the_access_log(
    gateway: GatewayFactory, recorder: RecordingUpstream, log_capture: LogCapture
) -> None:
    """Behind a trusted peer the rightmost untrusted X-Forwarded-For entry is client.ip (the
    client's own guess left of it is ignored); the upstream still gets the chain plus the peer."""
    client = await gateway(gateway=TRUST_LOOPBACK)
    chain = "6.6.6.6, 198.51.100.7, 10.1.1.1"
    response = await client.get("/orders/health", headers={"X-Forwarded-For": chain})
    assert response.status == 200
    assert access_ips(log_capture) == ["198.51.100.7"]
    assert recorder.last.headers.getall("X-Forwarded-For") == [f"{chain}, 127.0.0.1"]


async def test_a_proxy_listed_in_its_ipv4_mapped_spelling_is_trusted(
    gateway: GatewayFactory, log_capture: LogCapture
) -> None:
    """``::ffff:127.0.0.1`` is how a dual-stack listener shows an IPv4 proxy: listed that way it
    is trusted, rather than trusting nobody and counting every client as the proxy."""
    client = await gateway(gateway=DEFAULT_GATEWAY + "trusted_proxies: ['::ffff:127.0.0.0/104']\n")
    response = await client.get("/orders/health", headers={"X-Forwarded-For": "198.51.100.7"})
    assert response.status == 200
    assert access_ips(log_capture) == ["198.51.100.7"]


@pytest.mark.parametrize("spoof", sorted(SPOOFS))
async def test_an_untrusted_peer_cannot_choose_its_client_ip(
    gateway: GatewayFactory, recorder: RecordingUpstream, log_capture: LogCapture, spoof: str
) -> None:
    """A peer outside trusted_proxies is logged as itself, whichever header claims otherwise."""
    client = await gateway(gateway=TRUST_OTHERS)
    response = await client.get("/orders/health", headers={spoof: SPOOFS[spoof]})
    assert response.status == 200
    assert access_ips(log_capture) == ["127.0.0.1"]


async def test_without_trusted_proxies_the_peer_is_the_client(
    gateway: GatewayFactory, log_capture: LogCapture
) -> None:
    """No trusted_proxies (the default): every forwarding header is ignored."""
    client = await gateway()
    response = await client.get("/orders/health", headers=SPOOFS)
    assert response.status == 200
    assert access_ips(log_capture) == ["127.0.0.1"]


async def test_forwarded_is_read_only_when_configured(
    gateway: GatewayFactory, log_capture: LogCapture
) -> None:
    """With ``client_ip_header: Forwarded`` the RFC 7239 header is read and X-Forwarded-For
    (which such a proxy passes through from the client) is not."""
    client = await gateway(gateway=TRUST_LOOPBACK_FORWARDED)
    headers = {
        "Forwarded": 'for=6.6.6.6, for="[2001:db8::7]:4711";proto=https',
        "X-Forwarded-For": "198.51.100.66",
    }
    assert (await client.get("/orders/health", headers=headers)).status == 200
    assert (
        await client.get("/orders/health", headers={"X-Forwarded-For": "6.6.6.6"})
    ).status == 200
    assert access_ips(log_capture) == ["2001:db8::7", "127.0.0.1"]


IP_LIMITED_HEALTH = """\
  - path: /orders/health
    upstream: orders
    auth: none
    rate_limit: {{rate: 1/min, burst: 1, key: ip}}
"""


async def test_per_ip_limits_count_the_real_client(
    gateway: GatewayFactory, recorder: RecordingUpstream
) -> None:
    """Behind a trusted proxy, each client behind it has its own per-IP bucket."""
    client = await gateway(routes=route_table(IP_LIMITED_HEALTH), gateway=TRUST_LOOPBACK)
    first = {"X-Forwarded-For": "198.51.100.1"}
    assert (await client.get("/orders/health", headers=first)).status == 200
    assert (
        await client.get("/orders/health", headers={"X-Forwarded-For": "198.51.100.2"})
    ).status == 200
    assert (await client.get("/orders/health", headers=first)).status == 429
    assert len(recorder.requests) == 2


async def test_a_spoofing_client_shares_its_own_bucket(
    gateway: GatewayFactory, recorder: RecordingUpstream
) -> None:
    """From an untrusted peer, a new X-Forwarded-For on each request buys no new bucket, and the
    limited request never reaches the upstream."""
    client = await gateway(routes=route_table(IP_LIMITED_HEALTH), gateway=TRUST_OTHERS)
    assert (
        await client.get("/orders/health", headers={"X-Forwarded-For": "1.1.1.1"})
    ).status == 200
    assert (
        await client.get("/orders/health", headers={"X-Forwarded-For": "2.2.2.2"})
    ).status == 429
    assert len(recorder.requests) == 1


def throttled_gateway(trusted: str) -> str:
    """The sample gateway.yaml with a throttle after 2 invalid tokens, trusting ``trusted``."""
    extra = "rate_limits:\n  auth_failures: {{max: 2, window: 1m, cooldown: 1m}}\n"
    return gateway_config(
        local_issuer(), DEV_ISSUER_ENTRY,
        extra=LEEWAY + extra + f"trusted_proxies: [{trusted}]\n",
    )  # fmt: skip


@pytest.mark.parametrize(
    ("trusted", "other_client_status"), [("127.0.0.1/32", 200), ("10.0.0.0/8", 429)]
)
async def test_the_failed_auth_throttle_counts_the_real_client(
    gateway: GatewayFactory, tokens: TokenFactory, trusted: str, other_client_status: int
) -> None:
    """Invalid tokens throttle the client that sent them: behind a trusted proxy, another
    client is still served; from an untrusted peer, a new X-Forwarded-For does not escape."""
    client = await gateway(
        routes=route_table(ORDERS_READ_WRITE, ORDERS_HEALTH), gateway=throttled_gateway(trusted)
    )
    forged = {
        "Authorization": "Bearer " + tokens.good()[:-4] + "AAAA",
        "X-Forwarded-For": "198.51.100.1",
    }
    for _ in range(3):
        await client.get("/orders/1", headers=forged)
    assert (await client.get("/orders/1", headers=forged)).status == 429
    good = {"Authorization": "Bearer " + tokens.good(), "X-Forwarded-For": "198.51.100.2"}
    assert (await client.get("/orders/1", headers=good)).status == other_client_status
