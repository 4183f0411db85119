"""The `gateway` command: argument parsing only; each subcommand's work is in
`gateway.tools.commands`.

Exit codes: 0 success, 1 a problem the user can fix (reported in one line each, never a
traceback), 2 a usage error (argparse's own), 3 `routes diff` found a loosening.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path

from gateway import __version__
from gateway.server.process import LOOPS
from gateway.tools import commands as commands_
from gateway.tools.keygen import GENERATED_ALGORITHMS
from gateway.tools.log_summary import parse_bound

__all__ = ["main"]

DEFAULT_CONFIG = "config/gateway.yaml"


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script and of ``python -m gateway``."""
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args))
    except commands_.UserError as exc:
        print(f"gateway: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def _add_config_option(sub: argparse.ArgumentParser) -> None:
    """``-c/--config FILE``, defaulting to config/gateway.yaml."""
    sub.add_argument(
        "-c",
        "--config",
        default=DEFAULT_CONFIG,
        metavar="FILE",
        help=f"gateway.yaml to use (default: {DEFAULT_CONFIG})",
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gateway",
        description="A reverse proxy that enforces bearer-JWT auth in front of HTTP services.",
    )
    parser.add_argument("--version", action="version", version=f"gateway {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    with_config = _add_config_option

    run = commands.add_parser(
        "run", help="serve until SIGTERM/SIGINT, then drain in-flight requests"
    )
    with_config(run)
    run.add_argument("--loop", choices=LOOPS, default="auto",
                     help="event loop (auto: uvloop when installed)")  # fmt: skip
    run.add_argument("--workers", type=int, default=1, metavar="N",
                     help="worker processes sharing the port (SO_REUSEPORT)")  # fmt: skip
    run.set_defaults(handler=commands_.run)

    check = commands.add_parser(
        "check", help="validate gateway.yaml and routes.yaml without serving"
    )
    with_config(check)
    check.add_argument(
        "--strict", action="store_true", help="treat route-table warnings as errors (exit 1)"
    )
    check.set_defaults(handler=commands_.check)

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
    explain.set_defaults(handler=commands_.routes_explain)

    keys = commands.add_parser("keys", help="key management")
    keys_commands = keys.add_subparsers(dest="keys_command", required=True, metavar="COMMAND")
    generate = keys_commands.add_parser(
        "generate", help="write a private key, its public PEM and a JWKS (HS256: a secret)"
    )
    generate.add_argument("--alg", required=True, choices=GENERATED_ALGORITHMS)
    generate.add_argument("--out", required=True, type=Path, metavar="DIR")
    generate.set_defaults(handler=commands_.keys_generate)

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
    token.set_defaults(handler=commands_.token)

    demo = commands.add_parser(
        "demo", help="run an echo upstream and the gateway, with example requests"
    )
    demo.add_argument("--once", action="store_true", help="exit after the example requests")
    demo.set_defaults(handler=commands_.demo)

    explainer = commands.add_parser(
        "explain", help="decide one request offline, step by step, as the gateway would"
    )
    explainer.add_argument("method", help="HTTP method, e.g. GET")
    explainer.add_argument("path", help="request target as a client would send it")
    given = explainer.add_mutually_exclusive_group()
    given.add_argument("--token", metavar="TOKEN", help="a bearer token (never printed)")
    given.add_argument("--token-file", type=Path, metavar="FILE", help="a file holding one")
    explainer.add_argument(
        "--header", action="append", default=[], metavar="'NAME: VALUE'",
        help="a request header (repeatable)",
    )  # fmt: skip
    explainer.add_argument(
        "--jwks", type=Path, metavar="FILE",
        help="a JWKS file for remote issuers (else their signatures are not checked)",
    )  # fmt: skip
    with_config(explainer)
    explainer.set_defaults(handler=commands_.explain_request)

    tester = commands.add_parser(
        "test", help="run a policy-test file's cases through the decision code, offline"
    )
    tester.add_argument("cases", type=Path, help="the policy-test file (e.g. routes.test.yaml)")
    with_config(tester)
    tester.set_defaults(handler=commands_.test)

    differ = routes_commands.add_parser(
        "diff", help="what a routes.yaml change does to access (exit 3 if it loosens any)"
    )
    differ.add_argument("old", type=Path, help="the routes file before the change")
    differ.add_argument("new", type=Path, help="the routes file after the change")
    differ.set_defaults(handler=commands_.routes_diff)

    log = commands.add_parser("log", help="read the gateway's access log")
    log_commands = log.add_subparsers(dest="log_command", required=True, metavar="COMMAND")
    summary = log_commands.add_parser(
        "summary",
        help="requests and refusals by route, clients refused most, forged-token bursts and "
        "report-mode would-deny clients, for a time window",
    )
    summary.add_argument(
        "files", nargs="*", type=Path, metavar="FILE",
        help="access-log files, plain or gzip (default, or -: standard input)",
    )  # fmt: skip
    summary.add_argument(
        "--since", type=_bound, metavar="WHEN",
        help="RFC 3339 time, or a duration back from the newest line (30s, 15m, 1h, 2d)",
    )  # fmt: skip
    summary.add_argument("--until", type=_bound, metavar="WHEN", help="as --since")
    summary.add_argument("--json", action="store_true", help="print JSON for scripts")
    summary.add_argument("--top", type=_positive, default=10, metavar="N",
                         help="clients in the refused-most table (default 10)")  # fmt: skip
    summary.add_argument(
        "--burst-threshold", type=_positive, default=20, metavar="N",
        help="forged-token refusals in one minute that make a burst (default 20)",
    )  # fmt: skip
    summary.set_defaults(handler=commands_.log_summary)
    return parser


def _bound(text: str) -> datetime | timedelta:
    try:
        return parse_bound(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of at least 1")
    return value
