"""CORS in a real browser: headless Chromium loads a page from one origin that calls the gateway
on another.

The page (http://127.0.0.1:A) and a frame inside it from a second origin (http://localhost:A,
the same server under another name, so another origin) each run the same fetch() calls against
the gateway (http://127.0.0.1:B) and POST what they saw back to their own server. Only the
first origin is allowed by the route's policy. From it, the preflighted GET with a bearer token
(and credentials mode ``include``) succeeds and a GET without a token gives the page a readable
401 JSON body and challenge; from the second, both are blocked by the browser itself, and the
upstream never sees either.

Chromium is Debian's ``chromium`` package, driven from the command line (no driver library): a
page that reports by HTTP needs none. Without it the test is skipped with the reason, except
under ``CI=true``, where it fails: scripts/test.sh installs it when CI runs as root.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from pytest_aiohttp import AiohttpClient, AiohttpServer

from gateway.config import Config
from gateway.server.app import create_app
from tests.conftest import GatewayTestServer, LogCapture
from tests.support import RecordingUpstream, TokenFactory

pytestmark = pytest.mark.slow  # a browser start-up takes seconds on a shared machine

RESULTS_TIMEOUT = 60.0
ROUTES = """\
upstreams:
  orders: {{url: "{upstream}", timeout: 2s}}
routes:
  - path: /orders
    upstream: orders
    methods: [GET]
    scopes: [orders:read]
    cors:
      origins: [http://127.0.0.1:PAGE_PORT]
      credentials: true
"""

PAGE = """\
<!doctype html>
<html><body>
<p id="state">running</p>
FRAME
<script>
const gateway = GATEWAY;
const token = TOKEN;
async function attempt(name, init) {
  try {
    const response = await fetch(gateway + "/orders/7", init);
    const text = await response.text();
    return {name, status: response.status, body: text,
            challenge: response.headers.get("WWW-Authenticate")};
  } catch (error) {
    return {name, blocked: String(error)};
  }
}
(async () => {
  const results = [
    await attempt("with_token",
                  {headers: {Authorization: "Bearer " + token}, credentials: "include"}),
    await attempt("without_token", {}),
  ];
  await fetch("/results", {method: "POST",
                           body: JSON.stringify({origin: location.origin, results})});
  document.getElementById("state").textContent = "done";
})();
</script>
</body></html>
"""


def chromium_binary() -> str:
    """The chromium executable: skips the test when missing, fails it under CI=true."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        message = "chromium is not installed (apt-get install --no-install-recommends chromium)"
        if os.environ.get("CI") == "true":
            pytest.fail(message + "; CI must have it (scripts/test.sh installs it)")
        pytest.skip(message)
    return found


class PageServer:
    """Serves the page (and its frame) and collects what each origin's page reports."""

    def __init__(self) -> None:
        self.gateway = ""
        self.token = ""
        self.port = 0
        self.reports: dict[str, list[dict[str, Any]]] = {}
        self.done = asyncio.Event()

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/index.html", self._index)
        app.router.add_get("/frame.html", self._frame)
        app.router.add_post("/results", self._results)
        return app

    def _page(self, frame: str) -> web.Response:
        text = (
            PAGE.replace("GATEWAY", json.dumps(self.gateway))
            .replace("TOKEN", json.dumps(self.token))
            .replace("FRAME", frame)
        )
        return web.Response(text=text, content_type="text/html")

    async def _index(self, request: web.Request) -> web.Response:
        # The same server under another host name is another origin.
        return self._page(f'<iframe src="http://localhost:{self.port}/frame.html"></iframe>')

    async def _frame(self, request: web.Request) -> web.Response:
        return self._page("")

    async def _results(self, request: web.Request) -> web.Response:
        report = await request.json()
        self.reports[report["origin"]] = report["results"]
        if len(self.reports) == 2:
            self.done.set()
        return web.Response(status=204)


@pytest.fixture
async def browser_setup(
    aiohttp_server: AiohttpServer,
    aiohttp_client: AiohttpClient,
    make_config: Callable[..., Config],
    upstream_server: TestServer,
    tokens: TokenFactory,
) -> PageServer:
    page = PageServer()
    page_server = await aiohttp_server(page.app(), host="127.0.0.1")
    page.port = page_server.port or 0
    config = make_config(
        upstream=str(upstream_server.make_url("")).rstrip("/"),
        routes=ROUTES.replace("PAGE_PORT", str(page.port)),
    )
    gateway: Any = await aiohttp_client(GatewayTestServer(create_app(config)))
    page.gateway = str(gateway.make_url("")).rstrip("/")
    page.token = tokens.good(scope="orders:read")
    return page


async def _run_browser(binary: str, url: str, profile: Path, done: asyncio.Event) -> None:
    process = await asyncio.create_subprocess_exec(
        binary, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
        "--disable-dev-shm-usage", "--disable-extensions", f"--user-data-dir={profile}", url,
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    try:
        await asyncio.wait_for(done.wait(), RESULTS_TIMEOUT)
    finally:
        # Chromium runs a zygote and renderers in the session it leads: end them all.
        os.killpg(process.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), 10)
        except TimeoutError:
            os.killpg(process.pid, signal.SIGKILL)
            await process.wait()


async def test_a_page_from_an_allowed_origin_reads_answers_and_others_are_blocked(
    browser_setup: PageServer,
    recorder: RecordingUpstream,
    log_capture: LogCapture,
    tmp_path: Path,
) -> None:
    """Allowed origin: the preflighted GET with a token succeeds, the 401 is readable JSON with
    its challenge. Other origin: the browser blocks both; only one request reached the upstream."""
    page = browser_setup
    binary = chromium_binary()
    await _run_browser(binary, f"http://127.0.0.1:{page.port}/index.html", tmp_path, page.done)

    allowed = {r["name"]: r for r in page.reports[f"http://127.0.0.1:{page.port}"]}
    assert allowed["with_token"].get("status") == 200, allowed
    assert json.loads(allowed["with_token"]["body"])["path"] == "/orders/7"
    assert allowed["without_token"].get("status") == 401, allowed
    body = json.loads(allowed["without_token"]["body"])
    assert body["error"] == "unauthorized"
    assert allowed["without_token"]["challenge"] == 'Bearer realm="gateway"'

    foreign = {r["name"]: r for r in page.reports[f"http://localhost:{page.port}"]}
    assert "TypeError" in foreign["with_token"].get("blocked", ""), foreign
    assert "TypeError" in foreign["without_token"].get("blocked", ""), foreign

    assert [(r.method, r.raw_path) for r in recorder.requests] == [("GET", "/orders/7")]
    access = [line for line in log_capture.lines() if line.get("event.action") == "access"]
    seen = {
        (a["http.request.method"], a["gateway.auth.result"], a["gateway.auth.reason"])
        for a in access
    }
    assert ("OPTIONS", "preflight", None) in seen  # the allowed page's preflight
    assert ("OPTIONS", "denied", "cors_origin_not_allowed") in seen  # the frame's
    assert ("GET", "allowed", None) in seen
    assert ("GET", "denied", "missing") in seen
