"""The `gateway` command line: check, routes explain, keys generate, token, demo and run."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any, cast

import aiohttp
import jwt
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from cryptography.hazmat.primitives import serialization
from pytest_aiohttp import AiohttpClient, AiohttpServer

import gateway
from gateway.cli import main
from gateway.compiled import request_path_compiled
from gateway.config import load
from gateway.server.app import create_app
from tests.conftest import GatewayTestServer
from tests.functional.gateway_process import running_gateway, wait_for_status
from tests.support import (
    AUDIENCE,
    DEFAULT_ROUTES,
    ENVIRON,
    ISSUER,
    RecordingUpstream,
    TestKeys,
    TokenFactory,
    write_config,
)

REPO = Path(__file__).resolve().parents[3]
SHIPPED_CONFIG = REPO / "config" / "gateway.yaml"
SECRET_40 = "s" * 40
PROBLEM_LINE = re.compile(r"^(?P<file>[^\s:][^:]*):(?P<line>\d+): (?P<what>.+)$")
ASYMMETRIC = ("RS256", "ES256", "EdDSA")
THUMBPRINT_MEMBERS = {
    "RSA": ("e", "kty", "n"),
    "EC": ("crv", "kty", "x", "y"),
    "OKP": ("crv", "kty", "x"),
}

Client = TestClient[web.Request, web.Application]


def _run_cli(*args: str, cwd: Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """``python -m gateway ARGS`` as a user would run it."""
    environ = {key: value for key, value in os.environ.items() if key != "ACCESS_TOKEN_SECRET"}
    return subprocess.run(
        [sys.executable, "-m", "gateway", *args],
        cwd=cwd, env=environ, capture_output=True, text=True, timeout=timeout, check=False,
    )  # fmt: skip


def _lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def _generate(alg: str, directory: Path) -> Path:
    assert main(["keys", "generate", "--alg", alg, "--out", str(directory)]) == 0
    return directory


def _thumbprint(jwk: dict[str, Any]) -> str:
    """RFC 7638: SHA-256 over the required members, sorted, no whitespace, base64url."""
    required = {name: jwk[name] for name in THUMBPRINT_MEMBERS[jwk["kty"]]}
    canonical = json.dumps(required, separators=(",", ":"), sort_keys=True).encode()
    return base64.urlsafe_b64encode(hashlib.sha256(canonical).digest()).rstrip(b"=").decode()


def _public_key(path: Path) -> Any:
    return serialization.load_pem_public_key(path.read_bytes())


def _jwk_of_pem(alg: str, path: Path) -> dict[str, Any]:
    """The public JWK of a PEM file, computed by PyJWT (independently of the gateway)."""
    algorithm = jwt.get_algorithm_by_name(alg)
    return algorithm.to_jwk(_public_key(path), as_dict=True)


def _mint(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    assert main(["token", *args]) == 0
    captured = capsys.readouterr()
    assert captured.err == ""
    (token,) = _lines(captured.out)
    return token


# --- check -------------------------------------------------------------------------------------


def test_check_accepts_the_shipped_config(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`gateway check` exits 0 on the shipped config/ when ACCESS_TOKEN_SECRET is set."""
    monkeypatch.setenv("ACCESS_TOKEN_SECRET", SECRET_40)
    assert main(["check", "-c", str(SHIPPED_CONFIG)]) == 0
    assert capsys.readouterr().err == ""


BROKEN_GATEWAY = """\
listen: {host: 127.0.0.1, port: 8080}
admin: {host: 127.0.0.1, port: 9090}
routes: routes.yaml
issuers:
  - name: dev
    issuer: dev
    algorithms: [HS256]
    secret: ${ACCESS_TOKEN_SECRET}
tokens:
  leeway: 30x
  lifetime: 1h
"""

BROKEN_ROUTES = """\
upstreams:
  orders: {url: "http://127.0.0.1:9001", timeout: 2x}
routes:
  - path: /orders
    upstream: nowhere
    scopes: [orders:read]
  - path: /orders
    upstream: orders
    methods: [POST]
    scopse: [orders:write]
"""


