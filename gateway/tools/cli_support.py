"""What every `gateway` subcommand shares: the config option, loading it, and `UserError`."""

from __future__ import annotations

import argparse
from collections.abc import Mapping

from gateway.config import Config, ConfigError, load

__all__ = ["DEFAULT_CONFIG", "UserError", "add_config_option", "load_config"]

DEFAULT_CONFIG = "config/gateway.yaml"


class UserError(Exception):
    """A mistake the user can fix; printed as one line, exit 1."""


def add_config_option(sub: argparse.ArgumentParser) -> None:
    """``-c/--config FILE``, defaulting to config/gateway.yaml."""
    sub.add_argument(
        "-c",
        "--config",
        default=DEFAULT_CONFIG,
        metavar="FILE",
        help=f"gateway.yaml to use (default: {DEFAULT_CONFIG})",
    )


def load_config(path: str, environ: Mapping[str, str] | None = None) -> Config:
    """Load the configuration, or raise `UserError` listing every problem."""
    try:
        return load(path, environ)
    except ConfigError as exc:
        raise UserError(f"{len(exc.issues)} problem(s) in the configuration:\n{exc}") from None
