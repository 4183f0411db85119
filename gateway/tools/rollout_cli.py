"""The safe-rollout subcommands: `explain`, `test` and `routes diff` (argument parsing and I/O;
the logic lives in `gateway.tools.explain`, `gateway.tools.policy_test` and
`gateway.tools.routes_diff`).

Exit codes beyond the CLI's usual 0/1/2: `test` exits 1 when a case fails; `routes diff`
exits 3 when the change loosens access.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
from pathlib import Path
from typing import Any

from gateway.config import Config, ConfigError, load_routes
from gateway.core.keys import HMAC_ALGORITHMS, KeyLoadError, KeySet, keys_from_jwks
from gateway.tools.cli_support import UserError, add_config_option, load_config
from gateway.tools.explain import ExplainRequest, explain
from gateway.tools.policy_cases import CasesError, load_cases
from gateway.tools.policy_test import run_cases
from gateway.tools.routes_diff import Direction, diff_routes

__all__ = ["LOOSENED_EXIT", "add_commands"]

LOOSENED_EXIT = 3  # `routes diff`: some request now gets further than before


def add_commands(commands: Any, routes_commands: Any) -> None:
    """Register the subcommands on the top-level and the `routes` subparsers."""
    explainer = commands.add_parser(
        "explain", help="decide one request offline, step by step, as the gateway would"
    )
    explainer.add_argument("method", help="HTTP method, e.g. GET")
    explainer.add_argument("path", help="request target as a client would send it")
    token = explainer.add_mutually_exclusive_group()
    token.add_argument("--token", metavar="TOKEN", help="a bearer token (never printed)")
    token.add_argument("--token-file", type=Path, metavar="FILE", help="a file holding one")
    explainer.add_argument(
        "--header", action="append", default=[], metavar="'NAME: VALUE'",
        help="a request header (repeatable)",
    )  # fmt: skip
    explainer.add_argument(
        "--jwks", type=Path, metavar="FILE",
        help="a JWKS file for remote issuers (else their signatures are not checked)",
    )  # fmt: skip
    add_config_option(explainer)
    explainer.set_defaults(handler=_explain)

    tester = commands.add_parser(
        "test", help="run a policy-test file's cases through the decision code, offline"
    )
    tester.add_argument("cases", type=Path, help="the policy-test file (e.g. routes.test.yaml)")
    add_config_option(tester)
    tester.set_defaults(handler=_test)

    differ = routes_commands.add_parser(
        "diff", help="what a routes.yaml change does to access (exit 3 if it loosens any)"
    )
    differ.add_argument("old", type=Path, help="the routes file before the change")
    differ.add_argument("new", type=Path, help="the routes file after the change")
    differ.set_defaults(handler=_routes_diff)


def _explain(args: argparse.Namespace) -> int:
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


def _test(args: argparse.Namespace) -> int:
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


def _routes_diff(args: argparse.Namespace) -> int:
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
