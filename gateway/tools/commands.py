"""What each `gateway` subcommand does, once its arguments are parsed (`gateway.cli` parses).

Every command decides through the same code as the server: `check` loads and lints the config,
`routes explain`, `explain` and `test` decide requests with `gateway.tools.offline`, and
`routes diff` compares two tables by deciding probes against each.

Each command imports the tools it alone uses when it runs, so that `gateway run` (a long-lived
process) holds none of them.

Exit codes: 0 success, 1 a problem the user can fix (reported in one line each, never a
traceback); `test` exits 1 when a case fails; `routes diff` exits 3 when the change loosens access.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from collections.abc import Mapping
from pathlib import Path

import jwt

from gateway.config import Config, ConfigError, load, load_routes
from gateway.config.units import parse_duration
from gateway.core.keys import HMAC_ALGORITHMS, KeyLoadError, KeySet, keys_from_jwks
from gateway.core.models import AuthMode
from gateway.core.outcomes import Forward, RequestFacts
from gateway.core.urls import upstream_url
from gateway.server.logs import configure
from gateway.server.process import run_gateway
from gateway.tools import keygen as keytools

__all__ = [
    "LOOSENED_EXIT",
    "UserError",
    "check",
    "demo",
    "explain_request",
    "keys_generate",
    "load_config",
    "log_summary",
    "routes_diff",
    "routes_explain",
    "run",
    "test",
    "token",
]

LOOSENED_EXIT = 3  # `routes diff`: some request now gets further than before


class UserError(Exception):
    """A mistake the user can fix; printed as one line, exit 1."""


def load_config(path: str, environ: Mapping[str, str] | None = None) -> Config:
    """Load the configuration, or raise `UserError` listing every problem."""
    try:
        return load(path, environ)
    except ConfigError as exc:
        raise UserError(f"{len(exc.issues)} problem(s) in the configuration:\n{exc}") from None


def run(args: argparse.Namespace) -> int:
    """`gateway run`: serve until a signal."""
    return run_gateway(args.config, loop=args.loop, workers=args.workers)


def check(args: argparse.Namespace) -> int:
    """`gateway check`: validate and lint without serving."""
    from gateway.tools.lint import lint

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


def routes_explain(args: argparse.Namespace) -> int:
    """`gateway routes explain`: the route, upstream URL and scopes, as the decision finds them
    for a request without credentials."""
    from gateway.tools import offline

    config = load_config(args.config)
    facts = RequestFacts(method=args.method, raw_target=args.path)
    decision = asyncio.run(offline.decider(config, clock=time.time).decide(facts))
    refusal = None if isinstance(decision, Forward) else decision.refusal
    if decision.target is None:
        assert refusal is not None  # only a refusal has no target
        print(f"400 bad_request: the request target is refused ({refusal.reason})")
        return 0
    print(f"canonical path: {decision.target.path}")
    if decision.route is None or decision.upstream is None:
        if refusal is not None and refusal.status == 405:
            print(
                f"the path matches but {args.method} does not: "
                f"405, Allow: {refusal.headers['Allow']}"
            )
        else:
            print("no route matches: 404 not_found")
        return 0
    route, upstream = decision.route, decision.upstream
    methods = ", ".join(sorted(route.methods)) if route.methods else "any"
    print(f"route: {route.path} (methods: {methods}) at {config.routes.file}:{route.line}")
    print(f"upstream: {upstream.name} -> {upstream_url(upstream, route, decision.target)}")
    if route.auth is AuthMode.NONE:
        print("auth: none (public; client X-Auth-* headers are still removed)")
    elif route.scopes.scopes:
        print(f"auth: bearer token with scopes: {route.scopes}")
    else:
        print("auth: any valid bearer token")
    print(f"rate limit: {route.rate_limit or 'none'}")
    return 0


def keys_generate(args: argparse.Namespace) -> int:
    """`gateway keys generate`: write a key pair and its JWKS."""
    generated = keytools.generate(args.alg)
    try:
        written = keytools.write(generated, args.out)
    except OSError as exc:
        raise UserError(str(exc)) from None
    for path in written:
        print(path)
    return 0


def token(args: argparse.Namespace) -> int:
    """`gateway token`: print a signed access token."""
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


def demo(args: argparse.Namespace) -> int:
    """`gateway demo`: the echo upstream and the gateway, with example requests."""
    configure("info")
    from gateway.tools.demo import run_demo  # the demo alone loads the server

    return asyncio.run(run_demo(once=args.once))


def log_summary(args: argparse.Namespace) -> int:
    """`gateway log summary`: requests, refusals, forged-token bursts and report-mode clients
    of a time window of access-log lines."""
    from gateway.tools.log_report import read_logs, render  # rich loads for this command only
    from gateway.tools.log_summary import LogTally, Window

    window = Window(since=args.since, until=args.until)
    tally = LogTally()
    try:
        warnings = read_logs(tally, args.files or [Path("-")])
    except OSError as exc:
        raise UserError(f"{exc.filename or 'input'}: cannot read ({exc.strerror or exc})") from None
    since, until = window.resolve(tally.newest)
    if since is not None and until is not None and since > until:
        raise UserError(f"the window is empty: --since {args.since} is after --until {args.until}")
    for warning in warnings:
        print(f"gateway: warning: {warning}", file=sys.stderr)
    summary = tally.summary(window, top=args.top, burst_threshold=args.burst_threshold)
    if args.json:
        print(json.dumps(summary.as_json(), indent=2))
    else:
        render(summary, sys.stdout)
    return 0


def explain_request(args: argparse.Namespace) -> int:
    """`gateway explain`: one request decided offline, step by step."""
    from gateway.tools.explain import ExplainRequest, explain

    config = load_config(args.config)
    headers = [_header(item) for item in args.header]
    token = args.token
    if args.token_file is not None:
        try:
            token = args.token_file.read_text().strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise UserError(f"{args.token_file}: cannot read the token ({exc})") from None
    if token is not None:
        headers.append(("Authorization", f"Bearer {token}"))
    request = ExplainRequest(
        method=args.method,
        target=args.path,
        headers=tuple(headers),
        remote_keys=_remote_keys(config, args.jwks),
        now=time.time(),
    )
    for line in asyncio.run(explain(config, request)):
        print(line)
    return 0


def test(args: argparse.Namespace) -> int:
    """`gateway test`: a policy-test file's cases through the decision code."""
    from gateway.tools.policy_cases import CasesError, load_cases
    from gateway.tools.policy_test import run_cases

    config = load_config(args.config)
    try:
        cases = load_cases(args.cases, os.environ)
    except CasesError as exc:
        for issue in exc.issues:
            print(issue)
        return 1
    results = asyncio.run(run_cases(config, cases, now=time.time()))
    for result in results:
        print(result.line(str(args.cases)))
    failed = sum(not result.passed for result in results)
    print(f"{len(results) - failed} passed, {failed} failed")
    return 1 if failed else 0


