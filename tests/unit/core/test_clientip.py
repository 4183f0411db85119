"""The client address behind trusted proxies: rightmost untrusted hop, fail safe."""

from __future__ import annotations

import pytest

from gateway.core.clientip import ClientIpHeader, TrustedProxies, client_ip, parse_network

XFF = TrustedProxies(networks=(parse_network("10.0.0.0/8"), parse_network("2001:db8:ff::/48")))
FWD = TrustedProxies(networks=XFF.networks, header=ClientIpHeader.FORWARDED)


@pytest.mark.parametrize(
    ("peer", "values", "expected"),
    [
        # an untrusted peer: whatever it sends is ignored, in every spelling
        ("203.0.113.9", ["198.51.100.1"], "203.0.113.9"),
        ("203.0.113.9", ["10.0.0.1, 198.51.100.1"], "203.0.113.9"),
        ("203.0.113.9", ["unknown"], "203.0.113.9"),
        ("::ffff:203.0.113.9", ["198.51.100.1"], "::ffff:203.0.113.9"),
        # a trusted peer: the rightmost untrusted entry
        ("10.0.0.2", ["198.51.100.1"], "198.51.100.1"),
        ("10.0.0.2", ["6.6.6.6, 198.51.100.1"], "198.51.100.1"),  # the client's own guess is left
        ("10.0.0.2", ["6.6.6.6, 198.51.100.1, 10.0.0.7"], "198.51.100.1"),
        ("10.0.0.2", ["6.6.6.6", "198.51.100.1", "10.0.0.7"], "198.51.100.1"),  # instances
        ("10.0.0.2", ["6.6.6.6,198.51.100.1 , ,10.0.0.7"], "198.51.100.1"),
        ("::ffff:10.0.0.2", ["198.51.100.1"], "198.51.100.1"),  # dual-stack spelling of the peer
        # ports and brackets as proxies write them
        ("10.0.0.2", ["198.51.100.1:4711"], "198.51.100.1"),
        ("10.0.0.2", ["[2001:db8::1]:4711"], "2001:db8::1"),
        ("10.0.0.2", ["2001:DB8:0::1"], "2001:db8::1"),
        ("2001:db8:ff::5", ["2001:db8::1"], "2001:db8::1"),
        ("10.0.0.2", ["::ffff:198.51.100.1"], "198.51.100.1"),
        ("10.0.0.2", ["[::ffff:198.51.100.1]:4711"], "198.51.100.1"),
        ("10.0.0.2", ["::FFFF:C633:6401"], "198.51.100.1"),  # the mapped address in hex
        # an IPv6 zone names the writer's interface, never another client
        ("10.0.0.2", ["2001:db8::1%eth0"], "2001:db8::1"),
        ("10.0.0.2", ["6.6.6.6, 2001:db8:ff::9%1, 2001:db8::1%x"], "2001:db8::1"),
        ("2001:db8:ff::5%eth0", ["198.51.100.1"], "198.51.100.1"),  # a scoped trusted peer
        # every hop trusted: the leftmost is the client (an internal caller)
        ("10.0.0.2", ["10.9.9.9, 10.0.0.7"], "10.9.9.9"),
        # an unusable hop stops the walk at the trusted hop that passed it on
        ("10.0.0.2", ["unknown"], "10.0.0.2"),
        ("10.0.0.2", ["198.51.100.1, unknown"], "10.0.0.2"),
        ("10.0.0.2", ["198.51.100.1, garbage, 10.0.0.7"], "10.0.0.7"),
        ("10.0.0.2", ["evil.example"], "10.0.0.2"),
        ("10.0.0.2", ["198.51.100.1/24"], "10.0.0.2"),
        ("10.0.0.2", ["1.2.3.4:99999999"], "10.0.0.2"),
        ("10.0.0.2", [], "10.0.0.2"),
        ("10.0.0.2", ["", " "], "10.0.0.2"),
        ("", ["198.51.100.1"], ""),  # no peer address at all (a Unix socket)
    ],
)
def test_x_forwarded_for(peer: str, values: list[str], expected: str) -> None:
    """Only a trusted peer's X-Forwarded-For is read, from the right, up to the first untrusted
    address; an unusable entry stops at the last trusted hop."""
    assert client_ip(peer, values, XFF) == expected


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (["for=198.51.100.1"], "198.51.100.1"),
        (["For=198.51.100.1;proto=https;by=10.0.0.2"], "198.51.100.1"),
        (['for="198.51.100.1:4711"'], "198.51.100.1"),
        (['for="[2001:db8::1]:4711"'], "2001:db8::1"),
        (['for="[2001:db8::1]"'], "2001:db8::1"),
        (["for=[2001:db8::1]"], "2001:db8::1"),  # unquoted, as a sloppy proxy writes it
        (["for=6.6.6.6, for=198.51.100.1, for=10.0.0.7"], "198.51.100.1"),
        (["for=6.6.6.6", "for=198.51.100.1;proto=http", "for=10.0.0.7"], "198.51.100.1"),
        (["for=6.6.6.6,, for=198.51.100.1 ,"], "198.51.100.1"),
        (['for="\\1\\9\\8.51.100.1"'], "198.51.100.1"),  # quoted-pair
        (["for=198.51.100.1;"], "198.51.100.1"),
        # the walk stops at what names no address, at the trusted hop before it
        (["for=unknown"], "10.0.0.2"),
        (["for=198.51.100.1, for=_hidden"], "10.0.0.2"),
        (["for=198.51.100.1, for=_hidden, for=10.0.0.7"], "10.0.0.7"),
        (["proto=https"], "10.0.0.2"),  # an element without for=
        (["for=198.51.100.1, by=10.0.0.7"], "10.0.0.2"),
        (["for=198.51.100.1, garbage"], "10.0.0.2"),
        (['for="198.51.100.1'], "10.0.0.2"),  # an unterminated quoted string
        (["for=198.51.100.1, for=1.2.3.4 junk"], "10.0.0.2"),
        (["for=198.51.100.1;;by=x"], "10.0.0.2"),
    ],
)
def test_forwarded(values: list[str], expected: str) -> None:
    """RFC 7239 ``for=`` with quoting, ports, brackets and several elements and instances;
    ``unknown``, obfuscated identifiers and unparseable input stop the walk."""
    assert client_ip("10.0.0.2", values, FWD) == expected