def test_check_reports_each_problem_with_file_and_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A broken config exits 1 with exactly one `file:line: what` line per problem."""
    monkeypatch.setenv("ACCESS_TOKEN_SECRET", SECRET_40)
    (tmp_path / "gateway.yaml").write_text(BROKEN_GATEWAY)
    (tmp_path / "routes.yaml").write_text(BROKEN_ROUTES)
    assert main(["check", "-c", str(tmp_path / "gateway.yaml")]) == 1
    captured = capsys.readouterr()
    lines = _lines(captured.out + captured.err)
    problems = {}
    for line in lines:
        match = PROBLEM_LINE.match(line)
        assert match, f"not a file:line: problem line: {line!r}"
        problems[(Path(match["file"]).name, int(match["line"]))] = match["what"]
    assert len(lines) == 5, lines
    assert set(problems) == {
        ("gateway.yaml", 10),
        ("gateway.yaml", 11),
        ("routes.yaml", 2),
        ("routes.yaml", 5),
        ("routes.yaml", 10),
    }
    assert "30x" in problems[("gateway.yaml", 10)]
    assert "lifetime" in problems[("gateway.yaml", 11)]
    assert "2x" in problems[("routes.yaml", 2)]
    assert "nowhere" in problems[("routes.yaml", 5)]
    assert "scopse" in problems[("routes.yaml", 10)]


def test_check_names_an_unset_environment_variable(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`gateway check` exits 1 and names ACCESS_TOKEN_SECRET when it is not set."""
    monkeypatch.delenv("ACCESS_TOKEN_SECRET", raising=False)
    assert main(["check", "-c", str(SHIPPED_CONFIG)]) == 1
    captured = capsys.readouterr()
    (line,) = _lines(captured.out + captured.err)
    match = PROBLEM_LINE.match(line)
    assert match, line
    assert Path(match["file"]).name == "gateway.yaml"
    assert "ACCESS_TOKEN_SECRET" in match["what"]


# --- routes explain ----------------------------------------------------------------------------


def _explain(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], method: str, path: str
) -> str:
    monkeypatch.setenv("ACCESS_TOKEN_SECRET", SECRET_40)
    assert main(["routes", "explain", method, path, "-c", str(SHIPPED_CONFIG)]) == 0
    captured = capsys.readouterr()
    assert captured.err == ""
    return captured.out


