"""Loading and validating gateway.yaml and routes.yaml: every problem at once, as file:line."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import pytest
import yarl
from cryptography.hazmat.primitives import serialization
from jwt.algorithms import RSAAlgorithm

from gateway.cli import main
from gateway.config import Config, ConfigError, ConfigIssue, load, load_routes
from gateway.core.keys import public_jwk
from gateway.core.models import AuthMode, ScopeFormat, ScopeMode, ScopeRule
from tests.support import ENVIRON, TestKeys, write_config

REPO = Path(__file__).resolve().parents[3]

# The base files every case edits. Line numbers in the tables below refer to these texts.
GATEWAY = """\
listen:
  host: 127.0.0.1
  port: 8080
admin:
  host: 127.0.0.1
  port: 9090
routes: routes.yaml
issuers:
  - name: local
    issuer: https://auth.example.test
    audiences: [example-api]
    algorithms: [RS256, ES256, EdDSA]
    keys: [keys/public.pem, keys/jwks.json]
  - name: dev
    issuer: dev
    algorithms: [HS256]
    secret: ${ACCESS_TOKEN_SECRET}
tokens:
  leeway: 30s
  max_lifetime: 1h
logging:
  level: info
"""

ROUTES = """\
upstreams:
  orders:
    url: http://127.0.0.1:9001
    timeout: 30s
  billing:
    url: http://127.0.0.1:9002
routes:
  - path: /orders
    upstream: orders
    methods: [GET, HEAD]
    scopes: [orders:read]
  - path: /orders
    upstream: orders
    methods: [POST, PUT, PATCH, DELETE]
    scopes: [orders:write]
  - path: /orders/health
    upstream: orders
    auth: none
  - path: /billing
    upstream: billing
    scopes: {any: [billing:read, billing:admin]}
"""

Expected = tuple[str, int, str]  # file name, line, a fragment of the message


def swap(text: str, old: str, new: str) -> str:
    """Replace ``old`` (which must occur exactly once) so that no case silently edits nothing."""
    assert text.count(old) == 1, f"{old!r} occurs {text.count(old)} times"
    return text.replace(old, new)


def write(directory: Path, keys: TestKeys, *, gateway: str = GATEWAY, routes: str = ROUTES) -> Path:
    """Write the key files, gateway.yaml and routes.yaml (verbatim); return gateway.yaml's path."""
    path = write_config(directory, keys)
    path.write_text(gateway)
    (directory / "routes.yaml").write_text(routes)
    return path


def problems(path: Path, environ: Mapping[str, str] = ENVIRON) -> list[ConfigIssue]:
    """The issues of the ConfigError that loading ``path`` must raise."""
    with pytest.raises(ConfigError) as info:
        load(path, environ)
    return list(info.value.issues)


def assert_issues(
    issues: Sequence[ConfigIssue], expected: Sequence[Expected], directory: Path
) -> None:
    """Each expected (file, line, fragment) matches exactly one issue, and nothing else is left."""
    remaining = list(issues)
    missing: list[Expected] = []
    for name, line, fragment in expected:
        for issue in remaining:
            if (issue.file, issue.line) == (str(directory / name), line) and (
                fragment in issue.message
            ):
                remaining.remove(issue)
                break
        else:
            missing.append((name, line, fragment))
    unexpected = [f"{Path(i.file).name}:{i.line}: {i.message}" for i in remaining]
    assert (missing, unexpected) == ([], []), [str(issue) for issue in issues]


def test_base_files_load_into_typed_values(tmp_path: Path, keys: TestKeys) -> None:
    """The base files every case edits are valid and load into the values they describe."""
    config = load(write(tmp_path, keys), ENVIRON)
    assert (config.listen.host, config.listen.port) == ("127.0.0.1", 8080)
    assert (config.admin.host, config.admin.port) == ("127.0.0.1", 9090)
    assert (config.tokens.leeway, config.tokens.max_lifetime) == (30.0, 3600.0)
    assert config.log_level == "info"
    assert [issuer.name for issuer in config.issuers] == ["local", "dev"]
    assert config.issuers[1].keys.keys[0].algorithms == frozenset({"HS256"})
    orders = config.routes.upstreams["orders"]
    assert (orders.url, orders.timeout) == (yarl.URL("http://127.0.0.1:9001"), 30.0)
    read, write_, health, billing = config.routes.routes
    assert (read.path, read.methods, read.scopes) == (
        "/orders",
        frozenset({"GET", "HEAD"}),
        ScopeRule(ScopeMode.ALL, ("orders:read",)),
    )
    assert (read.line, write_.line, health.line, billing.line) == (8, 12, 16, 19)
    assert health.auth is AuthMode.NONE
    assert billing.scopes == ScopeRule(ScopeMode.ANY, ("billing:read", "billing:admin"))
    assert billing.issuers is None


