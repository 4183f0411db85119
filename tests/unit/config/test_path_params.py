"""routes.yaml path parameters and `bind`: what loads, and each mistake as one file:line problem."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.config import ConfigError, load_routes
from gateway.core.params import Binding

HEAD = """\
upstreams:
  orders: {url: "http://127.0.0.1:9001"}
routes:
"""


def _routes(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "routes.yaml"
    path.write_text(HEAD + text)
    return path


def test_a_bound_route_loads_with_its_bindings(tmp_path: Path) -> None:
    """`bind` maps each parameter to a claim; the path keeps its {name} spelling."""
    path = _routes(
        tmp_path,
        "  - path: /orgs/{org}/users/{user}\n    upstream: orders\n"
        "    bind: {org: org_id, user: sub}\n",
    )
    (route,) = load_routes(path).routes
    assert route.path == "/orgs/{org}/users/{user}"
    assert route.bind == (Binding("org", "org_id"), Binding("user", "sub"))


def test_unbound_parameters_and_literal_routes_load(tmp_path: Path) -> None:
    """A parameter need not be bound (it then only matches), and literal routes are unchanged."""
    path = _routes(
        tmp_path,
        "  - path: /tenants/{tenant}\n    upstream: orders\n"
        "  - path: /tenants/me\n    upstream: orders\n",
    )
    assert [r.bind for r in load_routes(path).routes] == [(), ()]


ROUTE = "  - path: {path}\n    upstream: orders\n"

# (route entries, line, fragment of the problem)
MISTAKES = [
    pytest.param(ROUTE.format(path="/tenants/{Tenant}"), 4, "not a parameter",
                 id="upper-case-name"),
    pytest.param(ROUTE.format(path="/tenants/x{tenant}"), 4, "not a parameter",
                 id="partial-segment"),
    pytest.param(ROUTE.format(path="/tenants/{t}/{t}"), 4, "appears twice", id="repeated"),
    pytest.param(ROUTE.format(path="/tenants/{t}/./x"), 4, "not in canonical form",
                 id="dot-segment-around-parameter"),
    pytest.param(ROUTE.format(path="/tenants/{t}/a%3Ab"), 4, "not in canonical form",
                 id="escape-around-parameter"),
    pytest.param(ROUTE.format(path="/tenants/{t}/a;b"), 4, "not a valid path",
                 id="bad-character-around-parameter"),
    pytest.param(ROUTE.format(path="/tenants/{tenant}") + "    bind: {tenat: tenant_id}\n", 6,
                 "did you mean 'tenant'", id="bind-unknown-parameter"),
    pytest.param(ROUTE.format(path="/tenants") + "    bind: {tenant: tenant_id}\n", 6,
                 "not a parameter of '/tenants'", id="bind-on-literal-path"),
    pytest.param(ROUTE.format(path="/tenants/{tenant}") + "    auth: none\n"
                 "    bind: {tenant: tenant_id}\n", 7, "needs a protected route",
                 id="bind-on-public-route"),
    pytest.param(ROUTE.format(path="/tenants/{tenant}") + "    bind: [tenant]\n", 6,
                 "mapping of path parameter to claim", id="bind-not-a-mapping"),
    pytest.param(ROUTE.format(path="/tenants/{tenant}") + "    bind: {tenant: 7}\n", 6,
                 "mapping of path parameter to claim", id="bind-claim-not-a-name"),
    pytest.param(ROUTE.format(path="/tenants/{tenant}") + "    strip_prefix: true\n", 6,
                 "'strip_prefix' cannot be used on a path with parameters",
                 id="strip-prefix-with-parameters"),
    pytest.param(ROUTE.format(path="/tenants/{tenant}/orders")
                 + ROUTE.format(path="/tenants/{id}/orders"), 6,
                 "names its parameters differently", id="same-shape-other-names"),
    pytest.param(ROUTE.format(path="/tenants/{tenant}") + "    methods: [GET]\n"
                 + ROUTE.format(path="/tenants/{tenant}") + "    methods: [GET, POST]\n", 7,
                 "overlaps the route at line 4", id="same-path-overlapping-methods"),
]  # fmt: skip


@pytest.mark.parametrize(("text", "line", "fragment"), MISTAKES)
def test_parameter_mistakes_are_config_errors(
    tmp_path: Path, text: str, line: int, fragment: str
) -> None:
    """Malformed {name} segments, bindings that name nothing or sit on a public route,
    strip_prefix with parameters, and two routes that match the same paths equally well."""
    path = _routes(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_routes(path)
    (issue,) = info.value.issues
    assert (issue.file, issue.line) == (str(path), line)
    assert fragment in issue.message


def test_same_shape_with_other_methods_but_one_spelling_loads(tmp_path: Path) -> None:
    """GET and POST routes at one parameter path share it, as literal paths do."""
    path = _routes(
        tmp_path,
        ROUTE.format(path="/tenants/{tenant}") + "    methods: [GET]\n"
        + ROUTE.format(path="/tenants/{tenant}") + "    methods: [POST]\n",
    )  # fmt: skip
    assert len(load_routes(path).routes) == 2
