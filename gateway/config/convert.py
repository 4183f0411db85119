"""Pure converters for config values: each returns the typed value or raises ``ValueError``
with a message for the operator."""

from __future__ import annotations

import difflib
import re
from collections.abc import Collection
from typing import Any

import yarl

from gateway.core.keys import SUPPORTED_ALGORITHMS
from gateway.core.methods import NEVER_PROXIED
from gateway.core.models import (
    AuthMode,
    LintCode,
    RouteMode,
    ScopeFormat,
    ScopeMode,
    ScopeRule,
)
from gateway.core.params import Binding, PathPattern, has_params
from gateway.core.target import TargetError, canonicalize_path
from gateway.core.urls import has_credentials, without_userinfo

# RFC 9110 token characters, upper-case only: methods are case-sensitive.
_METHOD_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$%&'*+-.^_`|~")


def string(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError("must be a non-empty string")
    return value


def string_list(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ValueError("must be a list of non-empty strings")
    return tuple(value)


def file_name(value: Any) -> str:
    """A file name, relative to the config file or absolute (no NUL: no file can have one)."""
    name = string(value)
    if "\0" in name:
        raise ValueError("a file name cannot contain a NUL byte")
    return name


def file_names(value: Any) -> tuple[str, ...]:
    """A list of `file_name` values."""
    return tuple(file_name(name) for name in string_list(value))


def issuer_names(value: Any) -> frozenset[str]:
    return frozenset(string_list(value))


def boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError("must be true or false")
    return value


def port(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 65535:
        raise ValueError("must be a port number from 0 to 65535")
    return value


def host(value: Any) -> str:
    host = string(value)
    if any(ch.isspace() or ch in "/@" for ch in host):
        raise ValueError(f"'{host}' is not a host name or address")
    return host


def log_level(value: Any) -> str:
    level = string(value).lower()
    if level not in {"debug", "info", "warning", "error"}:
        raise ValueError("must be one of debug, info, warning, error")
    return level


def algorithms(value: Any) -> frozenset[str]:
    names = string_list(value)
    if not names:
        raise ValueError("must list at least one algorithm")
    for name in names:
        if name.lower() == "none":
            raise ValueError("'none' is never accepted")
        if name not in SUPPORTED_ALGORITHMS:
            raise ValueError(
                f"unsupported algorithm '{name}' ({', '.join(sorted(SUPPORTED_ALGORITHMS))})"
            )
    return frozenset(names)


def methods(value: Any) -> frozenset[str]:
    methods = string_list(value)
    if not methods:
        raise ValueError("must list at least one method (leave 'methods' out to allow all)")
    for method in methods:
        if not set(method) <= _METHOD_CHARS:
            raise ValueError(f"'{method}' is not a method (methods are case-sensitive: GET, POST)")
        if method in NEVER_PROXIED:
            raise ValueError(f"{method} is never proxied")
    return frozenset(methods)


def auth_mode(value: Any) -> AuthMode:
    try:
        return AuthMode(value)
    except ValueError:
        raise ValueError(f"{value!r} is not one of: 'required', 'none'") from None


def route_mode(value: Any) -> RouteMode:
    try:
        return RouteMode(value)
    except ValueError:
        raise ValueError(f"{value!r} is not one of: 'enforce', 'report'") from None


def lint_codes(value: Any) -> frozenset[LintCode]:
    codes = set()
    known = {code.value for code in LintCode}
    for name in string_list(value):
        if name not in known:
            hint = did_you_mean(name, known)
            raise ValueError(f"'{name}' is not a lint warning ({', '.join(sorted(known))}){hint}")
        codes.add(LintCode(name))
    return frozenset(codes)


def route_path(value: Any) -> str:
    path = string(value)
    if not path.startswith("/"):
        raise ValueError(f"'{path}' is not in canonical form; write '/{path}'")
    # {name} segments (gateway.core.params) are checked as a stand-in literal segment: the rest
    # of the path must be canonical around them.
    pattern = PathPattern.parse(path) if has_params(path) or "}" in path else None
    literal = path
    if pattern is not None:
        literal = "/" + "/".join(
            lit if name is None else _PARAM_STAND_IN
            for lit, name in zip(pattern.literals, pattern.names, strict=True)
        )
    try:
        canonical = canonicalize_path(literal)
    except TargetError as exc:
        raise ValueError(f"'{path}' is not a valid path ({exc.problem.value})") from None
    wanted = canonical.rstrip("/") or "/"
    if literal != wanted:
        if pattern is not None:
            raise ValueError(f"'{path}' is not in canonical form")
        raise ValueError(f"'{path}' is not in canonical form; write '{wanted}'")
    return path


_PARAM_STAND_IN = "p"  # a canonical segment, never '.' or '..'


def bindings(value: Any) -> tuple[Binding, ...]:
    """``bind: {param: claim}``: each path parameter and the claim it must equal."""
    if not isinstance(value, dict) or not value:
        raise ValueError("write a mapping of path parameter to claim: {tenant: tenant_id}")
    found = []
    for param, claim in value.items():
        if not isinstance(param, str) or not isinstance(claim, str) or not param or not claim:
            raise ValueError("write a mapping of path parameter to claim: {tenant: tenant_id}")
        found.append(Binding(param, claim))
    return tuple(found)


def scope_rule(value: Any) -> ScopeRule:
    if isinstance(value, dict):
        if set(value) != {"any"}:
            raise ValueError("write a list (all of them) or {any: [a, b]} (at least one)")
        scopes = string_list(value["any"])
        if not scopes:
            raise ValueError("'any' must list at least one scope")
        return ScopeRule(ScopeMode.ANY, scopes)
    scopes = string_list(value)
    if any(" " in scope for scope in scopes):
        raise ValueError("a scope cannot contain a space")
    return ScopeRule(ScopeMode.ALL, scopes)


def hsts(value: Any) -> str | None:
    if value is False:
        return None
    text = string(value)
    if "max-age=" not in text or any(ch in text for ch in "\r\n"):
        raise ValueError(
            "write a Strict-Transport-Security value like 'max-age=31536000', or false"
        )
    return text


_SIZE = re.compile(r"([0-9]+)\s*(B|KiB|MiB|GiB)?")
_SIZE_UNITS = {None: 1, "B": 1, "KiB": 1024, "MiB": 1024**2, "GiB": 1024**3}


def size(value: Any) -> int:
    """A whole number, or a byte size like ``512KiB``, ``10MiB``, ``1GiB``."""
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    match = _SIZE.fullmatch(value.strip()) if isinstance(value, str) else None
    if match is None or int(match.group(1)) == 0:
        raise ValueError(f"{value!r} is not a positive number or size (e.g. 8190, 512KiB, 10MiB)")
    return int(match.group(1)) * _SIZE_UNITS[match.group(2)]


def positive_int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError("must be a positive whole number")
    return value


def http_url(value: Any) -> yarl.URL:
    text = string(value)
    url = yarl.URL(text)
    if has_credentials(url):
        raise ValueError(f"'{without_userinfo(text)}' must not carry credentials")
    if url.scheme not in {"http", "https"} or not url.host or url.fragment:
        raise ValueError(f"'{text}' must be an http:// or https:// URL with a host")
    return url


def upstream_url(value: Any) -> yarl.URL:
    text = string(value)
    url = yarl.URL(text)
    if url.scheme not in {"http", "https"} or not url.host:
        raise ValueError(
            f"'{without_userinfo(text)}' must be an http:// or https:// URL with a host"
        )
    if url.query_string or url.fragment or has_credentials(url):
        raise ValueError(
            f"'{without_userinfo(text)}' must not carry credentials, a query or a fragment"
        )
    return url


def describe_overlap(a: frozenset[str] | None, b: frozenset[str] | None) -> str:
    if a is None or b is None:
        return "one of them allows every method"
    return "both allow " + ", ".join(sorted(a & b))


def did_you_mean(key: str, allowed: Collection[str]) -> str:
    """`` (did you mean 'x'?)`` for the nearest of ``allowed``, or nothing if none is near."""
    close = difflib.get_close_matches(key, sorted(allowed), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


HEADER_NAME = re.compile(r"[A-Za-z0-9-]+")
_CLAIM_NAME = re.compile(r"[!-~]+")


def header_names(value: Any) -> frozenset[str]:
    """Header names (letters, digits and '-'), lower-cased."""
    names = string_list(value)
    for name in names:
        if not HEADER_NAME.fullmatch(name):
            raise ValueError(f"'{name}' is not a header name (letters, digits and '-')")
    return frozenset(name.lower() for name in names)


def claim_name(value: Any) -> str:
    """A JWT claim's name: printable ASCII, no spaces."""
    name = string(value)
    if not _CLAIM_NAME.fullmatch(name):
        raise ValueError(f"'{name}' is not a claim name")
    return name


def scope_format(value: Any) -> ScopeFormat:
    """``string`` (space-delimited) or ``list``."""
    try:
        return ScopeFormat(value)
    except ValueError:
        raise ValueError(f"{value!r} is not one of: 'string', 'list'") from None
