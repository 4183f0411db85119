"""Property tests over the config loader: whatever the files hold, loading ends in a `Config` or
in `ConfigError` issues (``file:line: what is wrong``), never in another exception.

A live reload and ``gateway check`` both go through `load`; an exception escaping it would end the
file watcher or print a traceback. The documents are valid ones with values replaced by junk
(so the readers get deep into them), YAML text with bytes inserted, and nesting deep enough to
exhaust a recursive parser; the key files are JWKS documents with members of every type, PEM
text with a damaged body, and random bytes.
"""

from __future__ import annotations

import json
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from gateway.config import INTERNAL_ERROR, ConfigError, load, routes_reader, tls
from gateway.core.keys import public_jwk
from tests.support import DEFAULT_GATEWAY, DEFAULT_ROUTES, ENVIRON, TestKeys, write_config

pytestmark = pytest.mark.slow  # property-based: many examples each

FUZZ = settings(
    max_examples=120,
    deadline=None,
    derandomize=True,  # the same inputs on every run: CI stays reproducible and its time bounded
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.function_scoped_fixture,  # config_dir: each example rewrites what it tests
    ],
)

# Poison inputs from the hardening issue; each escaped the loader before.
DEEP_FLOW = "upstreams: " + "[" * 5000 + "]" * 5000 + "\n"
DEEP_BLOCK = "".join(" " * depth + "a:\n" for depth in range(3000)) + " " * 3000 + "b\n"
NUL_PATH = (
    'upstreams:\n  orders: {url: "https://127.0.0.1:9", ca: "ca\\0.pem"}\n'
    "routes:\n  - path: /orders\n    upstream: orders\n    scopes: [orders:read]\n"
)
KTY_LIST = json.dumps({"keys": [{"kty": ["RSA"]}]}).encode()
DEEP_JSON = b"[" * 100_000


@pytest.fixture(scope="module")
def keys() -> TestKeys:
    """One set of real keys for the whole module (generating RSA keys per example is slow)."""
    return TestKeys.generate()


@pytest.fixture(scope="module", autouse=True)
def _no_trust_store() -> Iterator[None]:
    """Each upstream's TLS context loads the system trust store (40 ms a load, most of a load's
    time); these tests are about reading the files, so an upstream without its own CA or client
    certificate gets a bare context instead."""

    def client_context(**options: Any) -> ssl.SSLContext:
        if any(options.get(name) is not None for name in ("ca", "client_cert", "client_key")):
            return tls.client_context(**options)
        return ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(routes_reader, "client_context", client_context)
        yield


@pytest.fixture
def config_dir(tmp_path: Path, keys: TestKeys) -> Path:
    """A valid config directory; each example overwrites the file(s) its test is about."""
    write_config(tmp_path, keys)
    return tmp_path


def _assert_loads_or_refuses(path: Path) -> None:
    """`load` returns, or raises `ConfigError` with issues none of which is a reader's bug."""
    try:
        load(path, ENVIRON)
    except ConfigError as exc:
        issues = exc.issues
    else:
        return
    assert issues
    for issue in issues:
        assert INTERNAL_ERROR not in issue.message, str(issue)
        assert issue.file, issue
        assert issue.line >= 0, issue
        assert issue.message, issue


# -- values and documents -----------------------------------------------------------------------