def test_explain_shows_route_upstream_url_and_scopes(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Explaining GET /orders/7 prints the /orders route, its upstream URL and orders:read."""
    out = _explain(monkeypatch, capsys, "GET", "/orders/7")
    assert re.search(r"route\b.*/orders\b", out), out
    assert "http://127.0.0.1:9001/orders/7" in out
    assert "orders:read" in out
    assert "orders:write" not in out


@pytest.mark.parametrize(
    ("method", "path", "patterns"),
    [
        pytest.param("GET", "/invoices/7", ["(?i)no route", "404"], id="nothing-matches-404"),
        pytest.param("OPTIONS", "/orders/7", ["405", "GET", "POST"], id="wrong-method-405"),
    ],
)
def test_explain_of_a_refused_request_names_no_upstream(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    method: str,
    path: str,
    patterns: list[str],
) -> None:
    """Explaining a path no route covers says so (404), and a method no /orders route allows
    reports 405 with the allowed methods; neither names the upstream."""
    out = _explain(monkeypatch, capsys, method, path)
    for pattern in patterns:
        assert re.search(pattern, out), (pattern, out)
    assert "9001" not in out


def test_explain_shows_the_canonical_path(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Explaining /orders/../admin works on the canonical /admin, which no route covers."""
    out = _explain(monkeypatch, capsys, "GET", "/orders/../admin")
    canonical = [line for line in out.splitlines() if "canonical" in line.lower()]
    assert canonical, out
    assert "/admin" in canonical[0]
    assert ".." not in canonical[0]
    assert "no route" in out.lower()
    assert "9001" not in out


# --- keys generate -----------------------------------------------------------------------------


@pytest.mark.parametrize("alg", ASYMMETRIC)
def test_keys_generate_writes_private_public_and_jwks(tmp_path: Path, alg: str) -> None:
    """An asymmetric key gives private.pem (0600), public.pem and a JWKS keyed by its RFC 7638
    thumbprint."""
    out = _generate(alg, tmp_path / "keys")
    assert sorted(path.name for path in out.iterdir()) == ["jwks.json", "private.pem", "public.pem"]
    assert (out / "private.pem").stat().st_mode & 0o777 == 0o600
    assert b"PRIVATE KEY" in (out / "private.pem").read_bytes()
    public_jwk = _jwk_of_pem(alg, out / "public.pem")
    (jwk,) = json.loads((out / "jwks.json").read_text())["keys"]
    assert "d" not in jwk
    assert {name: jwk[name] for name in THUMBPRINT_MEMBERS[jwk["kty"]]} == {
        name: public_jwk[name] for name in THUMBPRINT_MEMBERS[public_jwk["kty"]]
    }
    assert jwk["kid"] == _thumbprint(public_jwk)


def test_keys_generate_hs256_writes_a_private_secret(tmp_path: Path) -> None:
    """HS256 writes only hmac.secret, readable by the owner only, long enough for HS256."""
    out = _generate("HS256", tmp_path / "keys")
    assert [path.name for path in out.iterdir()] == ["hmac.secret"]
    assert (out / "hmac.secret").stat().st_mode & 0o777 == 0o600
    assert len((out / "hmac.secret").read_text().strip()) >= 32


@pytest.mark.slow
@pytest.mark.parametrize("alg", ["RS256", "HS256"])
def test_keys_generate_refuses_to_overwrite(tmp_path: Path, alg: str) -> None:
    """Generating into a directory that already has the key exits 1 with one line and keeps the
    old files."""
    out = _generate(alg, tmp_path / "keys")
    before = {path.name: path.read_bytes() for path in out.iterdir()}
    result = _run_cli("keys", "generate", "--alg", alg, "--out", str(out), cwd=tmp_path)
    assert result.returncode == 1
    assert len(_lines(result.stderr)) == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert {path.name: path.read_bytes() for path in out.iterdir()} == before


@pytest.mark.slow
def test_keys_generate_refuses_before_writing_anything(tmp_path: Path) -> None:
    """When any target file exists, nothing is written: no new private key beside an old JWKS."""
    out = tmp_path / "keys"
    out.mkdir()
    (out / "jwks.json").write_text('{"keys": []}\n')
    result = _run_cli("keys", "generate", "--alg", "RS256", "--out", str(out), cwd=tmp_path)
    assert result.returncode == 1
    assert len(_lines(result.stderr)) == 1, result.stderr
    assert sorted(path.name for path in out.iterdir()) == ["jwks.json"]


# --- token -------------------------------------------------------------------------------------


@pytest.mark.parametrize("alg", ASYMMETRIC)
def test_token_verifies_with_the_generated_public_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], alg: str
) -> None:
    """A token signed with a generated private key verifies with its public.pem and JWKS, lasts
    the --ttl and carries the JWKS kid."""
    out = _generate(alg, tmp_path / "keys")
    capsys.readouterr()
    token = _mint(
        capsys, "--key", str(out / "private.pem"), "--iss", "I", "--aud", "A",
        "--sub", "S", "--scope", "a b", "--ttl", "15m",
    )  # fmt: skip
    claims = jwt.decode(
        token, _public_key(out / "public.pem"), algorithms=[alg], audience="A", issuer="I"
    )
    assert claims["sub"] == "S"
    assert claims["scope"] == "a b"
    assert claims["exp"] - claims["iat"] == 900
    (jwk,) = jwt.PyJWKSet.from_dict(json.loads((out / "jwks.json").read_text())).keys
    header = jwt.get_unverified_header(token)
    assert header["alg"] == alg
    assert header["kid"] == jwk.key_id
    jwt.decode(token, jwk, algorithms=[alg], audience="A", issuer="I")


def test_token_with_secret_text_is_hs256(capsys: pytest.CaptureFixture[str]) -> None:
    """`--key <secret text>` signs HS256 with that secret."""
    secret = "an-hmac-secret-that-is-long-enough-0123456789"
    token = _mint(capsys, "--key", secret, "--iss", "dev", "--sub", "S", "--scope", "a b")
    assert jwt.get_unverified_header(token)["alg"] == "HS256"
    claims = jwt.decode(token, secret.encode(), algorithms=["HS256"], issuer="dev")
    assert claims["sub"] == "S"
    assert claims["scope"] == "a b"