def test_hardening_options_load(tmp_path: Path, keys: TestKeys) -> None:
    """Per-issuer scope claim and format, extra stripped headers, the header deadline and the
    upstream's matching rules load into their values (each has a default when absent)."""
    gateway = swap(
        GATEWAY,
        "    secret: ${ACCESS_TOKEN_SECRET}\n",
        "    secret: ${ACCESS_TOKEN_SECRET}\n    scope_claim: scp\n    scope_format: list\n",
    )
    gateway += "headers:\n  strip: [X-Internal-User, x-tenant]\nlimits:\n  header_timeout: 5s\n"
    routes = swap(
        ROUTES,
        "    url: http://127.0.0.1:9002\n",
        "    url: http://127.0.0.1:9002\n    case_insensitive: true\n    ignore_suffix: true\n",
    )
    config = load(write(tmp_path, keys, gateway=gateway, routes=routes), ENVIRON)
    local, dev = config.issuers
    assert (local.scope_claim, local.scope_format) == ("scope", ScopeFormat.STRING)
    assert (dev.scope_claim, dev.scope_format) == ("scp", ScopeFormat.LIST)
    assert config.strip_headers == frozenset({"x-internal-user", "x-tenant"})
    assert config.limits.header_timeout == 5.0
    billing, orders = config.routes.upstreams["billing"], config.routes.upstreams["orders"]
    assert (billing.case_insensitive, billing.ignore_suffix) == (True, True)
    assert (orders.case_insensitive, orders.ignore_suffix) == (False, False)


@pytest.mark.parametrize(
    ("section", "message"),
    [
        pytest.param("headers:\n  strip: [X_User]\n", "'X_User' is not a header name",
                     id="strip-underscore"),
        pytest.param("headers:\n  strip: X-User\n", "list", id="strip-not-a-list"),
        pytest.param("headers:\n  trim: [X-User]\n", "unknown key 'trim'", id="headers-unknown"),
    ],
)  # fmt: skip
def test_bad_header_options_are_named(
    tmp_path: Path, keys: TestKeys, section: str, message: str
) -> None:
    """A bad ``headers`` section is a problem at its line."""
    issues = problems(write(tmp_path, keys, gateway=GATEWAY + section))
    assert any(message in issue.message for issue in issues), [str(i) for i in issues]


def test_bad_scope_format_lists_the_choices(tmp_path: Path, keys: TestKeys) -> None:
    """``scope_format`` is ``string`` or ``list``."""
    gateway = swap(GATEWAY, "    secret: ${ACCESS_TOKEN_SECRET}\n",
                   "    secret: ${ACCESS_TOKEN_SECRET}\n    scope_format: array\n")  # fmt: skip
    (issue,) = problems(write(tmp_path, keys, gateway=gateway))
    assert "'array' is not one of: 'string', 'list'" in issue.message


