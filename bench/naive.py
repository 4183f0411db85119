"""The reference to beat: how a Python shop typically writes a JWT-checking proxy.

An aiohttp handler that calls ``jwt.decode`` on every request (no cache, no key binding beyond
PyJWT's), checks the scope, and forwards with an aiohttp client, buffering nothing more than the
typical code does (it reads the whole body and the whole response).

    python bench/naive.py PORT UPSTREAM_URL KEYS.json
"""

from __future__ import annotations

import json
import sys
from typing import Any

import aiohttp
import jwt
from aiohttp import web


def main() -> None:
    port, upstream, keys_path = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    with open(keys_path) as handle:
        keys: dict[str, Any] = json.load(handle)

    async def start(app: web.Application) -> None:
        app["session"] = aiohttp.ClientSession()

    async def stop(app: web.Application) -> None:
        await app["session"].close()

    async def handle(request: web.Request) -> web.StreamResponse:
        auth = request.headers.get("Authorization", "")
        if not auth.startswith("Bearer "):
            return web.json_response({"error": "unauthorized"}, status=401)
        token = auth[7:]
        try:
            header = jwt.get_unverified_header(token)
            key = keys["secret"] if header["alg"] == "HS256" else keys["public"][header["alg"]]
            claims = jwt.decode(
                token, key, algorithms=[header["alg"]], audience=keys["audience"],
                issuer=keys["issuers"][header["alg"]],
            )  # fmt: skip
        except (jwt.PyJWTError, KeyError):
            return web.json_response({"error": "invalid_token"}, status=401)
        needed = "orders:write" if request.method == "POST" else "orders:read"
        if needed not in str(claims.get("scope", "")).split():
            return web.json_response({"error": "insufficient_scope"}, status=403)
        body = await request.read()
        base = keys["upload_upstream"] if request.method == "POST" else upstream
        async with request.app["session"].request(
            request.method, base + request.path_qs, data=body,
            headers={"X-Auth-Subject": str(claims.get("sub"))},
        ) as response:  # fmt: skip
            payload = await response.read()
            return web.Response(body=payload, status=response.status)

    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.on_startup.append(start)
    app.on_cleanup.append(stop)
    app.router.add_route("*", "/{tail:.*}", handle)
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)


if __name__ == "__main__":
    main()