_INTERESTING = [
    "", "\0", "a\0b", "keys/public.pem\0", "/orders", "/orders/\0", "orders", "GET", "get",
    "none", "required", "report", "any", "10s", "0s", "-1s", "1h", "9" * 30, "512KiB",
    "https://127.0.0.1:9", "http://", "${UNSET}", "${", "$${x}", "RS256", "HS256", "none",
    "~", "*", "!", "\ud7ff", "é", "\u2028", " ", "\t\n",
]  # fmt: skip
_scalar = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(),
    st.sampled_from(_INTERESTING),
    st.text(max_size=12),
)
_value = st.recursive(
    _scalar,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.one_of(st.sampled_from(["any", "url", "path"]), st.text(max_size=6)),
                        children, max_size=4),
    ),
    max_leaves=12,
)  # fmt: skip


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every place in a parsed document a value sits at (the root included)."""
    found = [prefix]
    if isinstance(value, dict):
        for key, item in value.items():
            found += _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += _paths(item, (*prefix, index))
    return found


def _replace(document: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    parent = document
    for step in path[:-1]:
        parent = parent[step]
    parent[path[-1]] = value
    return document


@st.composite
def _mutated(draw: st.DrawFn, template: str) -> str:
    """A valid document with values replaced, keys added or removed, and bytes inserted."""
    document = yaml.safe_load(template)
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        path = draw(st.sampled_from(_paths(document)))
        action = draw(st.sampled_from(["replace", "replace", "delete", "add"]))
        if action == "replace":
            document = _replace(document, path, draw(_value))
        elif action == "delete" and path:
            parent = document
            for step in path[:-1]:
                parent = parent[step]
            del parent[path[-1]]
        else:
            target = document
            for step in path:
                target = target[step]
            if isinstance(target, dict):
                target[draw(st.text(max_size=8))] = draw(_value)
            elif isinstance(target, list):
                target.append(draw(_value))
    text = yaml.safe_dump(document, allow_unicode=draw(st.booleans()))
    if draw(st.booleans()):
        at = draw(st.integers(min_value=0, max_value=len(text)))
        junk = draw(st.sampled_from(["\0", "\t", ": ", "- ", "&a ", "*a", "!!binary ", "{", "'"]))
        text = text[:at] + junk + text[at:]
    return text


def _deep(depth: int, style: str) -> str:
    if style == "flow":
        return "routes: " + "[" * depth + "]" * depth + "\n"
    if style == "mapping":
        return "routes: " + "{a: " * depth + "b" + "}" * depth + "\n"
    return "".join(" " * level + "- \n" for level in range(depth))


_deep_documents = st.builds(
    _deep,
    st.one_of(st.integers(min_value=1, max_value=600), st.sampled_from([65, 400, 600])),
    st.sampled_from(["flow", "mapping", "block"]),
)
_ALIASES = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{name}: &{name} [{', '.join([f'*{previous}'] * 10)}]\n"
    for previous, name in zip("abcdefg", "bcdefgh", strict=True)
)


def _routes_template() -> str:
    return DEFAULT_ROUTES.format(upstream="http://127.0.0.1:9")


def _routes_documents() -> st.SearchStrategy[str]:
    return st.one_of(
        _mutated(_routes_template()),
        _deep_documents,
        st.text(max_size=200),
        st.just(_ALIASES),
        st.just("a: &x [*x]\n"),
    )


@FUZZ
@given(text=_routes_documents())
@example(text=DEEP_BLOCK)
@example(text=NUL_PATH)
def test_any_routes_file_loads_or_is_refused(config_dir: Path, text: str) -> None:
    """Whatever routes.yaml holds, loading ends in a config or in file:line issues."""
    (config_dir / "routes.yaml").write_text(text, encoding="utf-8")
    _assert_loads_or_refuses(config_dir / "gateway.yaml")


@FUZZ
@given(text=st.one_of(_mutated(DEFAULT_GATEWAY.format(
    issuer="https://auth.example.test", audience="example-api", dev_issuer="dev"
)), _deep_documents))  # fmt: skip
def test_any_gateway_file_loads_or_is_refused(config_dir: Path, text: str) -> None:
    """Whatever gateway.yaml holds, loading ends in a config or in file:line issues."""
    path = config_dir / "gateway.yaml"
    path.write_text(text, encoding="utf-8")
    _assert_loads_or_refuses(path)


# -- key files -----------------------------------------------------------------------------------


def _member_values(keys: TestKeys) -> dict[str, list[Any]]:
    """Real members of real keys (so that some entries parse), to mix with junk."""
    real = [public_jwk(keys.rsa.public_key()), public_jwk(keys.ec.public_key()),
            public_jwk(keys.ed.public_key())]  # fmt: skip
    members: dict[str, list[Any]] = {}
    for jwk in real:
        for name, value in jwk.items():
            members.setdefault(name, []).append(value)
    return members


@st.composite
def _jwks_documents(draw: st.DrawFn, keys: TestKeys) -> bytes:
    members = _member_values(keys)
    names = sorted({*members, "kid", "use", "alg", "k", "key_ops", "x5c"})
    entries: list[Any] = []
    for _ in range(draw(st.integers(min_value=0, max_value=3))):
        entry: dict[str, Any] = {}
        for name in draw(st.lists(st.sampled_from(names), max_size=6, unique=True)):
            known = [*members.get(name, []), "RSA", "EC", "OKP", "oct", "sig", "RS256", "P-256"]
            entry[name] = draw(st.one_of(st.sampled_from(known), _value))
        entries.append(entry if draw(st.integers(0, 9)) else draw(_value))
    document: Any = {"keys": entries} if draw(st.integers(0, 9)) else draw(_value)
    return json.dumps(document).encode()


def _pem_documents(keys: TestKeys) -> st.SearchStrategy[bytes]:
    pem = keys.public_pem()
    body = pem.splitlines()[1:-1]

    def damage(line: int, at: int, byte: int) -> bytes:
        lines = [bytearray(b) for b in body]
        target = lines[line % len(lines)]
        target[at % len(target)] = byte
        return b"\n".join([b"-----BEGIN PUBLIC KEY-----", *map(bytes, lines),
                           b"-----END PUBLIC KEY-----"]) + b"\n"  # fmt: skip

    headers = st.sampled_from([b"PUBLIC KEY", b"CERTIFICATE", b"RSA PUBLIC KEY", b"EC PARAMETERS"])
    return st.one_of(
        st.builds(damage, st.integers(0, 99), st.integers(0, 99), st.integers(0, 255)),
        st.builds(
            lambda header, data: (
                b"-----BEGIN " + header + b"-----\n" + data + b"\n-----END " + header + b"-----\n"
            ),
            headers,
            st.binary(max_size=300),
        ),
        st.binary(max_size=300),
    )


@FUZZ
@given(data=st.data())
def test_any_key_files_load_or_are_refused(
    config_dir: Path, keys: TestKeys, data: st.DataObject
) -> None:
    """Whatever the JWKS and PEM key files hold, loading ends in a config or in file:line issues
    (a JWK of the wrong shape is an issue naming the key, never an exception)."""
    jwks = data.draw(st.one_of(_jwks_documents(keys), st.binary(max_size=200),
                               st.just(DEEP_JSON)), label="jwks")  # fmt: skip
    pem = data.draw(_pem_documents(keys), label="pem")
    (config_dir / "keys" / "jwks.json").write_bytes(jwks)
    (config_dir / "keys" / "public.pem").write_bytes(pem)
    _assert_loads_or_refuses(config_dir / "gateway.yaml")


# -- the issue's poison files, each with the problem it is reported as ---------------------------

_GATEWAY = DEFAULT_GATEWAY.format(issuer="i", audience="a", dev_issuer="d")


@pytest.mark.parametrize(
    ("file", "content", "where", "problem"),
    [
        ("routes.yaml", DEEP_FLOW.encode(), "routes.yaml:1", "nested more than 64 levels deep"),
        ("routes.yaml", DEEP_BLOCK.encode(), "routes.yaml:64", "nested more than 64 levels deep"),
        ("routes.yaml", NUL_PATH.encode(), "routes.yaml:2",
         "'ca': a file name cannot contain a NUL byte"),
        ("gateway.yaml", _GATEWAY.replace("keys/public.pem", '"keys/pub\\0.pem"').encode(),
         "gateway.yaml:9", "'keys': a file name cannot contain a NUL byte"),
        ("gateway.yaml", _GATEWAY.replace("routes: routes.yaml", 'routes: "r\\0.yaml"').encode(),
         "gateway.yaml:3", "'routes': a file name cannot contain a NUL byte"),
        ("keys/jwks.json", KTY_LIST, "gateway.yaml:9", "is unusable (unsupported_kty)"),
        ("keys/jwks.json", DEEP_JSON, "gateway.yaml:9", "not a JWKS document (nested too deeply)"),
    ],
    ids=["deep-flow", "deep-block", "nul-ca", "nul-key-file", "nul-routes", "kty-list",
         "deep-json"],
)  # fmt: skip
def test_poison_files_are_file_line_issues(
    config_dir: Path, file: str, content: bytes, where: str, problem: str
) -> None:
    """Each input that once escaped the loader is now a file:line issue saying what is wrong."""
    (config_dir / file).write_bytes(content)
    with pytest.raises(ConfigError) as caught:
        load(config_dir / "gateway.yaml", ENVIRON)
    assert any(
        str(issue).startswith(f"{config_dir / where}: ") and problem in issue.message
        for issue in caught.value.issues
    ), [str(issue) for issue in caught.value.issues]