ROUTE_CASES = [
    pytest.param(
        "    scopes: [orders:read]\n",
        "    scope: [orders:read]\n",
        [(11, "unknown key 'scope' in route (did you mean 'scopes'?)")],
        id="scope-typo-did-you-mean",
    ),
    pytest.param(
        "    timeout: 30s\n",
        "    timeuot: 30s\n",
        [(4, "unknown key 'timeuot' in upstream 'orders' (did you mean 'timeout'?)")],
        id="unknown-key-in-upstream",
    ),
    pytest.param(
        "billing:admin]}\n",
        "billing:admin]}\nversion: 2\n",
        [(22, "unknown key 'version' in routes file")],
        id="unknown-top-level-key",
    ),
    pytest.param(
        "    scopes: [orders:read]\n",
        "    scopes: [orders:read]\n    scopes: []\n",
        [(12, "duplicate key 'scopes' (first at line 11)")],
        id="duplicate-key",
    ),
    pytest.param(
        "    upstream: billing\n",
        "    upstream: biling\n",
        [(20, "unknown upstream 'biling'"), (5, "upstream 'billing' is not used by any route")],
        id="unknown-upstream",
    ),
    pytest.param(
        "    url: http://127.0.0.1:9002\n",
        "    url: http://127.0.0.1:9002\n  spare:\n    url: http://127.0.0.1:9003\n",
        [(7, "upstream 'spare' is not used by any route")],
        id="unused-upstream",
    ),
    pytest.param(
        "[POST, PUT, PATCH, DELETE]",
        "[POST, GET]",
        [(12, "route '/orders' overlaps the route at line 8 (both allow GET)")],
        id="same-path-overlapping-methods",
    ),
    pytest.param(
        "    methods: [POST, PUT, PATCH, DELETE]\n",
        "",
        [(12, "route '/orders' overlaps the route at line 8 (one of them allows every method)")],
        id="same-path-one-allows-every-method",
    ),
    pytest.param(
        "    timeout: 30s\n",
        "    timeout: 30 seconds\n",
        [(4, "'timeout': bad duration '30 seconds'")],
        id="bad-duration-words",
    ),
    pytest.param(
        "    timeout: 30s\n",
        "    timeout: 30\n",
        [(4, "'timeout': bad duration 30")],
        id="bad-duration-no-unit",
    ),
    pytest.param(
        "    timeout: 30s\n",
        "    timeout: 1.5s\n",
        [(4, "'timeout': bad duration '1.5s'")],
        id="bad-duration-fraction",
    ),
    pytest.param(
        "    auth: none\n",
        "    auth: none\n    scopes: [orders:read]\n",
        [(19, "a route with 'auth: none' cannot need scopes")],
        id="public-route-with-scopes",
    ),
    pytest.param(
        "    auth: none\n",
        "    auth: none\n    forward_token: true\n",
        [(19, "'forward_token' needs a protected route")],
        id="public-route-forwarding-token",
    ),
    pytest.param(
        "[GET, HEAD]",
        "[get, HEAD]",
        [(10, "'methods': 'get' is not a method (methods are case-sensitive")],
        id="lowercase-method",
    ),
    pytest.param("[GET, HEAD]", "[GET, TRACE]", [(10, "TRACE is never proxied")], id="trace"),
    pytest.param("[GET, HEAD]", "[CONNECT]", [(10, "CONNECT is never proxied")], id="connect"),
    pytest.param("[GET, HEAD]", "[]", [(10, "must list at least one method")], id="empty-methods"),
    pytest.param(
        "path: /orders/health\n",
        "path: /orders/health/\n",
        [(16, "'/orders/health/' is not in canonical form; write '/orders/health'")],
        id="path-trailing-slash",
    ),
    pytest.param(
        "path: /orders/health\n",
        "path: /orders//health\n",
        [(16, "'/orders//health' is not in canonical form; write '/orders/health'")],
        id="path-double-slash",
    ),
    pytest.param(
        "path: /orders/health\n",
        "path: /orders/admin%3Areindex\n",
        [(16, "'/orders/admin%3Areindex' is not in canonical form; write '/orders/admin:reindex'")],
        id="path-encoded-colon",
    ),
    pytest.param(
        "path: /orders/health\n",
        "path: /orders/%40me\n",
        [(16, "'/orders/%40me' is not in canonical form; write '/orders/@me'")],
        id="path-encoded-at",
    ),
    pytest.param(
        "path: /orders/health\n",
        "path: /orders/./health\n",
        [(16, "'/orders/./health' is not in canonical form; write '/orders/health'")],
        id="path-dot-segment",
    ),
    pytest.param(
        "path: /orders/health\n",
        "path: /status/../health\n",
        [(16, "'/status/../health' is not in canonical form; write '/health'")],
        id="path-dot-dot-segment",
    ),
    pytest.param(
        "path: /orders/health\n",
        "path: /%6Frders/health\n",
        [(16, "'/%6Frders/health' is not in canonical form; write '/orders/health'")],
        id="path-encoded-unreserved",
    ),
    pytest.param(
        "path: /orders/health\n",
        "path: orders/health\n",
        [(16, "'orders/health' is not in canonical form; write '/orders/health'")],
        id="path-without-leading-slash",
    ),
    pytest.param(
        "path: /orders/health\n",
        "path: /../health\n",
        [(16, "'/../health' is not a valid path")],
        id="path-escaping-root",
    ),
    pytest.param(
        "path: /orders/health\n",
        "path: /orders;v=1/health\n",
        [(16, "'/orders;v=1/health' is not a valid path")],
        id="path-parameter",
    ),
    pytest.param(
        "    upstream: orders\n    auth: none\n",
        "    auth: none\n",
        [(16, "missing required key 'upstream'")],
        id="route-without-upstream",
    ),
    pytest.param(
        "[orders:read]",
        "[orders:read orders:write]",
        [(11, "a scope cannot contain a space")],
        id="scope-with-space",
    ),
    pytest.param(
        "[orders:write]",
        "{all: [orders:write]}",
        [(15, "{any: [a, b]}")],
        id="scopes-mapping-without-any",
    ),
    pytest.param(
        "    url: http://127.0.0.1:9002\n",
        "    url: ftp://127.0.0.1:9002\n",
        [(6, "'url': 'ftp://127.0.0.1:9002' must be an http:// or https:// URL")],
        id="upstream-url-not-http",
    ),
    pytest.param(
        "billing:admin]}\n",
        "billing:admin]}\n    issuers: [local, lokal]\n",
        [(19, "route '/billing' names unknown issuer 'lokal'")],
        id="route-names-unknown-issuer",
    ),
    pytest.param(
        "    auth: none\n",
        "\tauth: none\n",
        [(18, "not valid YAML")],
        id="yaml-tab",
    ),
    pytest.param(
        "  - path: /orders/health\n",
        "  - path: /orders/health: x\n",
        [(16, "not valid YAML: mapping values are not allowed here")],
        id="yaml-syntax-error",
    ),
    pytest.param(ROUTES, "- /orders\n", [(1, "expected a mapping")], id="not-a-mapping"),
]


