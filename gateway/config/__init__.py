"""Typed, frozen configuration, loaded and validated once.

`load` reads ``gateway.yaml`` and the ``routes.yaml`` it names, and either returns a `Config` or
raises `ConfigError` carrying *every* problem found, each as ``file:line: what is wrong`` (any
input: a reader's own bug is reported as an issue too, naming `INTERNAL_ERROR`, so that neither
``gateway check`` nor a live reload ever ends in a traceback). Unknown
keys are errors: a misspelled ``scopes`` must never quietly make a route public.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TypeVar

from gateway.config.models import (
    AdminConfig,
    Config,
    ConfigError,
    ConfigIssue,
    HttpRedirectConfig,
    JwksSettings,
    LimitBackend,
    LimitsConfig,
    ListenConfig,
    RateLimitSettings,
    TlsConfig,
    TracingSettings,
)
from gateway.config.reader import read_gateway
from gateway.config.routes_reader import read_routes
from gateway.config.source import Source
from gateway.core.models import RoutesConfig

__all__ = [
    "INTERNAL_ERROR",
    "AdminConfig",
    "Config",
    "ConfigError",
    "ConfigIssue",
    "HttpRedirectConfig",
    "JwksSettings",
    "LimitBackend",
    "LimitsConfig",
    "ListenConfig",
    "RateLimitSettings",
    "TlsConfig",
    "TracingSettings",
    "load",
    "load_routes",
]

_T = TypeVar("_T")

# Every input is meant to end in a file:line problem; this one means a reader missed a case.
INTERNAL_ERROR = "cannot be read: unexpected error in the config reader"


def load(path: Path | str, environ: Mapping[str, str] | None = None) -> Config:
    """Load and validate gateway.yaml and the routes file it names."""
    return _load(read_gateway, path, environ)


def load_routes(path: Path | str, environ: Mapping[str, str] | None = None) -> RoutesConfig:
    """Load and validate a routes file on its own (for reloads and route tooling)."""
    return _load(read_routes, path, environ)


def _load(
    read: Callable[[Source], _T | None], path: Path | str, environ: Mapping[str, str] | None
) -> _T:
    env = os.environ if environ is None else environ
    source = Source(Path(path), env, digest=hashlib.sha256())
    try:
        result = read(source)
    except Exception as exc:  # a reader's bug is a refused load, never a crash
        source.problem(0, f"{INTERNAL_ERROR} ({type(exc).__name__}: {exc}); please report it")
        result = None
    if source.issues or result is None:
        raise ConfigError(source.issues)
    return result
