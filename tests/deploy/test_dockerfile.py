"""The container image: Dockerfile and .dockerignore, checked as text (no Docker engine here)."""

from __future__ import annotations

import fnmatch
import json
import os
import re
import subprocess
import sys
import threading
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from packaging.requirements import Requirement

from gateway.config import Config, load

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = ROOT / "pyproject.toml"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
CONFIG_DIR = "/etc/gateway"
ENVIRON = {"ACCESS_TOKEN_SECRET": "s" * 40}


@dataclass(frozen=True, slots=True)
class Instruction:
    """One Dockerfile instruction: keyword, the rest of its logical line, and its stage."""

    keyword: str
    arguments: str
    stage: int


def parse_dockerfile(text: str) -> list[Instruction]:
    """Split a Dockerfile into instructions, dropping comments and joining continuations."""
    instructions: list[Instruction] = []
    stage = -1
    logical = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            logical += line[:-1] + " "
            continue
        keyword, _, arguments = (logical + line).partition(" ")
        logical = ""
        keyword = keyword.upper()
        if keyword == "FROM":
            stage += 1
        instructions.append(Instruction(keyword, arguments.strip(), stage))
    assert not logical, "the Dockerfile ends inside a continuation line"
    return instructions


def instructions() -> list[Instruction]:
    """The repository's Dockerfile, parsed."""
    return parse_dockerfile(DOCKERFILE.read_text())


def final_stage() -> list[Instruction]:
    """The instructions of the last stage: what the shipped image is made of."""
    parsed = instructions()
    last = max(item.stage for item in parsed)
    return [item for item in parsed if item.stage == last]


def last(keyword: str) -> Instruction:
    """The final stage's last instruction with this keyword (the one that takes effect)."""
    found = [item for item in final_stage() if item.keyword == keyword]
    assert found, f"the final stage has no {keyword}"
    return found[-1]


def exec_form(arguments: str) -> list[str]:
    """The JSON array of an exec-form instruction; fails for shell form."""
    try:
        value = json.loads(arguments)
    except ValueError:
        pytest.fail(f"not exec form (a JSON array): {arguments}")
    assert isinstance(value, list), arguments
    assert value, arguments
    assert all(isinstance(part, str) for part in value), arguments
    return [str(part) for part in value]


def healthcheck_command() -> list[str]:
    """The HEALTHCHECK's exec-form command, without its --options."""
    match = re.fullmatch(r"(?:--\S+\s+)*CMD\s+(\[.*\])", last("HEALTHCHECK").arguments)
    assert match, "HEALTHCHECK must be `[--options] CMD [...]` in exec form"
    return exec_form(match.group(1))


def healthcheck_url() -> str:
    """The URL the HEALTHCHECK command requests."""
    urls = re.findall(r"https?://[^'\" ]+", " ".join(healthcheck_command()))
    assert len(urls) == 1, urls
    return str(urls[0])


def runtime_user() -> tuple[int, int]:
    """The final USER as numeric (uid, gid)."""
    match = re.fullmatch(r"(\d+):(\d+)", last("USER").arguments)
    assert match, f"USER must be numeric uid:gid, got {last('USER').arguments!r}"
    return int(match.group(1)), int(match.group(2))


def final_base_image() -> str:
    """The image the final stage starts FROM."""
    return last("FROM").arguments.split()[0]


def ignore_patterns() -> list[str]:
    """The .dockerignore patterns, normalised (no leading or trailing slash)."""
    lines = (line.strip() for line in DOCKERIGNORE.read_text().splitlines())
    return [line.strip("/") for line in lines if line and not line.startswith("#")]


def baked_config() -> Config:
    """The default configuration the image copies to /etc/gateway (config/), loaded."""
    return load(ROOT / "config" / "gateway.yaml", ENVIRON)


def test_image_is_multi_stage_and_final_stage_copies_from_build() -> None:
    """The image has a build stage and a runtime stage that only copies the build's output."""
    parsed = instructions()
    froms = [item for item in parsed if item.keyword == "FROM"]
    assert len(froms) >= 2
    names = {
        match.group(1)
        for item in froms
        if (match := re.search(r"\sAS\s+(\S+)", item.arguments, re.I))
    }
    copies = [item.arguments for item in final_stage() if item.keyword == "COPY"]
    sources = {m.group(1) for args in copies if (m := re.match(r"--from=(\S+)", args))}
    assert sources, "the final stage copies nothing from an earlier stage"
    assert sources <= names


def test_runtime_stage_installs_nothing() -> None:
    """The final stage runs no package manager: its only dependencies are the copied venv."""
    for item in final_stage():
        if item.keyword == "RUN":
            assert not re.search(
                r"pip\S* install|apt-get install|apt install|apk add", item.arguments
            )


def test_the_build_stage_compiles_the_request_path_or_fails() -> None:
    """The build stage has what setup.py compiles with (setup.py itself and a C compiler) and
    asks for the compiled build, so an image never ships plain Python by accident; the compiler
    stays out of the runtime stage."""
    parsed = instructions()
    build = [item for item in parsed if item.stage < max(item.stage for item in parsed)]
    assert any(item.keyword == "COPY" and "setup.py" in item.arguments.split() for item in build)
    assert any(item.keyword == "RUN" and re.search(r"install\b.*\bgcc\b", item.arguments)
               for item in build)  # fmt: skip
    assert any(
        item.keyword == "ENV" and "GATEWAY_BUILD=compiled" in item.arguments.split()
        for item in build
    )
    assert not any("gcc" in item.arguments for item in final_stage())


