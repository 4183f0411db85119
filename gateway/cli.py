"""The `gateway` command: run | check | explain | test | routes explain/diff | keys generate |
token | demo (the rollout commands are registered from `gateway.tools.rollout_cli`).

Exit codes: 0 success, 1 a problem the user can fix (reported in one line each, never a
traceback), 2 a usage error (argparse's own).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import jwt

from gateway import __version__
from gateway.config import ConfigError, load
from gateway.config.units import parse_duration
from gateway.core.models import AuthMode
from gateway.core.routes import Match, RouteTable
from gateway.core.target import TargetError, canonicalize
from gateway.core.urls import upstream_url
from gateway.server.logs import configure
from gateway.server.process import LOOPS, run_gateway
from gateway.tools import keygen as keytools
from gateway.tools import rollout_cli
from gateway.tools.cli_support import UserError, add_config_option, load_config
from gateway.tools.lint import lint

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script and of ``python -m gateway``."""
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args))
    except UserError as exc:
        print(f"gateway: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gateway",
        description="A reverse proxy that enforces bearer-JWT auth in front of HTTP services.",
    )
    parser.add_argument("--version", action="version", version=f"gateway {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    with_config = add_config_option

    run = commands.add_parser(
        "run", help="serve until SIGTERM/SIGINT, then drain in-flight requests"
    )
    with_config(run)
    run.add_argument("--loop", choices=LOOPS, default="auto",
                     help="event loop (auto: uvloop when installed)")  # fmt: skip
    run.add_argument("--workers", type=int, default=1, metavar="N",
                     help="worker processes sharing the port (SO_REUSEPORT)")  # fmt: skip
    run.set_defaults(handler=_run)

    check = commands.add_parser(
        "check", help="validate gateway.yaml and routes.yaml without serving"
    )
    with_config(check)
    check.add_argument(
        "--strict", action="store_true", help="treat route-table warnings as errors (exit 1)"
    )
    check.set_defaults(handler=_check)

    routes = commands.add_parser("routes", help="inspect the route table")
    routes_commands = routes.add_subparsers(dest="routes_command", required=True, metavar="COMMAND")
    explain = routes_commands.add_parser(
        "explain", help="show the route, upstream URL and scopes for a method and path"
    )
    explain.add_argument("method", help="HTTP method, e.g. GET")
    explain.add_argument(
        "path", help="request target as a client would send it, e.g. /orders/7?x=1"
    )
    with_config(explain)
    explain.set_defaults(handler=_routes_explain)

    keys = commands.add_parser("keys", help="key management")
    keys_commands = keys.add_subparsers(dest="keys_command", required=True, metavar="COMMAND")
    generate = keys_commands.add_parser(
        "generate", help="write a private key, its public PEM and a JWKS (HS256: a secret)"
    )
    generate.add_argument("--alg", required=True, choices=keytools.GENERATED_ALGORITHMS)
    generate.add_argument("--out", required=True, type=Path, metavar="DIR")
    generate.set_defaults(handler=_keys_generate)

    token = commands.add_parser(
        "token", help="print a signed access token (tests, local development)"
    )
    token.add_argument(
        "--key",
        required=True,
        metavar="PRIVATE_KEY_OR_SECRET",
        help="a private-key PEM file, or an HMAC secret (text, or a file with it)",
    )
    token.add_argument("--iss", required=True, help="issuer (must equal a configured issuer)")
    token.add_argument("--aud", help="audience")
    token.add_argument("--sub", required=True, help="subject")
    token.add_argument("--scope", default="", help='space-delimited scopes, e.g. "a b"')
    token.add_argument("--ttl", default="15m", help="lifetime, e.g. 15m (default)")
    token.add_argument("--alg", help="signing algorithm (default: from the key)")
    token.add_argument(
        "--claim",
        action="append",
        default=[],
        metavar="NAME=JSON",
        help="an extra claim; the value is JSON if it parses, else text",
    )
    token.set_defaults(handler=_token)

    demo = commands.add_parser(
        "demo", help="run an echo upstream and the gateway, with example requests"
    )
    demo.add_argument("--once", action="store_true", help="exit after the example requests")
    demo.set_defaults(handler=_demo)
    rollout_cli.add_commands(commands, routes_commands)
    return parser


def _run(args: argparse.Namespace) -> int:
    return run_gateway(args.config, loop=args.loop, workers=args.workers)


def _check(args: argparse.Namespace) -> int:
    try:
        config = load(args.config)
    except ConfigError as exc:
        for issue in exc.issues:
            print(issue)
        return 1
    warnings = lint(config.routes)
    if warnings and args.strict:
        for warning in warnings:
            print(warning)
        print(f"{len(warnings)} warning(s), which --strict makes errors")
        return 1
    routes = config.routes
    noted = f", {len(warnings)} warning(s):" if warnings else ""
    print(
        f"ok: {args.config} and {routes.file}: {len(routes.routes)} routes, "
        f"{len(routes.upstreams)} upstreams, {len(config.issuers)} issuers{noted}"
    )
    for warning in warnings:
        print(warning)
    return 0


def _routes_explain(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    try:
        target = canonicalize(args.path)
    except TargetError as exc:
        print(f"400 bad_request: the request target is refused ({exc.problem.value})")
        return 0
    table = RouteTable.from_config(config.routes)
    match = table.match(args.method, target.path)
    print(f"canonical path: {target.path}")
    if match.kind is Match.NONE:
        print("no route matches: 404 not_found")
        return 0
    if match.kind is Match.PARTIAL:
        print(
            f"the path matches but {args.method} does not: "
            f"405, Allow: {', '.join(match.allowed_methods)}"
        )
        return 0
    route = match.route
    assert route is not None
    upstream = config.routes.upstreams[route.upstream]
    methods = ", ".join(sorted(route.methods)) if route.methods else "any"
    print(f"route: {route.path} (methods: {methods}) at {config.routes.file}:{route.line}")
    print(f"upstream: {upstream.name} -> {upstream_url(upstream, route, target)}")
    if route.auth is AuthMode.NONE:
        print("auth: none (public; client X-Auth-* headers are still removed)")
    elif route.scopes.scopes:
        print(f"auth: bearer token with scopes: {route.scopes}")
    else:
        print("auth: any valid bearer token")
    return 0


def _keys_generate(args: argparse.Namespace) -> int:
    generated = keytools.generate(args.alg)
    try:
        written = keytools.write(generated, args.out)
    except OSError as exc:
        raise UserError(str(exc)) from None
    for path in written:
        print(path)
    return 0


def _token(args: argparse.Namespace) -> int:
    try:
        ttl = parse_duration(args.ttl)
        key = keytools.load_signing_key(args.key, args.alg)
        extra = dict(_claim(item) for item in args.claim)
        print(
            keytools.mint(
                key,
                issuer=args.iss,
                audience=args.aud,
                subject=args.sub,
                scope=args.scope,
                ttl=ttl,
                extra=extra,
            )
        )
    except (ValueError, TypeError, OSError, jwt.PyJWTError) as exc:
        raise UserError(str(exc)) from None
    return 0


def _claim(item: str) -> tuple[str, object]:
    name, separator, raw = item.partition("=")
    if not separator or not name:
        raise ValueError(f"--claim {item!r}: write NAME=VALUE")
    try:
        return name, json.loads(raw)
    except ValueError:
        return name, raw


def _demo(args: argparse.Namespace) -> int:
    configure("info")
    from gateway.tools.demo import run_demo

    return asyncio.run(run_demo(once=args.once))
