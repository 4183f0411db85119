"""No URL setting carries credentials, in any spelling of the userinfo, and the problem never
quotes them: a config problem is printed by ``gateway check`` and logged by a rejected reload
(``gateway.config.problems``), and an accepted URL reaches log lines and spans (the OTLP
endpoint in ``tracing_export_failed``, the upstream's authority in the client span's
``url.full``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.config import ConfigError, load
from gateway.core.resource_metadata import check_resource
from gateway.core.urls import without_userinfo
from tests.support import ENVIRON, TestKeys
from tests.unit.config.test_load import GATEWAY, ROUTES, swap, write

SECRET = "pw-7c1e9"

# Every way to write a userinfo yarl reads as credentials: user and password, a password
# alone, a user alone, percent-encoded, in an upper-case scheme.
USERINFO = [
    pytest.param(f"alice:{SECRET}@", id="user-and-password"),
    pytest.param(f":{SECRET}@", id="password-only"),
    pytest.param(f"{SECRET}@", id="user-only"),
    pytest.param(f"{SECRET}:@", id="user-empty-password"),
    pytest.param(f"%61lice:{SECRET}@", id="percent-encoded-user"),
]


def _problems(tmp_path: Path, keys: TestKeys, *, gateway: str = GATEWAY, routes: str = ROUTES
              ) -> str:  # fmt: skip
    with pytest.raises(ConfigError) as info:
        load(write(tmp_path, keys, gateway=gateway, routes=routes), ENVIRON)
    return "\n".join(issue.message for issue in info.value.issues)


@pytest.mark.parametrize("userinfo", USERINFO)
def test_an_upstream_url_with_credentials_is_refused_unquoted(
    tmp_path: Path, keys: TestKeys, userinfo: str
) -> None:
    routes = swap(ROUTES, "url: http://127.0.0.1:9001", f"url: http://{userinfo}127.0.0.1:9001")
    text = _problems(tmp_path, keys, routes=routes)
    assert "credentials" in text
    assert SECRET not in text


@pytest.mark.parametrize("userinfo", USERINFO)
def test_an_otlp_endpoint_with_credentials_is_refused_unquoted(
    tmp_path: Path, keys: TestKeys, userinfo: str
) -> None:
    gateway = GATEWAY + f"tracing:\n  endpoint: http://{userinfo}collector:4318/v1/traces\n"
    text = _problems(tmp_path, keys, gateway=gateway)
    assert "credentials" in text
    assert SECRET not in text


@pytest.mark.parametrize("userinfo", USERINFO)
def test_a_jwks_uri_with_credentials_is_refused_unquoted(
    tmp_path: Path, keys: TestKeys, userinfo: str
) -> None:
    gateway = swap(
        GATEWAY,
        "    keys: [keys/public.pem, keys/jwks.json]\n",
        f"    jwks_uri: https://{userinfo}auth.example.test/jwks.json\n",
    )
    text = _problems(tmp_path, keys, gateway=gateway)
    assert "credentials" in text
    assert SECRET not in text


@pytest.mark.parametrize("userinfo", USERINFO)
def test_a_resource_identifier_with_credentials_is_refused_unquoted(userinfo: str) -> None:
    with pytest.raises(ValueError, match="user info") as info:
        check_resource(f"https://{userinfo}api.example.test")
    assert SECRET not in str(info.value)


@pytest.mark.parametrize(
    "text",
    [
        "http://alice:pw@h/x",
        "http://:pw@h",
        "http://a:b@c@h/?q=@",
        "https://h/a@b",
        "http://h/?a@b",
    ],
)
def test_only_the_userinfo_is_cut_from_a_quoted_url(text: str) -> None:
    """Up to the authority's last '@'; an '@' in the path or query is not a userinfo."""
    expected = {
        "http://alice:pw@h/x": "http://h/x", "http://:pw@h": "http://h",
        "http://a:b@c@h/?q=@": "http://h/?q=@", "https://h/a@b": "https://h/a@b",
        "http://h/?a@b": "http://h/?a@b",
    }[text]  # fmt: skip
    assert without_userinfo(text) == expected
