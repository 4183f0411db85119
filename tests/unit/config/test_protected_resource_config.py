"""gateway.yaml's ``protected_resource``."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.config import load
from tests.support import ENVIRON, TestKeys
from tests.unit.config.test_load import GATEWAY, ROUTES, assert_issues, problems, write


def test_protected_resource_loads(tmp_path: Path, keys: TestKeys) -> None:
    """Issuer names become their identifiers, in the order written; max_age is whole seconds."""
    text = GATEWAY + (
        "protected_resource:\n  resource: https://api.example.test\n"
        "  authorization_servers: [local]\n  scopes_supported: [b, a, b]\n  max_age: 10m\n"
    )
    settings = load(write(tmp_path, keys, gateway=text), ENVIRON).protected_resource
    assert settings is not None
    assert settings.authorization_servers == ("https://auth.example.test",)
    assert settings.scopes_supported == ("b", "a")
    assert settings.max_age == 600


@pytest.mark.parametrize(
    ("section", "line", "fragment"),
    [
        ("  resource: http://api.example.test\n", 24, "must be an https:// URL"),
        ("  resource: https://api.example.test/?a=1\n", 24, "must not carry"),
        ("  resource_name: x\n", 24, "'resource'"),
        ("  resource: https://a.test\n  authorization_servers: [nope]\n", 25, "unknown issuer"),
        ("  resource: https://a.test\n  resource_documentation: http://d.test\n", 25, "https"),
        ("  resource: https://a.test\n  resouce_name: x\n", 25, "did you mean"),
    ],
)
def test_bad_settings_are_named(
    tmp_path: Path, keys: TestKeys, section: str, line: int, fragment: str
) -> None:
    """Each mistake is one problem at its line."""
    path = write(tmp_path, keys, gateway=GATEWAY + "protected_resource:\n" + section)
    assert_issues(problems(path), [("gateway.yaml", line, fragment)], tmp_path)


def test_a_route_under_the_well_known_prefix_is_refused(tmp_path: Path, keys: TestKeys) -> None:
    """The gateway answers the whole prefix itself: a route there could never be reached."""
    text = GATEWAY + "protected_resource:\n  resource: https://a.test\n"
    routes = ROUTES + (
        "  - path: /.well-known/oauth-protected-resource/x\n    upstream: orders\n    auth: none\n"
    )
    path = write(tmp_path, keys, gateway=text, routes=routes)
    assert_issues(problems(path), [("routes.yaml", 22, "which the gateway answers")], tmp_path)