@pytest.mark.parametrize(("old", "new", "expected"), ROUTE_CASES)
def test_routes_file_problem_is_reported_at_its_line(
    tmp_path: Path, keys: TestKeys, old: str, new: str, expected: list[tuple[int, str]]
) -> None:
    """Each problem in routes.yaml is reported once, at its line, and nothing else is."""
    path = write(tmp_path, keys, routes=swap(ROUTES, old, new))
    issues = problems(path)
    assert_issues(issues, [("routes.yaml", line, text) for line, text in expected], tmp_path)


GATEWAY_CASES = [
    pytest.param(
        "  level: info\n",
        "  level: info\nmetrics: {}\n",
        [(23, "unknown key 'metrics' in gateway.yaml")],
        id="unknown-top-level-key",
    ),
    pytest.param(
        "  leeway: 30s\n",
        "  leway: 30s\n",
        [(19, "unknown key 'leway' in 'tokens' (did you mean 'leeway'?)")],
        id="unknown-key-in-tokens",
    ),
    pytest.param(
        "    audiences: [example-api]\n",
        "    audience: [example-api]\n",
        [(11, "unknown key 'audience' in issuer (did you mean 'audiences'?)")],
        id="unknown-key-in-issuer",
    ),
    pytest.param(
        "  port: 8080\n",
        "  port: 8080\n  port: 8081\n",
        [(4, "duplicate key 'port' (first at line 3)")],
        id="duplicate-key",
    ),
    pytest.param(
        "  port: 8080\n",
        "  port: 80800\n",
        [(3, "'port': must be a port number from 0 to 65535")],
        id="port-too-large",
    ),
    pytest.param(
        "  port: 8080\n", "  port: -1\n", [(3, "'port': must be a port number")], id="port-negative"
    ),
    pytest.param(
        "  port: 8080\n", "  port: http\n", [(3, "'port': must be a port number")], id="port-name"
    ),
    pytest.param(
        "  port: 8080\n", "  port: true\n", [(3, "'port': must be a port number")], id="port-bool"
    ),
    pytest.param(
        "  port: 9090\n",
        "  port: 99999\n",
        [(6, "'port': must be a port number")],
        id="admin-port-too-large",
    ),
    pytest.param(
        "  port: 9090\n",
        "  port: 8080\n",
        [(4, "admin must not share the public port")],
        id="admin-on-public-port",
    ),
    pytest.param(
        "listen:\n  host: 127.0.0.1\n",
        "listen:\n  host: http://127.0.0.1\n",
        [(2, "'host': 'http://127.0.0.1' is not a host name or address")],
        id="host-is-a-url",
    ),
    pytest.param(
        "  leeway: 30s\n",
        "  leeway: half a minute\n",
        [(19, "'leeway': bad duration 'half a minute'")],
        id="bad-duration-leeway",
    ),
    pytest.param(
        "  max_lifetime: 1h\n",
        "  max_lifetime: 1d\n",
        [(20, "'max_lifetime': bad duration '1d'")],
        id="bad-duration-max-lifetime",
    ),
    pytest.param(
        "  level: info\n",
        "  level: verbose\n",
        [(22, "'level': must be one of debug, info, warning, error")],
        id="bad-log-level",
    ),
    pytest.param(
        "  - name: dev\n",
        "  - name: local\n",
        [(14, "duplicate issuer name 'local' (first at line 9)")],
        id="duplicate-issuer-name",
    ),
    pytest.param(
        "    issuer: dev\n",
        "    issuer: https://auth.example.test\n",
        [(14, "duplicate issuer issuer 'https://auth.example.test' (first at line 9)")],
        id="duplicate-issuer-identifier",
    ),
    pytest.param(
        "    keys: [keys/public.pem, keys/jwks.json]\n",
        "",
        [(9, "issuer 'local' has no keys")],
        id="issuer-without-keys",
    ),
    pytest.param(
        "    secret: ${ACCESS_TOKEN_SECRET}\n",
        "",
        [(14, "issuer 'dev' has no keys")],
        id="issuer-without-secret",
    ),
    pytest.param(
        "    algorithms: [RS256, ES256, EdDSA]\n",
        "",
        [(9, "missing required key 'algorithms'")],
        id="issuer-without-algorithms",
    ),
    pytest.param(
        "    algorithms: [RS256, ES256, EdDSA]\n",
        "    algorithms: [RS256, ES256, EdDSA, none]\n",
        [(12, "'algorithms': 'none' is never accepted")],
        id="none-algorithm",
    ),
    pytest.param(
        "    algorithms: [HS256]\n",
        "    algorithms: [HS256, NONE]\n",
        [(16, "'algorithms': 'none' is never accepted")],
        id="none-algorithm-upper-case",
    ),
    pytest.param(
        "    algorithms: [HS256]\n",
        "    algorithms: [HS256, HS1024]\n",
        [(16, "'algorithms': unsupported algorithm 'HS1024'")],
        id="unsupported-algorithm",
    ),
    pytest.param(
        "    algorithms: [RS256, ES256, EdDSA]\n",
        "    algorithms: [RS256, ES256, EdDSA, HS256]\n",
        [(12, "algorithm HS256 is allowed but no configured key can verify it")],
        id="algorithm-without-key",
    ),
    pytest.param(
        "    keys: [keys/public.pem, keys/jwks.json]\n",
        "    keys: [keys/public.pem, keys/jwks.json]\n    secret: ${ACCESS_TOKEN_SECRET}\n",
        [(14, "'secret' is set but no HS256/HS384/HS512 algorithm is allowed")],
        id="secret-without-hmac-algorithm",
    ),
    pytest.param(
        "keys/public.pem",
        "keys/missing.pem",
        [(13, "missing.pem: No such file")],
        id="key-file-missing",
    ),
    pytest.param(
        "routes: routes.yaml\n",
        "routes: routes.yaml\ntls: {cert: '', key: tls.key}\n",
        [(8, "'cert': must be a non-empty string")],
        id="tls-cert-empty",
    ),
    pytest.param(
        "listen:\n  host: 127.0.0.1\n",
        "listen:\n  host: 127.0.0.1: 1\n",
        [(2, "not valid YAML: mapping values are not allowed here")],
        id="yaml-syntax-error",
    ),
]


