"""deploy/logging/: a real `gateway run` writes its lines, syslog-ng ships them with the shipped
config, and the JSON file it writes holds the gateway's documents exactly; the configs for the
shippers that cannot run here (Fluent Bit, Vector) are checked as text for what went wrong."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from aiohttp.test_utils import TestServer

from tests.functional.gateway_process import running_gateway
from tests.support import TestKeys, TokenFactory

LOGGING = Path(__file__).resolve().parents[2] / "deploy" / "logging"
SHIP_TIMEOUT = 20.0


@pytest.fixture(scope="module")
def syslog_ng() -> str:
    """The syslog-ng binary (Debian package `syslog-ng-core`); CI must have it."""
    found = shutil.which("syslog-ng") or next(
        (p for p in ("/usr/sbin/syslog-ng",) if os.access(p, os.X_OK)), None
    )
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("syslog-ng is required in CI (scripts/test.sh installs syslog-ng-core)")
        pytest.skip("syslog-ng missing (apt-get install syslog-ng-core)")
    return found


@contextlib.asynccontextmanager
async def _shipping(binary: str, source: Path, output: Path) -> AsyncIterator[Path]:
    """Run syslog-ng in the foreground on deploy/logging/syslog-ng.conf, following ``source``
    and writing ``output``; yields its stderr file and always stops it."""
    work = output.parent
    stderr_path = work / "syslog-ng.stderr"
    environ = {**os.environ, "GATEWAY_LOG": str(source), "GATEWAY_JSON_OUT": str(output)}
    with stderr_path.open("wb") as stderr:
        process = await asyncio.create_subprocess_exec(
            binary, "-F", "--no-caps", "-f", str(LOGGING / "syslog-ng.conf"),
            "-R", str(work / "syslog-ng.persist"), "-c", str(work / "syslog-ng.ctl"),
            "-p", str(work / "syslog-ng.pid"),
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL, stderr=stderr,
            env=environ,
        )  # fmt: skip
    try:
        yield stderr_path
        assert process.returncode is None, stderr_path.read_text()
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), 10)
            except TimeoutError:
                process.kill()
                await process.wait()


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [key for key, _ in pairs]
    assert len(keys) == len(set(keys)), f"duplicate keys: {keys}"
    return dict(pairs)


def _documents(path: Path) -> list[dict[str, Any]]:
    text = path.read_text() if path.exists() else ""
    return [json.loads(line, object_pairs_hook=_no_duplicate_keys) for line in text.splitlines()]


def _shipped_so_far(path: Path, count: int, stderr: Path) -> str | None:
    """None once ``path`` has ``count`` lines, else what to say if the wait times out."""
    shipped = len(path.read_text().splitlines()) if path.exists() else 0
    if shipped >= count:
        return None
    return f"syslog-ng shipped {shipped} of {count} lines:\n{stderr.read_text()}"


async def _wait_for_lines(path: Path, count: int, stderr: Path) -> None:
    deadline = time.monotonic() + SHIP_TIMEOUT
    while (missing := _shipped_so_far(path, count, stderr)) is not None:
        assert time.monotonic() < deadline, missing
        await asyncio.sleep(0.1)


@pytest.mark.slow
async def test_syslog_ng_ships_the_gateway_lines_unchanged(
    syslog_ng: str,
    tmp_path: Path,
    keys: TestKeys,
    tokens: TokenFactory,
    upstream_server: TestServer,
) -> None:
    """Every line a running gateway writes (startup, access lines for allowed, refused and forged
    requests, shutdown) lands in syslog-ng's JSON file once, equal to the line as a dict."""
    upstream = str(upstream_server.make_url("")).rstrip("/")
    shipped = tmp_path / "shipped" / "gateway.json"
    shipped.parent.mkdir()
    forged = tokens.sign(tokens.claims(), key=keys.attacker, headers={"kid": "k1"})
    requests = [
        ("/orders/1", {"Authorization": f"Bearer {tokens.good()}"}, 200),
        ("/orders/1", {}, 401),
        ("/orders/1", {"Authorization": f"Bearer {forged}"}, 401),
        ("/orders/1", {"Authorization": f"Bearer {tokens.good(scope='other')}"}, 403),
        ("/nowhere", {"User-Agent": 'quote " and \u2028 separator'}, 404),
    ]
    gateway_dir = tmp_path / "gateway"
    gateway_dir.mkdir()
    async with (
        running_gateway(gateway_dir, keys, upstream=upstream) as gateway,
        _shipping(syslog_ng, gateway.stdout_path, shipped) as stderr,
    ):
        async with aiohttp.ClientSession() as session:
            for path, headers, status in requests:
                async with session.get(gateway.url(path), headers=headers) as response:
                    assert response.status == status
        gateway.process.send_signal(signal.SIGTERM)
        assert await gateway.wait() == 0
        written = gateway.json_lines()
        await _wait_for_lines(shipped, len(written), stderr)
        await asyncio.sleep(0.3)  # nothing more than once: a duplicate would arrive now
        documents = _documents(shipped)
    assert documents == written
    access = [line for line in documents if line["event.action"] == "access"]
    assert [line["http.response.status_code"] for line in access] == [200, 401, 401, 403, 404]
    assert access[2]["gateway.auth.reason"] == "bad_signature"
    assert {"startup", "stopped"} <= {line["event.action"] for line in documents}
    assert {line["ecs.version"] for line in documents} == {"8.11.0"}


