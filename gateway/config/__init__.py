"""Typed, frozen configuration, loaded and validated once.

`load` reads ``gateway.yaml`` and the ``routes.yaml`` it names, and either returns a `Config` or
raises `ConfigError` carrying *every* problem found, each as ``file:line: what is wrong``. Unknown
keys are errors: a misspelled ``scopes`` must never quietly make a route public.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from gateway.config.models import (
    AdminConfig,
    Config,
    ConfigError,
    ConfigIssue,
    JwksSettings,
    LimitsConfig,
    ListenConfig,
    TlsConfig,
)
from gateway.config.reader import Reader
from gateway.core.models import RoutesConfig

__all__ = [
    "AdminConfig",
    "Config",
    "ConfigError",
    "ConfigIssue",
    "JwksSettings",
    "LimitsConfig",
    "ListenConfig",
    "TlsConfig",
    "load",
    "load_routes",
]


def load(path: Path | str, environ: Mapping[str, str] | None = None) -> Config:
    """Load and validate gateway.yaml and the routes file it names."""
    env = os.environ if environ is None else environ
    reader = Reader(Path(path), env)
    config = reader.gateway()
    if reader.issues:
        raise ConfigError(reader.issues)
    assert config is not None
    return config


def load_routes(path: Path | str, environ: Mapping[str, str] | None = None) -> RoutesConfig:
    """Load and validate a routes file on its own (for reloads and route tooling)."""
    env = os.environ if environ is None else environ
    reader = Reader(Path(path), env)
    routes = reader.routes(Path(path))
    if reader.issues or routes is None:
        raise ConfigError(reader.issues)
    return routes