@pytest.mark.parametrize(("old", "new", "expected"), GATEWAY_CASES)
def test_gateway_file_problem_is_reported_at_its_line(
    tmp_path: Path, keys: TestKeys, old: str, new: str, expected: list[tuple[int, str]]
) -> None:
    """Each problem in gateway.yaml is reported once, at its line, and nothing else is."""
    path = write(tmp_path, keys, gateway=swap(GATEWAY, old, new))
    issues = problems(path)
    assert_issues(issues, [("gateway.yaml", line, text) for line, text in expected], tmp_path)


def test_every_problem_in_both_files_is_reported_in_one_error(
    tmp_path: Path, keys: TestKeys
) -> None:
    """Problems in both files come back together in one ConfigError, one `file:line: ...` each."""
    gateway = swap(GATEWAY, "  port: 8080\n", "  port: 80800\n")
    gateway = swap(gateway, "  leeway: 30s\n", "  leeway: 30 seconds\n")
    gateway = swap(gateway, "  max_lifetime: 1h\n", "  max_lifetim: 1h\n")
    routes = swap(ROUTES, "    timeout: 30s\n", "    timeout: 1 minute\n")
    routes = swap(routes, "    scopes: [orders:read]\n", "    scope: [orders:read]\n")
    routes = swap(routes, "[POST, PUT, PATCH, DELETE]", "[GET, POST]")
    routes = swap(routes, "    auth: none\n", "    auth: none\n    scopes: [x]\n")
    routes = swap(routes, "billing:admin]}\n", "billing:admin]}\n    issuers: [lokal]\n")
    path = write(tmp_path, keys, gateway=gateway, routes=routes)
    with pytest.raises(ConfigError) as info:
        load(path, ENVIRON)
    issues = info.value.issues
    assert_issues(
        issues,
        [
            ("gateway.yaml", 3, "'port': must be a port number"),
            ("gateway.yaml", 19, "'leeway': bad duration '30 seconds'"),
            ("gateway.yaml", 20, "unknown key 'max_lifetim' in 'tokens' (did you mean"),
            ("routes.yaml", 4, "'timeout': bad duration '1 minute'"),
            ("routes.yaml", 11, "unknown key 'scope' in route (did you mean 'scopes'?)"),
            ("routes.yaml", 12, "route '/orders' overlaps the route at line 8 (both allow GET)"),
            ("routes.yaml", 19, "a route with 'auth: none' cannot need scopes"),
            ("routes.yaml", 20, "route '/billing' names unknown issuer 'lokal'"),
        ],
        tmp_path,
    )
    assert str(info.value).splitlines() == [f"{i.file}:{i.line}: {i.message}" for i in issues]