@pytest.mark.slow
async def test_syslog_ng_wraps_a_line_that_is_not_json(syslog_ng: str, tmp_path: Path) -> None:
    """A line that is not JSON is kept, wrapped as an `unparsed_line` document, between the
    JSON documents around it."""
    source = tmp_path / "gateway.log"
    good = {"@timestamp": "2026-01-01T00:00:00.000Z", "event.action": "startup", "n": 1}
    source.write_text(f"{json.dumps(good)}\nTraceback (most recent call last):\n")
    shipped = tmp_path / "shipped.json"
    async with _shipping(syslog_ng, source, shipped) as stderr:
        await _wait_for_lines(shipped, 2, stderr)
    first, second = _documents(shipped)
    assert first == good
    assert second["event.action"] == "unparsed_line"
    assert second["message"] == "Traceback (most recent call last):"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00", second["@timestamp"])


# --- shippers that do not run here: the mistakes that were made, checked as text -------------


def _ini_sections(path: Path) -> list[tuple[str, dict[str, str]]]:
    """Fluent Bit's classic format: [SECTION] headers, then `Key  Value` lines."""
    sections: list[tuple[str, dict[str, str]]] = []
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            sections.append((line.strip("[]").upper(), {}))
        else:
            key, _, value = line.partition(" ")
            sections[-1][1][key.lower()] = value.strip()
    return sections


def test_fluent_bit_writes_one_timestamp() -> None:
    """The parser takes the gateway's @timestamp out of the record (Time_Keep Off), so the es
    output's Time_Key is the only @timestamp; retries do not index a document twice."""
    (_, parser), *_ = [s for s in _ini_sections(LOGGING / "parsers.conf") if s[0] == "PARSER"]
    outputs = [s for name, s in _ini_sections(LOGGING / "fluent-bit.conf") if name == "OUTPUT"]
    assert parser["time_key"] == "@timestamp"
    assert parser["time_keep"].lower() == "off"
    assert parser["time_format"] == "%Y-%m-%dT%H:%M:%S.%LZ"
    for output in outputs:
        assert output.get("time_key", "@timestamp") == "@timestamp"
        assert output["generate_id"].lower() == "on"


def test_vector_names_flat_dotted_keys_quoted() -> None:
    """Every VRL path in vector.yaml that names a gateway field with a dot quotes it
    (."event.action"): the gateway's keys are flat, and .event.action is a nested path."""
    text = (LOGGING / "vector.yaml").read_text()
    gateway_fields = {
        "event.action",
        "log.level",
        "gateway.route",
        "gateway.auth.reason",
        "client.ip",
    }
    for field in gateway_fields:
        assert not re.search(rf"(?<![\w\"])\.{re.escape(field)}\b", text), field
    config = yaml.safe_load(text)
    source = config["transforms"]["gateway_json"]["source"]
    assert 'del(."@timestamp")' in source
    assert '{{ ."event.action" }}' in text


def test_vector_indexes_a_retried_line_once() -> None:
    """The Elasticsearch sink's document id is a hash of the gateway's line (a retried bulk
    request is refused as duplicates), and the id is not written into the document."""
    config = yaml.safe_load((LOGGING / "vector.yaml").read_text())
    source = config["transforms"]["gateway_json"]["source"]
    assert ".doc_id = sha2(encode_json(parsed)" in source
    sink = config["sinks"]["elasticsearch"]
    assert sink["id_key"] == "doc_id"
    assert sink["encoding"]["except_fields"] == ["doc_id"]