def test_only_the_configured_header_is_read() -> None:
    """The header the proxies do not write is the client's: it is never passed in, and the
    configured one is read as its own syntax (a Forwarded value read as X-Forwarded-For is not
    an address)."""
    assert client_ip("10.0.0.2", ["for=198.51.100.1"], XFF) == "10.0.0.2"
    assert client_ip("10.0.0.2", ["198.51.100.1"], FWD) == "10.0.0.2"


def test_no_trusted_proxies_means_the_peer() -> None:
    """Without trusted_proxies the header is never read."""
    assert client_ip("10.0.0.2", ["198.51.100.1"], None) == "10.0.0.2"


@pytest.mark.parametrize(
    ("text", "expected"),
    [("10.0.0.0/8", "10.0.0.0/8"), ("10.1.2.3", "10.1.2.3/32"), (" fd00::/8 ", "fd00::/8"),
     ("::1", "::1/128"), ("::ffff:10.0.0.0/104", "10.0.0.0/8")],
)  # fmt: skip
def test_parse_network(text: str, expected: str) -> None:
    """CIDRs and single addresses."""
    assert str(parse_network(text)) == expected


@pytest.mark.parametrize(
    ("network", "peer"),
    [("::ffff:10.0.0.0/104", "10.0.0.2"), ("::ffff:10.0.0.0/104", "::ffff:10.0.0.2"),
     ("::ffff:10.0.0.2", "10.0.0.2"), ("::ffff:a00:0/104", "::ffff:10.0.0.2")],
)  # fmt: skip
def test_ipv4_mapped_networks_trust_their_ipv4_peers(network: str, peer: str) -> None:
    """A dual-stack listener logs IPv4 proxies as ::ffff:10.0.0.2, so operators write that: the
    network is compared as IPv4 like the peer, instead of trusting nobody."""
    proxies = TrustedProxies(networks=(parse_network(network),))
    assert client_ip(peer, ["198.51.100.1"], proxies) == "198.51.100.1"
    assert client_ip("11.0.0.2", ["198.51.100.1"], proxies) == "11.0.0.2"


@pytest.mark.parametrize(
    "text", ["10.0.0.1/8", "0.0.0.0/0", "::/0", "::ffff:0:0/96", "10.0.0.0/33", "ten", ""]
)
def test_parse_network_refuses(text: str) -> None:
    """Host bits set (a typo), everything (/0), and non-networks are refused."""
    with pytest.raises(ValueError, match=r"not an IP address|trusts every address"):
        parse_network(text)


def test_remembered_hops_are_bounded() -> None:
    """A flood of distinct forged hops cannot grow the remembered verdicts without bound, and a
    forgotten verdict is worked out again the same way."""
    proxies = TrustedProxies(networks=(parse_network("10.0.0.0/8"),))
    for n in range(10_000):
        assert client_ip("10.0.0.2", [f"198.51.{n // 256}.{n % 256}"], proxies) != "10.0.0.2"
    assert len(proxies._seen) <= 4096
    assert client_ip("10.0.0.2", ["198.51.0.0"], proxies) == "198.51.0.0"