def test_misspelled_scopes_never_loads_on_reload(tmp_path: Path, keys: TestKeys) -> None:
    """load_routes (the reload path) refuses a `scope:` typo instead of making the route public."""
    write(tmp_path, keys, routes=swap(ROUTES, "    scopes: [orders:read]\n", "    scope: [x]\n"))
    with pytest.raises(ConfigError) as info:
        load_routes(tmp_path / "routes.yaml", ENVIRON)
    assert_issues(info.value.issues, [("routes.yaml", 11, "unknown key 'scope'")], tmp_path)


def test_bad_auth_value_lists_the_allowed_values(tmp_path: Path, keys: TestKeys) -> None:
    """`auth: optional` is reported at its line with the values `auth` accepts, not a class name."""
    path = write(tmp_path, keys, routes=swap(ROUTES, "auth: none", "auth: optional"))
    (issue,) = problems(path)
    assert (Path(issue.file).name, issue.line) == ("routes.yaml", 18)
    assert "'required'" in issue.message
    assert "'none'" in issue.message
    assert "AuthMode" not in issue.message


def test_upstream_named_only_by_a_rejected_route_is_not_reported_unused(
    tmp_path: Path, keys: TestKeys
) -> None:
    """A route refused for a bad method does not also make its upstream `not used by any route`."""
    routes = swap(ROUTES, "    upstream: billing\n", "    upstream: billing\n    methods: [get]\n")
    path = write(tmp_path, keys, routes=routes)
    assert_issues(problems(path), [("routes.yaml", 21, "'get' is not a method")], tmp_path)


def test_routes_may_name_configured_issuers(tmp_path: Path, keys: TestKeys) -> None:
    """`issuers:` on a route restricts it to configured issuers, by name."""
    routes = swap(ROUTES, "billing:admin]}\n", "billing:admin]}\n    issuers: [local, dev]\n")
    config = load(write(tmp_path, keys, routes=routes), ENVIRON)
    assert config.routes.routes[3].issuers == frozenset({"local", "dev"})


def test_route_naming_a_refused_issuer_is_not_reported_unknown(
    tmp_path: Path, keys: TestKeys
) -> None:
    """An issuer refused for its own problem is not also `unknown` to the routes that name it."""
    gateway = swap(GATEWAY, "    issuer: dev\n", "")
    routes = swap(ROUTES, "billing:admin]}\n", "billing:admin]}\n    issuers: [dev]\n")
    path = write(tmp_path, keys, gateway=gateway, routes=routes)
    assert_issues(problems(path), [("gateway.yaml", 14, "missing required key 'issuer'")], tmp_path)


def test_missing_routes_file_is_named(tmp_path: Path, keys: TestKeys) -> None:
    """A routes file that does not exist is one problem naming that file."""
    path = write(tmp_path, keys, gateway=swap(GATEWAY, "routes: routes.yaml", "routes: gone.yaml"))
    (issue,) = problems(path)
    assert issue.file == str(tmp_path / "gone.yaml")
    assert "No such file" in issue.message


# -- keys and secrets ---------------------------------------------------------------------


def _private_pem(keys: TestKeys, directory: Path) -> None:
    (directory / "keys" / "public.pem").write_bytes(
        keys.pem_rsa.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )


def _private_jwk(keys: TestKeys, directory: Path) -> None:
    document = keys.jwks()
    document["keys"][0] = {**RSAAlgorithm.to_jwk(keys.rsa, as_dict=True), "kid": "k1"}
    (directory / "keys" / "jwks.json").write_text(json.dumps(document))


@pytest.mark.parametrize(
    ("spoil", "fragment"),
    [
        pytest.param(_private_pem, "public.pem holds a private key", id="pem"),
        pytest.param(_private_jwk, "jwks.json: key 'k1' is unusable (private_key)", id="jwk"),
    ],
)
def test_private_key_where_public_key_is_expected_is_refused(
    tmp_path: Path, keys: TestKeys, spoil: Callable[[TestKeys, Path], None], fragment: str
) -> None:
    """A private key in a key file is an error at the issuer's `keys` line."""
    path = write(tmp_path, keys)
    spoil(keys, tmp_path)
    assert_issues(problems(path), [("gateway.yaml", 13, fragment)], tmp_path)