def test_the_image_installs_the_faster_event_loop() -> None:
    """The build stage installs the gateway with its dependencies, and uvloop is one of them on
    the image's platform (Linux, CPython): `gateway run --loop auto`, the image's default, then
    uses it."""
    parsed = instructions()
    build = [item for item in parsed if item.stage < max(item.stage for item in parsed)]
    installs = [
        item.arguments for item in build if item.keyword == "RUN" and "pip" in item.arguments
    ]
    assert any(
        re.search(r"pip install '?\.(\[[a-z,]*\])?'?( |$)", arguments) for arguments in installs
    )
    linux = {"sys_platform": "linux", "platform_python_implementation": "CPython"}
    windows = {**linux, "sys_platform": "win32"}
    uvloop = [
        requirement
        for requirement in map(
            Requirement, tomllib.loads(PYPROJECT.read_text())["project"]["dependencies"]
        )
        if requirement.name == "uvloop"
    ]
    assert [req.marker is None or req.marker.evaluate(linux) for req in uvloop] == [True]
    assert [req.marker is not None and req.marker.evaluate(windows) for req in uvloop] == [False]


def test_final_user_is_numeric_and_not_root() -> None:
    """The image runs as a numeric uid:gid, neither of them 0, so runAsNonRoot can verify it."""
    uid, gid = runtime_user()
    assert uid != 0
    assert gid != 0


def test_entrypoint_and_cmd_are_exec_form_and_use_the_config_path() -> None:
    """ENTRYPOINT and CMD are JSON arrays that run the gateway on /etc/gateway/gateway.yaml."""
    command = exec_form(last("ENTRYPOINT").arguments) + exec_form(last("CMD").arguments)
    assert command[:2] == ["gateway", "run"]
    config = command[command.index("-c") + 1]
    assert Path(config).parent == Path(CONFIG_DIR)
    copies = [item.arguments.split() for item in final_stage() if item.keyword == "COPY"]
    assert ["config", CONFIG_DIR] in copies


def test_healthcheck_is_exec_form_against_admin_healthz() -> None:
    """HEALTHCHECK runs the image's Python (no curl) against /healthz on the admin port."""
    command = healthcheck_command()
    assert command[0] == "python"
    url = healthcheck_url()
    assert url.endswith("/healthz")
    admin = baked_config().admin
    assert admin.host in {"0.0.0.0", "127.0.0.1"}
    assert url == f"http://127.0.0.1:{admin.port}/healthz"


@contextmanager
def _health_server(status: int) -> Iterator[int]:
    """Serve /healthz on 127.0.0.1 with this status; yields the port."""

    class Health(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(status if self.path == "/healthz" else 404)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            """Keep the test output quiet."""

    server = ThreadingHTTPServer(("127.0.0.1", 0), Health)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        thread.join()
        server.server_close()


def _run_healthcheck(port: int) -> int:
    """Run the image's HEALTHCHECK command here, pointed at 127.0.0.1:port; its exit status."""
    command = healthcheck_command()
    url = healthcheck_url()
    local = urlsplit(url)._replace(netloc=f"127.0.0.1:{port}").geturl()
    argv = [sys.executable, *(part.replace(url, local) for part in command[1:])]
    assert any(local in part for part in argv)
    # A dead proxy in the environment: the check must reach 127.0.0.1 directly anyway.
    env = {**os.environ, "http_proxy": "http://127.0.0.1:9", "HTTP_PROXY": "http://127.0.0.1:9"}
    env.pop("no_proxy", None)
    env.pop("NO_PROXY", None)
    return subprocess.run(argv, env=env, capture_output=True, timeout=15, check=False).returncode


@pytest.mark.parametrize(("status", "healthy"), [(200, True), (503, False), (404, False)])
def test_healthcheck_command_exit_status_follows_healthz(status: int, healthy: bool) -> None:
    """The HEALTHCHECK command exits 0 on a 200 from /healthz and non-zero otherwise."""
    with _health_server(status) as port:
        assert (_run_healthcheck(port) == 0) is healthy


def test_healthcheck_command_fails_when_nothing_listens() -> None:
    """The HEALTHCHECK command fails when the admin port is closed."""
    with _health_server(200) as port:
        pass
    assert _run_healthcheck(port) != 0


def test_no_remote_add() -> None:
    """Nothing is fetched from the network with ADD (unpinned, unverified content)."""
    for item in instructions():
        if item.keyword == "ADD":
            assert not re.search(r"\b(https?|git|ssh)://|git@", item.arguments)


@pytest.mark.parametrize("pattern", [".git", ".venv", "tests", "**/private.pem", "**/*.so"])
def test_dockerignore_excludes(pattern: str) -> None:
    """The build context leaves out VCS data, the venv, tests, private keys and the compiled
    modules of a local install (the image compiles its own)."""
    assert pattern in ignore_patterns()


def test_copied_sources_are_in_the_build_context() -> None:
    """Every file the Dockerfile copies from the context exists and is not .dockerignored."""
    patterns = [p for p in ignore_patterns() if not p.startswith("!")]
    for item in instructions():
        if item.keyword != "COPY" or item.arguments.startswith("--from"):
            continue
        *sources, _destination = item.arguments.split()
        for source in sources:
            assert (ROOT / source).exists(), source
            assert not any(fnmatch.fnmatch(source, pattern) for pattern in patterns), source
