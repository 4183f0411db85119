"""RFC 9728: where the metadata lives, and which resource identifiers are accepted."""

from __future__ import annotations

import pytest

from gateway.core.resource_metadata import ProtectedResource, check_resource, owned_by_gateway


@pytest.mark.parametrize(
    ("resource", "path", "url"),
    [
        ("https://api.example.com", "/.well-known/oauth-protected-resource",
         "https://api.example.com/.well-known/oauth-protected-resource"),
        ("https://api.example.com/", "/.well-known/oauth-protected-resource",
         "https://api.example.com/.well-known/oauth-protected-resource"),
        ("https://api.example.com/v1/", "/.well-known/oauth-protected-resource/v1",
         "https://api.example.com/.well-known/oauth-protected-resource/v1"),
        ("https://api.example.com:8443/a/b", "/.well-known/oauth-protected-resource/a/b",
         "https://api.example.com:8443/.well-known/oauth-protected-resource/a/b"),
    ],
)  # fmt: skip
def test_the_well_known_url_goes_between_host_and_path(resource: str, path: str, url: str) -> None:
    """RFC 9728 section 3.1, terminating slash removed."""
    settings = ProtectedResource(resource=resource)
    assert (settings.metadata_path, settings.metadata_url) == (path, url)


@pytest.mark.parametrize(
    "text",
    ["http://api.example.com", "https://", "https://api.example.com/?x=1",
     "https://api.example.com/#f", "https://u:p@api.example.com", 'https://api.example.com/"x',
     "https://api.example.com/a b", "https://api.example.com/a\\b", "api.example.com"],
)  # fmt: skip
def test_bad_resource_identifiers_are_refused(text: str) -> None:
    """https only, no query, fragment or user info, nothing that breaks a quoted-string."""
    with pytest.raises(ValueError, match="must"):
        check_resource(text)


@pytest.mark.parametrize(
    ("path", "owned"),
    [
        ("/.well-known/oauth-protected-resource", True),
        ("/.well-known/oauth-protected-resource/orders", True),
        ("/.Well-Known/OAuth-Protected-Resource", True),
        ("/.well-known/oauth-protected-resource.json", True),
        ("/.well-known", False),
        ("/.well-known/openid-configuration", False),
        ("/.well-known/oauth-authorization-server", False),
        ("/orders/.well-known/oauth-protected-resource", False),
    ],
)
def test_the_gateway_owns_the_prefix_in_any_case_and_with_any_suffix(
    path: str, owned: bool
) -> None:
    """Every spelling a case-folding or suffix-stripping upstream routes to its own metadata is
    the gateway's; other well-known documents stay routable."""
    assert owned_by_gateway(path) is owned