def test_kid_naming_two_keys_across_files_is_an_error(tmp_path: Path, keys: TestKeys) -> None:
    """A kid used for different keys in two JWKS files of one issuer is reported."""
    other = {"keys": [{**public_jwk(keys.attacker.public_key()), "kid": "k1"}]}
    gateway = swap(GATEWAY, "keys/jwks.json]", "keys/jwks.json, other.json]")
    path = write(tmp_path, keys, gateway=gateway)
    (tmp_path / "other.json").write_text(json.dumps(other))
    assert_issues(
        problems(path), [("gateway.yaml", 13, "kid 'k1' names two different keys")], tmp_path
    )


@pytest.mark.parametrize(
    ("algorithms", "secret", "fragment"),
    [
        pytest.param(
            "HS256",
            "s3cr3t-" * 4 + "abc",
            "is 31 bytes; HS256 needs at least 32",
            id="hs256-31-bytes",
        ),
        pytest.param(
            "HS256, HS512",
            "s3cr3t-" * 9,
            "is 63 bytes; HS256/HS512 needs at least 64",
            id="hs512-63-bytes",
        ),
        pytest.param("HS256", "\u00e9" * 15, "'secret' is 30 bytes", id="counted-in-bytes"),
        pytest.param("HS256", "", "'secret': must be a non-empty string", id="empty"),
    ],
)
def test_weak_hmac_secret_is_refused(
    tmp_path: Path, keys: TestKeys, algorithms: str, secret: str, fragment: str
) -> None:
    """An HMAC secret shorter than its hash (RFC 7518 3.2) is one error that never echoes it."""
    gateway = swap(GATEWAY, "    algorithms: [HS256]\n", f"    algorithms: [{algorithms}]\n")
    path = write(tmp_path, keys, gateway=gateway)
    with pytest.raises(ConfigError) as info:
        load(path, {"ACCESS_TOKEN_SECRET": secret})
    assert_issues(info.value.issues, [("gateway.yaml", 17, fragment)], tmp_path)
    if secret:
        assert secret not in str(info.value)


@pytest.mark.parametrize(
    "secret",
    [pytest.param("x" * 32, id="32-ascii"), pytest.param("\u00e9" * 16, id="32-bytes-16-chars")],
)
def test_hmac_secret_of_32_bytes_is_enough_for_hs256(
    tmp_path: Path, keys: TestKeys, secret: str
) -> None:
    """A 32-byte secret loads as a key bound to HS256 only."""
    config = load(write(tmp_path, keys), {"ACCESS_TOKEN_SECRET": secret})
    (key,) = config.issuers[1].keys.keys
    assert (key.algorithms, key.key) == (frozenset({"HS256"}), secret.encode())


# -- ${VAR} interpolation -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "environ", "expected"),
    [
        pytest.param("${DEV_ISSUER}", {"DEV_ISSUER": "dev-1"}, "dev-1", id="variable"),
        pytest.param("a-${DEV_ISSUER}-b", {"DEV_ISSUER": "x"}, "a-x-b", id="inside-text"),
        pytest.param("${DEV_ISSUER:-fallback}", {}, "fallback", id="default-when-unset"),
        pytest.param("${DEV_ISSUER:-fallback}", {"DEV_ISSUER": "set"}, "set", id="default-unused"),
        pytest.param("$${DEV_ISSUER}", {}, "${DEV_ISSUER}", id="escaped-literal"),
        pytest.param("${DEV_ISSUER}", {"DEV_ISSUER": "${OTHER}"}, "${OTHER}", id="not-recursive"),
    ],
)
def test_variables_are_interpolated(
    tmp_path: Path, keys: TestKeys, value: str, environ: dict[str, str], expected: str
) -> None:
    """`${NAME}`, `${NAME:-default}` and `$${` are substituted once, as the README documents."""
    gateway = swap(GATEWAY, "    issuer: dev\n", f'    issuer: "{value}"\n')
    config = load(write(tmp_path, keys, gateway=gateway), {**ENVIRON, **environ})
    assert config.issuers[1].issuer == expected


def test_variables_are_interpolated_in_both_files_and_in_lists(
    tmp_path: Path, keys: TestKeys
) -> None:
    """Variables work in routes.yaml and inside list items (key file names)."""
    gateway = swap(GATEWAY, "[keys/public.pem,", "['${KEY_DIR}/public.pem',")
    routes = swap(ROUTES, "url: http://127.0.0.1:9001", "url: ${ORDERS_URL}")
    environ = {**ENVIRON, "KEY_DIR": "keys", "ORDERS_URL": "https://orders.internal:8443"}
    config: Config = load(write(tmp_path, keys, gateway=gateway, routes=routes), environ)
    assert config.issuers[0].key_files[0] == tmp_path / "keys" / "public.pem"
    assert config.routes.upstreams["orders"].url == yarl.URL("https://orders.internal:8443")


