"""`gateway demo`: the whole gateway on one machine, with nothing to set up.

It copies the embedded sample config into a temporary directory, gives it fresh keys (the
sample's public keys have no private half anywhere), starts a built-in echo upstream and the
gateway in front of it, then shows an allowed request, a 401 and a 403, with curl lines to try.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import secrets
import socket
import sys
import tempfile
from importlib import resources
from pathlib import Path
from typing import TextIO

import aiohttp
import yarl
from aiohttp import web

from gateway.config import Config, load
from gateway.server.app import GatewayServer
from gateway.tools import keygen as keytools

__all__ = ["echo_app", "run_demo"]

_SAMPLE_FILES = ("gateway.yaml", "routes.yaml")


def echo_app() -> web.Application:
    """An upstream that answers every request with what it received, as JSON."""

    async def echo(request: web.Request) -> web.Response:
        body = await request.read()
        return web.json_response(
            {
                "method": request.method,
                "path": request.raw_path.partition("?")[0],
                "query": request.query_string,
                "headers": dict(request.headers),
                "body_bytes": len(body),
            }
        )

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", echo)
    return app


async def run_demo(*, once: bool, out: TextIO = sys.stderr) -> int:
    """Run the demo; with ``once``, exit after showing the three requests."""
    with tempfile.TemporaryDirectory(prefix="gateway-demo-") as workdir:
        directory = Path(workdir)
        signing = _prepare_config(directory)
        environ = {**os.environ, "ACCESS_TOKEN_SECRET": secrets.token_urlsafe(48)}
        echo_runner = web.AppRunner(echo_app(), access_log=None)
        await echo_runner.setup()
        await web.TCPSite(echo_runner, "127.0.0.1", 0).start()
        echo_port = int(echo_runner.addresses[0][1])
        config = _demo_config(load(directory / "gateway.yaml", environ), echo_port)
        server = GatewayServer(config, watch=False)
        try:
            await server.start()
            base = f"http://127.0.0.1:{server.public_port}"
            read_token, write_token = _tokens(config, signing)
            ok = await _show(out, base, read_token, write_token)
            if once:
                return 0 if ok else 1
            print("\nThe gateway keeps serving; press Ctrl-C to stop.", file=out)
            await asyncio.Event().wait()
        finally:
            await server.stop()
            await echo_runner.cleanup()
    return 0


def _prepare_config(directory: Path) -> keytools.SigningKey:
    samples = resources.files("gateway") / "samples"
    for name in _SAMPLE_FILES:
        (directory / name).write_text(samples.joinpath(name).read_text(encoding="utf-8"))
    keys_dir = directory / "keys"
    keys_dir.mkdir()
    rsa = keytools.generate("RS256")
    (keys_dir / "public.pem").write_bytes(rsa.files["public.pem"])
    jwks = [
        json.loads(keytools.generate(alg).files["jwks.json"])["keys"][0]
        for alg in ("ES256", "EdDSA")
    ]
    (keys_dir / "jwks.json").write_text(json.dumps({"keys": jwks}))
    private = keys_dir / "private.pem"
    private.write_bytes(rsa.files["private.pem"])
    return keytools.load_signing_key(str(private))


def _demo_config(config: Config, echo_port: int) -> Config:
    upstreams = {
        name: dataclasses.replace(upstream, url=yarl.URL(f"http://127.0.0.1:{echo_port}"))
        for name, upstream in config.routes.upstreams.items()
    }
    routes = dataclasses.replace(config.routes, upstreams=upstreams)
    listen = dataclasses.replace(
        config.listen, port=_free_or_any(config.listen.host, config.listen.port)
    )
    admin = dataclasses.replace(
        config.admin, port=_free_or_any(config.admin.host, config.admin.port)
    )
    return dataclasses.replace(config, routes=routes, listen=listen, admin=admin)


def _free_or_any(host: str, port: int) -> int:
    with socket.socket() as probe:
        try:
            probe.bind((host, port))
        except OSError:
            return 0
    return port


def _tokens(config: Config, signing: keytools.SigningKey) -> tuple[str, str]:
    local = next(issuer for issuer in config.issuers if issuer.name == "local")
    audience = local.audiences[0] if local.audiences else None
    read, write = (
        keytools.mint(
            signing, issuer=local.issuer, audience=audience, subject=subject, scope=scope, ttl=900
        )
        for subject, scope in (("alice", "orders:read"), ("bob", "orders:write"))
    )
    return read, write


async def _show(out: TextIO, base: str, read_token: str, write_token: str) -> bool:
    cases = [
        ("allowed: a token with orders:read", "GET", "/orders/42", read_token, 200),
        ("401: no token", "GET", "/orders/42", None, 401),
        ("403: a valid token without orders:read", "GET", "/orders/42", write_token, 403),
    ]
    print(
        f"gateway demo: the gateway listens on {base}, in front of a built-in echo upstream.",
        file=out,
    )
    all_ok = True
    async with aiohttp.ClientSession() as session:
        for title, method, path, token, expected in cases:
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            async with session.request(method, base + path, headers=headers) as response:
                await response.read()
                status = response.status
            all_ok &= status == expected
            verdict = "ok" if status == expected else f"UNEXPECTED (wanted {expected})"
            auth = f" -H 'Authorization: Bearer {token}'" if token else ""
            print(f"\n# {title} -> {status} {verdict}", file=out)
            print(f"curl -i{auth} {base}{path}", file=out)
    return all_ok
