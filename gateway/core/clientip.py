"""The real client address of a request that came through proxies the operator trusts.

Only when the TCP peer is inside ``trusted_proxies`` is the forwarding header read at all; then
its hops are walked from the right (the entry the trusted peer appended first) and the first
address outside the trusted networks is the client (the rightmost untrusted address). Everything
left of it was written by the client or by proxies nobody vouches for, so it is never read. A hop
that names no usable address (``unknown``, an RFC 7239 obfuscated identifier, garbage) stops the
walk: the last trusted hop that handed it over is the best address known, and never a value the
client may have chosen.

Exactly one header is read, the one the operator's proxies write (``X-Forwarded-For`` or RFC 7239
``Forwarded``): a proxy that appends to one usually passes the other through untouched, and then
every entry of that other header is the client's own choice.
"""

from __future__ import annotations

import enum
import ipaddress
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from gateway.core.keep import keep

__all__ = ["ClientIpHeader", "Network", "TrustedProxies", "client_ip", "parse_network"]

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class ClientIpHeader(enum.Enum):
    """The forwarding header the trusted proxies write."""

    X_FORWARDED_FOR = "X-Forwarded-For"
    FORWARDED = "Forwarded"  # RFC 7239


@dataclass(frozen=True, slots=True, kw_only=True)
class TrustedProxies:
    """The proxies whose forwarding header is believed, and which header that is."""

    networks: tuple[Network, ...]
    header: ClientIpHeader = ClientIpHeader.X_FORWARDED_FOR
    # Peers and hops repeat from request to request, and ipaddress parsing costs microseconds:
    # each hop's text -> (its address, trusted), or None when it names no address. Bounded.
    _seen: dict[str, tuple[str, bool] | None] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def hop(self, text: str) -> tuple[str, bool] | None:
        """The address a hop names (normalised) and whether it is trusted; None for none."""
        seen = self._seen
        if text in seen:
            return seen[text]
        address = _address(text)
        verdict = None
        if address is not None:
            verdict = (str(address), any(address in network for network in self.networks))
        return keep(seen, text, verdict, _SEEN_MAX)


_SEEN_MAX = 4096


def parse_network(text: str) -> Network:
    """A CIDR (``10.0.0.0/8``) or a single address (``10.1.2.3``, a /32 or /128); host bits
    must be zero, so a typo cannot silently trust a wider or narrower range than meant."""
    try:
        network = ipaddress.ip_network(text.strip(), strict=True)
    except ValueError:
        raise ValueError(
            f"'{text}' is not an IP address or a CIDR with its host bits zero (10.0.0.0/8)"
        ) from None
    mapped = network.network_address.ipv4_mapped if network.version == 6 else None
    if mapped is not None and network.prefixlen >= 96:
        # A dual-stack listener's spelling of IPv4 peers (::ffff:10.0.0.0/104, as its logs show
        # them): addresses are compared as IPv4 (`_address`), so the network must be too, or it
        # would trust nobody and every client would count as the proxy.
        network = ipaddress.IPv4Network((mapped, network.prefixlen - 96))
    if network.prefixlen == 0:
        raise ValueError(f"'{text}' trusts every address: any client could choose its client.ip")
    return network


def client_ip(peer: str, header_values: Sequence[str], proxies: TrustedProxies | None) -> str:
    """The client's address: the TCP peer, unless the peer is a trusted proxy; then the
    rightmost address in the forwarding header that is not a trusted proxy (``header_values``:
    every instance of the configured header, in order)."""
    if proxies is None or not header_values:
        return peer
    verdict = proxies.hop(peer)
    if verdict is None or not verdict[1]:
        return peer
    current = verdict[0]
    hops: list[str | None]
    if proxies.header is ClientIpHeader.FORWARDED:
        hops = _forwarded_for(header_values)
    else:
        hops = [entry for value in header_values for entry in value.split(",") if entry.strip()]
    for hop in reversed(hops):
        verdict = proxies.hop(hop) if hop is not None else None
        if verdict is None:
            break  # no usable address: the trusted hop that passed it on is the best known
        current, trusted = verdict
        if not trusted:
            break
    return current


_PORT = re.compile(r"(?P<host>[0-9.]+):[0-9]{1,5}")
_BRACKETED = re.compile(r"\[(?P<host>[0-9A-Fa-f:.]+)\](?::[0-9]{1,5})?")


def _address(text: str) -> Address | None:
    """An address as proxies write it (``192.0.2.1``, ``192.0.2.1:4711``, ``2001:db8::1``,
    ``[2001:db8::1]:4711``); None for anything else (``unknown``, ``_hidden``, names)."""
    text = text.strip()
    match = _BRACKETED.fullmatch(text) or _PORT.fullmatch(text)
    if match is not None:
        text = match.group("host")
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address):
        if address.scope_id is not None:
            # fe80::1%eth0: the zone names an interface of the host that wrote it, not a
            # different address (and would make a free-text rate-limit key).
            address = ipaddress.IPv6Address(text.partition("%")[0])
        if address.ipv4_mapped is not None:
            return address.ipv4_mapped  # a dual-stack socket's spelling of an IPv4 peer
    return address


# RFC 7239 section 4: forwarded-element = [pair] *(";" [pair]), pair = token "=" value,
# value = token / quoted-string. Unquoted values are accepted with ':' and brackets too (a
# trusted proxy that forgets to quote an IPv6 address still means it).
_PAIR = re.compile(
    r"""[ \t]*(?P<name>[!#$%&'*+.^_`|~0-9A-Za-z-]+)[ \t]*=[ \t]*"""
    r"""(?:"(?P<quoted>(?:[^"\\]|\\.)*)"|(?P<token>[!#$%&'*+.^_`|~0-9A-Za-z:\[\]-]*))"""
    r"""[ \t]*(?P<end>[;,]|$)"""
)


def _forwarded_for(values: Iterable[str]) -> list[str | None]:
    """The ``for=`` of every element of every ``Forwarded`` value, left to right: None for an
    element without one, and for the point where a value stops parsing (the rest of that value
    is not read, so the walk from the right stops there)."""
    hops: list[str | None] = []
    for value in values:
        position, end = 0, len(value)
        element_for: str | None = None
        in_element = False
        while True:
            if not in_element:  # empty list members (", ,") between elements are allowed
                while position < end and value[position] in " \t,":
                    position += 1
                if position >= end:
                    break
            match = _PAIR.match(value, position)
            if match is None:
                hops.append(None)
                break
            in_element, position = True, match.end()
            if match.group("name").lower() == "for":
                quoted = match.group("quoted")
                element_for = match.group("token") if quoted is None else _unquote(quoted)
            if match.group("end") != ";" or position >= end:
                hops.append(element_for)
                element_for, in_element = None, False
    return hops


def _unquote(quoted: str) -> str:
    return re.sub(r"\\(.)", r"\1", quoted)