@pytest.mark.parametrize(
    ("gateway", "routes", "environ", "expected"),
    [
        pytest.param(
            swap(GATEWAY, "    issuer: dev\n", "    issuer: ${DEV_ISSUER}\n"),
            ROUTES,
            ENVIRON,
            ("gateway.yaml", 15, "'issuer': environment variable DEV_ISSUER is not set"),
            id="issuer",
        ),
        pytest.param(
            GATEWAY,
            ROUTES,
            {},
            ("gateway.yaml", 17, "'secret': environment variable ACCESS_TOKEN_SECRET is not set"),
            id="secret",
        ),
        pytest.param(
            GATEWAY,
            swap(ROUTES, "url: http://127.0.0.1:9001", "url: ${ORDERS_URL}"),
            ENVIRON,
            ("routes.yaml", 3, "'url': environment variable ORDERS_URL is not set"),
            id="upstream-url",
        ),
    ],
)
def test_unset_variable_is_one_error_naming_it(
    tmp_path: Path,
    keys: TestKeys,
    gateway: str,
    routes: str,
    environ: dict[str, str],
    expected: Expected,
) -> None:
    """An unset variable is reported once, at its line, by name, with no follow-on errors."""
    path = write(tmp_path, keys, gateway=gateway, routes=routes)
    assert_issues(problems(path, environ), [expected], tmp_path)


def test_malformed_reference_is_not_reported_as_an_unset_variable(
    tmp_path: Path, keys: TestKeys
) -> None:
    """A `${` without its closing brace is reported as broken syntax, not as an unset variable."""
    gateway = swap(GATEWAY, "${ACCESS_TOKEN_SECRET}", "${ACCESS_TOKEN_SECRET")
    issues = problems(write(tmp_path, keys, gateway=gateway))
    (issue,) = [issue for issue in issues if issue.line == 17]
    assert "'secret'" in issue.message
    assert "is not set" not in issue.message


# -- the shipped samples and `gateway check` ----------------------------------------------


def test_shipped_sample_config_loads() -> None:
    """config/gateway.yaml and its routes.yaml load as shipped once the secret is set."""
    config = load(REPO / "config" / "gateway.yaml", {"ACCESS_TOKEN_SECRET": "x" * 40})
    assert config.routes.routes
    assert all(route.upstream in config.routes.upstreams for route in config.routes.routes)


@pytest.mark.parametrize("name", [pytest.param(n, id=n) for n in ("gateway.yaml", "routes.yaml")])
def test_embedded_samples_match_config_directory(name: str) -> None:
    """gateway/samples/ (used by `gateway demo`) is byte-identical to config/."""
    embedded = (REPO / "gateway" / "samples" / name).read_bytes()
    assert embedded == (REPO / "config" / name).read_bytes()


def test_check_accepts_the_shipped_sample(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`gateway check -c config/gateway.yaml` exits 0 when the secret is in the environment."""
    monkeypatch.chdir(REPO)
    monkeypatch.setenv("ACCESS_TOKEN_SECRET", "x" * 40)
    assert main(["check", "-c", "config/gateway.yaml"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("ok: config/gateway.yaml")


def test_check_prints_one_line_per_problem(
    tmp_path: Path,
    keys: TestKeys,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`gateway check` on a broken config exits 1 and prints exactly one `file:line: ...` each."""
    monkeypatch.setenv("ACCESS_TOKEN_SECRET", ENVIRON["ACCESS_TOKEN_SECRET"])
    gateway = swap(GATEWAY, "  leeway: 30s\n", "  leeway: soon\n")
    routes = swap(ROUTES, "    upstream: billing\n", "    upstream: biling\n")
    path = write(tmp_path, keys, gateway=gateway, routes=routes)
    assert main(["check", "-c", str(path)]) == 1
    captured = capsys.readouterr()
    printed = []
    for line in captured.out.splitlines():
        match = re.fullmatch(r"(.+):(\d+): (.+)", line)
        assert match is not None, line
        printed.append(ConfigIssue(match[1], int(match[2]), match[3]))
    assert_issues(
        printed,
        [
            ("gateway.yaml", 19, "'leeway': bad duration 'soon'"),
            ("routes.yaml", 20, "unknown upstream 'biling'"),
            ("routes.yaml", 5, "upstream 'billing' is not used by any route"),
        ],
        tmp_path,
    )
    assert captured.err == ""


def test_check_names_an_unset_variable(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`gateway check` on the sample without its secret exits 1 naming the variable."""
    monkeypatch.chdir(REPO)
    monkeypatch.delenv("ACCESS_TOKEN_SECRET", raising=False)
    assert main(["check", "-c", "config/gateway.yaml"]) == 1
    out = capsys.readouterr().out
    assert any(
        line.startswith("config/gateway.yaml:") and "ACCESS_TOKEN_SECRET is not set" in line
        for line in out.splitlines()
    ), out