def test_token_with_generated_hmac_secret_file_is_hs256(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`--key hmac.secret` (from keys generate) signs HS256 with the secret in the file."""
    out = _generate("HS256", tmp_path / "keys")
    capsys.readouterr()
    token = _mint(capsys, "--key", str(out / "hmac.secret"), "--iss", "dev", "--sub", "S")
    secret = (out / "hmac.secret").read_text().strip().encode()
    assert jwt.decode(token, secret, algorithms=["HS256"], issuer="dev")["sub"] == "S"


@pytest.mark.slow
@pytest.mark.parametrize(
    ("case", "extra"),
    [
        ("bad ttl", ["--key", "keys/private.pem", "--ttl", "5x"]),
        ("public pem as key", ["--key", "keys/public.pem"]),
        ("jwks as key", ["--key", "keys/jwks.json"]),
        ("missing key file", ["--key", "keys/missing.pem"]),
        ("short hmac secret", ["--key", "too-short"]),
    ],
)
def test_token_errors_are_one_line(tmp_path: Path, case: str, extra: list[str]) -> None:
    """A bad --ttl, public key material, a missing key file or a too-short HMAC secret as --key
    exits 1 with one stderr line, no token and no traceback."""
    _generate("RS256", tmp_path / "keys")
    result = _run_cli("token", "--iss", "I", "--aud", "A", "--sub", "S", *extra, cwd=tmp_path)
    assert result.returncode == 1, (case, result.stdout)
    assert result.stdout == "", case
    assert len(_lines(result.stderr)) == 1, (case, result.stderr)
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("alg", ASYMMETRIC)
async def test_generated_key_and_token_pass_the_gateway(
    alg: str,
    tmp_path: Path,
    keys: TestKeys,
    aiohttp_server: AiohttpServer,
    aiohttp_client: AiohttpClient,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A gateway configured with the generated public key accepts a `gateway token` made with
    its private key, and refuses one made with another generated key."""
    recorder = RecordingUpstream()
    upstream = await aiohttp_server(recorder.app())
    out = _generate(alg, tmp_path / "generated")
    other = _generate(alg, tmp_path / "other")
    capsys.readouterr()
    config_dir = tmp_path / "config"
    config_dir.mkdir()
    path = write_config(config_dir, keys, upstream=str(upstream.make_url("")).rstrip("/"))
    # RS256 through the PEM file (no kid), the others added to the JWKS (kid lookup).
    if alg == "RS256":
        (config_dir / "keys" / "public.pem").write_bytes((out / "public.pem").read_bytes())
    else:
        jwks_path = config_dir / "keys" / "jwks.json"
        jwks = json.loads(jwks_path.read_text())
        jwks["keys"] += json.loads((out / "jwks.json").read_text())["keys"]
        jwks_path.write_text(json.dumps(jwks))
    client = cast(
        "Client", await aiohttp_client(GatewayTestServer(create_app(load(path, ENVIRON))))
    )

    def token(key_dir: Path) -> str:
        return _mint(
            capsys, "--key", str(key_dir / "private.pem"), "--iss", ISSUER, "--aud", AUDIENCE,
            "--sub", "S", "--scope", "orders:read", "--ttl", "15m",
        )  # fmt: skip

    good = await client.get("/orders/7", headers={"Authorization": f"Bearer {token(out)}"})
    assert good.status == 200
    assert recorder.last.headers["X-Auth-Subject"] == "S"
    bad = await client.get("/orders/7", headers={"Authorization": f"Bearer {token(other)}"})
    assert bad.status == 401
    assert len(recorder.requests) == 1


# --- help and demo -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "command",
    [
        [],
        ["run"],
        ["check"],
        ["routes"],
        ["routes", "explain"],
        ["keys"],
        ["keys", "generate"],
        ["token"],
        ["demo"],
    ],
)
def test_help_works_for_every_subcommand(
    command: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    """`--help` prints usage and exits 0 for the program and every subcommand."""
    with pytest.raises(SystemExit) as exited:
        main([*command, "--help"])
    assert exited.value.code == 0
    assert "usage: gateway" in capsys.readouterr().out


def _plain_python_copy(directory: Path) -> Path:
    """The package's sources without the compiled modules beside them: what an install without
    a C compiler runs (setup.py)."""
    shutil.copytree(
        Path(gateway.__file__).parent,
        directory / "gateway",
        ignore=shutil.ignore_patterns("*.so", "__pycache__"),
    )
    compiled = subprocess.run(
        [sys.executable, "-c", "import gateway.compiled as c; print(c.request_path_compiled())"],
        cwd=directory, capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    assert compiled.stdout.strip() == "False"
    return directory


@pytest.mark.slow
@pytest.mark.parametrize("build", ["installed", "plain-python"])
def test_demo_once_shows_three_results_and_logs_json(tmp_path: Path, build: str) -> None:
    """`gateway demo --once` exits 0, shows 200/401/403 as expected with curl lines, and prints
    only JSON on stdout: as installed (compiled, where the install could compile), and from the
    plain-Python sources alone."""
    where = tmp_path if build == "installed" else _plain_python_copy(tmp_path)
    result = _run_cli("demo", "--once", cwd=where)
    assert result.returncode == 0, result.stderr
    for status in (200, 401, 403):
        assert re.search(rf"\b{status} ok\b", result.stderr), result.stderr
    assert "UNEXPECTED" not in result.stderr
    assert len([line for line in result.stderr.splitlines() if line.startswith("curl ")]) >= 3
    assert "Traceback" not in result.stderr
    stdout = _lines(result.stdout)
    assert stdout
    for line in stdout:
        assert isinstance(json.loads(line), dict), line


# --- run ---------------------------------------------------------------------------------------

SLOW_SECONDS = 1.5
RUN_ROUTES = DEFAULT_ROUTES.replace("timeout: 2s", "timeout: 10s")


class SlowUpstream:
    """An upstream that records what it receives and answers /orders/slow after a pause."""

    def __init__(self) -> None:
        self.paths: list[str] = []
        self.subjects: list[str | None] = []
        self.slow_started = asyncio.Event()

    def app(self) -> web.Application:
        """The aiohttp application to serve."""
        app = web.Application()
        app.router.add_get("/orders/slow", self._slow)
        app.router.add_route("*", "/{tail:.*}", self._record)
        return app

    async def _record(self, request: web.Request) -> web.Response:
        await request.read()
        self.paths.append(request.raw_path)
        self.subjects.append(request.headers.get("X-Auth-Subject"))
        return web.json_response({"path": request.raw_path}, headers={"X-Upstream": "test"})

    async def _slow(self, request: web.Request) -> web.Response:
        self.paths.append(request.raw_path)
        self.slow_started.set()
        await asyncio.sleep(SLOW_SECONDS)
        return web.json_response({"slow": True})


@pytest.fixture
async def slow_upstream(aiohttp_server: AiohttpServer) -> tuple[SlowUpstream, TestServer]:
    """A slow-capable recording upstream on 127.0.0.1."""
    upstream = SlowUpstream()
    return upstream, await aiohttp_server(upstream.app())


@pytest.mark.slow
async def test_run_serves_and_answers_health_checks(
    tmp_path: Path,
    keys: TestKeys,
    tokens: TokenFactory,
    slow_upstream: tuple[SlowUpstream, TestServer],
) -> None:
    """`gateway run` forwards an authorised request and answers /healthz and /readyz on the admin
    port only."""
    upstream, server = slow_upstream
    base = str(server.make_url("")).rstrip("/")
    async with (
        running_gateway(tmp_path, keys, upstream=base, routes=RUN_ROUTES) as gateway,
        aiohttp.ClientSession() as session,
    ):
        headers = {"Authorization": f"Bearer {tokens.good()}"}
        async with session.get(gateway.url("/orders/7"), headers=headers) as response:
            assert response.status == 200
            assert response.headers["X-Upstream"] == "test"
        assert upstream.paths == ["/orders/7"]
        assert upstream.subjects == ["alice"]
        for path in ("/healthz", "/readyz"):
            async with session.get(gateway.admin_url(path)) as response:
                assert response.status == 200, path
        async with session.get(gateway.url("/readyz")) as response:
            assert response.status == 404
        assert upstream.paths == ["/orders/7"]


@pytest.mark.slow
async def test_run_drains_in_flight_requests_on_sigterm(
    tmp_path: Path,
    keys: TestKeys,
    tokens: TokenFactory,
    slow_upstream: tuple[SlowUpstream, TestServer],
) -> None:
    """On SIGTERM /readyz turns 503, the in-flight request still completes with 200, the process
    exits 0, and every stdout line is a JSON event (startup, access, shutdown)."""
    upstream, server = slow_upstream
    base = str(server.make_url("")).rstrip("/")
    async with (
        running_gateway(tmp_path, keys, upstream=base, routes=RUN_ROUTES) as gateway,
        aiohttp.ClientSession() as session,
    ):
        headers = {"Authorization": f"Bearer {tokens.good()}"}

        async def slow_request() -> tuple[int, bytes]:
            async with session.get(gateway.url("/orders/slow"), headers=headers) as response:
                return response.status, await response.read()

        in_flight = asyncio.create_task(slow_request())
        await asyncio.wait_for(upstream.slow_started.wait(), 10)
        gateway.process.send_signal(signal.SIGTERM)
        await wait_for_status(gateway.admin_url("/readyz"), 503, within=SLOW_SECONDS * 0.8)
        status, body = await asyncio.wait_for(in_flight, 15)
        assert status == 200
        assert json.loads(body) == {"slow": True}
        assert await gateway.wait() == 0
    lines = gateway.json_lines()
    actions = [line.get("event.action") for line in lines]
    assert "startup" in actions
    assert "shutdown" in actions
    (access,) = [line for line in lines if line.get("event.action") == "access"]
    assert access["url.path"] == "/orders/slow"
    assert access["http.response.status_code"] == 200
    assert actions.index("startup") < actions.index("access")
    assert "Traceback" not in gateway.stderr_text()


@pytest.mark.slow
async def test_the_event_loop_line_says_whether_the_request_path_runs_compiled(
    tmp_path: Path, keys: TestKeys, slow_upstream: tuple[SlowUpstream, TestServer]
) -> None:
    """`event_loop` carries `gateway.compiled`, true when the install compiled the request path.
    CI builds it compiled (GATEWAY_BUILD=compiled in scripts/test.sh), so there it must be."""
    _, server = slow_upstream
    base = str(server.make_url("")).rstrip("/")
    async with running_gateway(tmp_path, keys, upstream=base, routes=RUN_ROUTES) as gateway:
        gateway.process.send_signal(signal.SIGTERM)
        assert await gateway.wait() == 0
    (started,) = [line for line in gateway.json_lines() if line["event.action"] == "event_loop"]
    assert started["gateway.compiled"] is request_path_compiled()
    if os.environ.get("CI"):
        assert started["gateway.compiled"] is True


# The tools of the other commands, which `gateway run` never uses.
COMMAND_TOOLS = frozenset({
    "gateway.tools.explain", "gateway.tools.lint", "gateway.tools.log_report",
    "gateway.tools.offline", "gateway.tools.policy_cases", "gateway.tools.policy_test",
    "gateway.tools.routes_diff",
})  # fmt: skip


@pytest.mark.slow
async def test_a_serving_gateway_imports_no_console_and_no_other_commands_tools(
    tmp_path: Path,
    keys: TestKeys,
    tokens: TokenFactory,
    slow_upstream: tuple[SlowUpstream, TestServer],
) -> None:
    """`gateway run`, through a forwarded request and its log line, imports neither rich nor
    pygments (structlog's development console; the gateway writes JSON) nor the tools of the
    other commands: resident memory every serving process would hold for nothing."""
    upstream, server = slow_upstream
    base = str(server.make_url("")).rstrip("/")
    environ = {"PYTHONPROFILEIMPORTTIME": "1"}
    async with (
        running_gateway(tmp_path, keys, upstream=base, routes=RUN_ROUTES, environ=environ) as gw,
        aiohttp.ClientSession() as session,
    ):
        headers = {"Authorization": f"Bearer {tokens.good()}"}
        async with session.get(gw.url("/orders/7"), headers=headers) as response:
            assert response.status == 200
        assert upstream.paths == ["/orders/7"]
        imported = {
            line.split("|")[2].strip()
            for line in gw.stderr_text().splitlines()
            if line.startswith("import time:") and line.count("|") == 2
        }
    # The listing is the real one: what the server does use is in it. (Not the compiled modules:
    # mypyc's build imports those of its own group without the import system.)
    assert {"structlog", "orjson", "httptools", "gateway.server.app"} <= imported
    # Import time also lists an import that failed, as structlog's `import rich` does on
    # purpose; what rich and pygments load when imported (rich.console, pygments.lexer) is not.
    assert sorted(name for name in imported if name.startswith(("rich.", "pygments"))) == []
    assert sorted(imported & COMMAND_TOOLS) == []
