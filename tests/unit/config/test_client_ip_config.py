"""gateway.yaml's ``trusted_proxies`` and ``client_ip_header``."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from gateway.config import load
from gateway.core.clientip import ClientIpHeader
from tests.support import ENVIRON, TestKeys
from tests.unit.config.test_load import GATEWAY, assert_issues, problems, write


def test_trusted_proxies_load(tmp_path: Path, keys: TestKeys) -> None:
    """CIDRs and single addresses, IPv4 and IPv6; the header defaults to X-Forwarded-For."""
    text = GATEWAY + "trusted_proxies: [10.0.0.0/8, 192.0.2.7, 'fd00::/8']\n"
    config = load(write(tmp_path, keys, gateway=text), ENVIRON)
    assert config.trusted_proxies is not None
    assert config.trusted_proxies.networks == (
        ipaddress.ip_network("10.0.0.0/8"),
        ipaddress.ip_network("192.0.2.7/32"),
        ipaddress.ip_network("fd00::/8"),
    )
    assert config.trusted_proxies.header is ClientIpHeader.X_FORWARDED_FOR


def test_forwarded_header_is_chosen_in_any_case(tmp_path: Path, keys: TestKeys) -> None:
    """``client_ip_header: forwarded`` selects RFC 7239 Forwarded."""
    text = GATEWAY + "trusted_proxies: [10.0.0.0/8]\nclient_ip_header: forwarded\n"
    config = load(write(tmp_path, keys, gateway=text), ENVIRON)
    assert config.trusted_proxies is not None
    assert config.trusted_proxies.header is ClientIpHeader.FORWARDED


def test_no_trusted_proxies_by_default(tmp_path: Path, keys: TestKeys) -> None:
    """Without the key the peer is the client."""
    assert load(write(tmp_path, keys), ENVIRON).trusted_proxies is None


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        ("trusted_proxies: [10.0.0.1/8]\n", "host bits zero"),
        ("trusted_proxies: [0.0.0.0/0]\n", "trusts every address"),
        ("trusted_proxies: ['::/0']\n", "trusts every address"),
        ("trusted_proxies: [ingress.local]\n", "is not an IP address"),
        ("trusted_proxies: [10]\n", "is not an IP address"),
        ("trusted_proxies: []\n", "must be a list of CIDRs"),
        ("trusted_proxies: 10.0.0.0/8\n", "must be a list of CIDRs"),
        ("trusted_proxies: [10.0.0.0/8]\nclient_ip_header: X-Real-IP\n", "is not one of"),
        ("client_ip_header: Forwarded\n", "only read with 'trusted_proxies'"),
    ],
)
def test_bad_trusted_proxies_are_named(
    tmp_path: Path, keys: TestKeys, extra: str, fragment: str
) -> None:
    """Each mistake is one problem at its line (a typo never trusts a range silently)."""
    path = write(tmp_path, keys, gateway=GATEWAY + extra)
    line = len(GATEWAY.splitlines()) + len(extra.splitlines())
    assert_issues(problems(path), [("gateway.yaml", line, fragment)], tmp_path)