def routes_diff(args: argparse.Namespace) -> int:
    """`gateway routes diff`: what a routes.yaml change does to access."""
    from gateway.tools.routes_diff import Direction, diff_routes

    tables = []
    for path in (args.old, args.new):
        try:
            tables.append(load_routes(path))
        except ConfigError as exc:
            for issue in exc.issues:
                print(issue)
            return 1
    changes = diff_routes(*tables)
    for change in changes:
        print(change)
    counts = dict.fromkeys(Direction, 0)
    for change in changes:
        counts[change.direction] += 1
    if not changes:
        print("no access changes")
    else:
        print(", ".join(f"{n} {d.value}" for d, n in counts.items()))
    return LOOSENED_EXIT if counts[Direction.LOOSENED] else 0


def _header(item: str) -> tuple[str, str]:
    name, separator, value = item.partition(":")
    if not separator or not name.strip() or name != name.strip():
        raise UserError(f"--header takes 'Name: value', not {item.split(':')[0]!r}...")
    return name, value.strip()


def _remote_keys(config: Config, jwks: Path | None) -> dict[str, KeySet]:
    if jwks is None:
        return {}
    try:
        document = json.loads(jwks.read_bytes())
    except (OSError, ValueError) as exc:
        raise UserError(f"{jwks}: not a readable JSON file ({exc})") from None
    keys: dict[str, KeySet] = {}
    for issuer in config.issuers:
        if issuer.remote:
            try:
                keys[issuer.name], _ = keys_from_jwks(
                    document, issuer.algorithms - HMAC_ALGORITHMS, str(jwks)
                )
            except KeyLoadError as exc:
                raise UserError(str(exc)) from None
    return keys
