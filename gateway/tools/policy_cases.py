"""The policy-test file `gateway test` reads: a table of requests and the decision each must get.

```yaml
defaults:                    # optional, for every case
  issuer: local              # the configured issuer minted tokens come from (default: the first)
  claims: {sub: ci}          # merged under each case's claims
cases:
  - name: a reader can read  # optional (default: METHOD PATH)
    method: GET
    path: /orders/7?x=1      # the request target as a client sends it
    claims: {scope: orders:read}   # mint a token with these claims (null removes one;
                                   # exp/nbf/iat may be "now", "+15m", "-1h")
    # token: eyJ...          # or a literal token (checked against the configured keys)
    headers: {X-Trace: "1"}  # optional request headers; an Authorization here is sent as is
    peer: 192.0.2.1          # optional: the TCP peer's address (this default: no proxy, unless
                             # trusted_proxies lists it)
    expect:
      status: 200            # 200 = forwarded (the upstream's answer is not simulated)
      reason: null           # optional: the access log's gateway.auth.reason
      result: allowed        # optional: gateway.auth.result (allowed, public, denied, would_deny)
      upstream: orders       # optional: the upstream's name
      upstream_path: /orders/7?x=1   # optional: path and query the upstream receives
      rate_limit: {rate: 100/s, burst: 200, key: client_id}   # optional: the route's limit,
                                   # as routes.yaml writes it (false: none); never consumed
      cors: true             # optional: whether the answer carries CORS fields for the case's
                             # Origin header (a preflight: whether it is allowed)
      client_ip: 192.0.2.1   # optional: the access log's client.ip (trusted_proxies applied)
      upstream_headers:      # optional: headers the upstream receives (200/101 only): a value
        X-Auth-Tenant: acme  # exactly (repeated headers joined with ", "), null: absent,
        Authorization: null  # true: present with any value (never printed for secrets)
      challenge: null        # optional: the WWW-Authenticate value, exactly; null: none
```

`${NAME}` in any string is read from the environment, as in the config files. Every problem is
reported at once, as ``file:line: what``, like the config's.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeGuard, TypeVar

from gateway.config import ConfigError, convert, options
from gateway.config.convert import did_you_mean
from gateway.config.interpolate import interpolate_all
from gateway.config.source import Source
from gateway.config.yamlfile import YamlList, YamlMap
from gateway.core.outcomes import AuthResult
from gateway.core.ratelimit import RateLimit
from gateway.tools.explain import shown_target

__all__ = [
    "DEFAULT_PEER",
    "Case",
    "CasesError",
    "Expect",
    "HeaderExpectation",
    "PolicyFile",
    "load_cases",
]

_T = TypeVar("_T")

_TOP = {"defaults", "cases"}
_DEFAULTS = {"issuer", "claims"}
_CASE = {"name", "method", "path", "claims", "token", "issuer", "headers", "expect", "websocket",
         "peer"}  # fmt: skip
# `websocket:` in a case: a WebSocket handshake, with the token in Authorization (true) or in
# the bearer subprotocol (subprotocol).
_WEBSOCKET_TOKEN_IN = {True: "header", "subprotocol": "subprotocol"}
_EXPECT = {"status", "reason", "result", "upstream", "upstream_path", "rate_limit", "cors",
           "client_ip", "upstream_headers", "challenge"}  # fmt: skip
_RESULTS = {result.value for result in AuthResult}
# A client straight on the gateway, from a documentation address (RFC 5737) that no real
# trusted_proxies list holds, so a case sets `peer:` to play a request through a proxy.
DEFAULT_PEER = "192.0.2.1"
# An RFC 9110 field name: a name that is not one is still worth expecting absent (`X_Auth_X`).
_FIELD_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
# An expected upstream header: the exact value, None for absent, True for present (any value).
HeaderExpectation = str | bool | None


class CasesError(ConfigError):
    """The policy-test file is not usable; ``issues`` lists every problem."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Expect:
    """The decision a case must get; None fields are not checked (``reason`` is checked when
    ``check_reason``, since null is a valid expectation)."""

    status: int
    reason: str | None = None
    check_reason: bool = False
    result: AuthResult | None = None
    upstream: str | None = None
    upstream_path: str | None = None
    rate_limit: RateLimit | None = None
    check_rate_limit: bool = False  # whether rate_limit is an expectation (None: no limit)
    cors: bool | None = None  # whether the answer carries CORS fields for the case's Origin
    client_ip: str | None = None  # the access log's client.ip, normalised
    # (name as written, expectation); empty: not checked.
    upstream_headers: tuple[tuple[str, HeaderExpectation], ...] = ()
    challenge: str | None = None  # the WWW-Authenticate value
    check_challenge: bool = False  # whether challenge is an expectation (None: no challenge)


@dataclass(frozen=True, slots=True, kw_only=True)
class Case:
    """One request and what must happen to it."""

    name: str
    line: int
    method: str
    path: str
    expect: Expect
    claims: Mapping[str, Any] | None = None
    token: str | None = None
    issuer: str | None = None
    headers: tuple[tuple[str, str], ...] = ()
    # A WebSocket handshake: where its token goes ("header" or "subprotocol"); None: plain.
    websocket: str | None = None
    peer: str = DEFAULT_PEER  # the TCP peer's address, normalised


@dataclass(frozen=True, slots=True, kw_only=True)
class PolicyFile:
    """A parsed policy-test file."""

    file: Path
    cases: tuple[Case, ...]
    issuer: str | None = None
    claims: Mapping[str, Any] = field(default_factory=dict)


def load_cases(path: Path, environ: Mapping[str, str]) -> PolicyFile:
    """Read and validate a policy-test file, or raise `CasesError` with every problem."""
    source = Source(path, environ)
    result = _policy_file(source)
    if source.issues or result is None:
        raise CasesError(source.issues)
    return result


def _policy_file(source: Source) -> PolicyFile | None:
    document = source.document("a mapping with 'cases'")
    if document is None:
        return None
    source.unknown_keys(document, _TOP, "at the top level")
    defaults: dict[str, Any] = {}
    section = source.section(document, "defaults", _DEFAULTS)
    if section is not None:
        found: dict[str, Any] = {"issuer": _string(source, section, "issuer")}
        found["claims"] = _mapping(source, section, "claims")
        defaults = {key: value for key, value in found.items() if value is not None}
    entries = document.get("cases")
    if not isinstance(entries, YamlList) or not entries:
        line = document.key_lines.get("cases", document.line)
        source.problem(line, "'cases' must be a list with at least one case")
        return None
    cases = []
    for entry, line in zip(entries, entries.item_lines, strict=True):
        case = _case(source, entry, line)
        if case is not None:
            cases.append(case)
    return PolicyFile(file=source.path, cases=tuple(cases), **defaults)


def _case(source: Source, entry: object, line: int) -> Case | None:
    if not isinstance(entry, YamlMap):
        source.problem(line, "each case must be a mapping")
        return None
    before = len(source.issues)
    source.unknown_keys(entry, _CASE, "in case")
    method = _string(source, entry, "method", required=True)
    target = _string(source, entry, "path", required=True)
    if target is not None and not target.startswith("/"):
        source.problem(entry.key_lines["path"], "'path' must start with '/'")
    if "claims" in entry and "token" in entry:
        source.problem(entry.key_lines["token"], "give 'claims' or 'token', not both")
    headers = _mapping(source, entry, "headers") or {}
    if not all(isinstance(value, str) for value in headers.values()):
        source.problem(entry.key_lines["headers"], "header values must be strings")
    websocket = entry.get("websocket", False)
    if websocket is not False and websocket not in _WEBSOCKET_TOKEN_IN:
        source.problem(entry.key_lines["websocket"], "'websocket' must be true or 'subprotocol'")
    peer = source.value(entry, "peer", _address)
    expect = _expect(source, entry)
    if len(source.issues) > before or expect is None:
        return None
    assert method is not None
    assert target is not None
    return Case(
        name=_string(source, entry, "name") or f"{method} {shown_target(target)}",
        line=line, method=method, path=target, expect=expect,
        claims=_mapping(source, entry, "claims"), token=_string(source, entry, "token"),
        issuer=_string(source, entry, "issuer"),
        headers=tuple((str(k), str(v)) for k, v in headers.items()),
        websocket=_WEBSOCKET_TOKEN_IN.get(websocket), peer=peer or DEFAULT_PEER,
    )  # fmt: skip


def _expect(source: Source, entry: YamlMap) -> Expect | None:
    section = source.section(entry, "expect", _EXPECT, required=True)
    if section is None:
        return None
    status = section.get("status")
    if isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 599:
        line = section.key_lines.get("status", section.line)
        source.problem(line, "'status' must be an HTTP status (200 means forwarded)")
        return None
    result = _string(source, section, "result")
    if result is not None and result not in _RESULTS:
        hint = did_you_mean(result, _RESULTS)
        source.problem(
            section.key_lines["result"],
            f"'result' must be one of {', '.join(sorted(_RESULTS))}{hint}",
        )
        return None
    reason = section.get("reason")
    if reason is not None and not isinstance(reason, str):
        source.problem(section.key_lines["reason"], "'reason' must be a reason code or null")
        return None
    before = len(source.issues)
    limit = source.value(section, "rate_limit", options.rate_limit)
    cors = source.value(section, "cors", convert.boolean)
    client_ip = source.value(section, "client_ip", _address)
    challenge = source.value(section, "challenge", _challenge)
    headers = _header_expectations(source, section)
    if len(source.issues) > before:
        return None
    return Expect(
        status=status, reason=reason, check_reason="reason" in section,
        result=AuthResult(result) if result is not None else None,
        upstream=_string(source, section, "upstream"),
        upstream_path=_string(source, section, "upstream_path"),
        rate_limit=limit, check_rate_limit="rate_limit" in section, cors=cors,
        client_ip=client_ip, upstream_headers=headers, challenge=challenge,
        check_challenge="challenge" in section,
    )  # fmt: skip


def _address(value: Any) -> str:
    """An IP address as the gateway writes it (``2001:DB8::1`` is ``2001:db8::1``)."""
    if not isinstance(value, str):
        raise ValueError("must be an IP address (192.0.2.1, 2001:db8::1)")
    try:
        return str(ipaddress.ip_address(value.strip()))
    except ValueError:
        raise ValueError(f"'{value}' is not an IP address (192.0.2.1, 2001:db8::1)") from None


def _challenge(value: Any) -> str | None:
    if value is not None and not (isinstance(value, str) and value):
        raise ValueError("must be the WWW-Authenticate value, or null for none")
    return value


def _header_expectations(
    source: Source, section: YamlMap
) -> tuple[tuple[str, HeaderExpectation], ...]:
    """``expect.upstream_headers``, each problem at its own header's line."""
    if "upstream_headers" not in section:
        return ()
    headers = section["upstream_headers"]
    if not isinstance(headers, YamlMap) or not headers:
        line = section.key_lines["upstream_headers"]
        source.problem(line, "'upstream_headers' must be a mapping of header name to value")
        return ()
    seen: set[str] = set()
    expected: list[tuple[str, HeaderExpectation]] = []
    for name in headers:
        line = headers.key_lines[name]
        if not _FIELD_NAME.fullmatch(name):
            source.problem(line, f"'{name}' is not a header name")
            continue
        if name.lower() in seen:
            source.problem(line, f"header '{name}' is named twice (names ignore case)")
            continue
        seen.add(name.lower())
        value = source.value(headers, name, _header_expectation)
        if value is not None or headers[name] is None:
            expected.append((name, value))
    return tuple(expected)


def _header_expectation(value: Any) -> HeaderExpectation:
    if value is None or value is True or isinstance(value, str):
        return value
    raise ValueError(
        "write the value as a string (quote numbers), null for absent or true for present"
    )


def _is_text(value: Any) -> TypeGuard[str]:
    return isinstance(value, str) and bool(value)


def _is_mapping(value: Any) -> TypeGuard[dict[str, Any]]:
    return isinstance(value, dict)


def _string(source: Source, mapping: YamlMap, key: str, *, required: bool = False) -> str | None:
    return _lookup(source, mapping, key, _is_text, "must be a non-empty string", required)


def _mapping(source: Source, mapping: YamlMap, key: str) -> dict[str, Any] | None:
    return _lookup(source, mapping, key, _is_mapping, "must be a mapping", False)


def _lookup(
    source: Source,
    mapping: YamlMap,
    key: str,
    valid: Callable[[Any], TypeGuard[_T]],
    wrong: str,
    required: bool,
) -> _T | None:
    """The interpolated value of ``key``; None if absent or wrong (then reported). Unlike the
    config's lookups, each unset variable in a value is its own problem."""
    if key not in mapping:
        if required:
            source.missing(mapping, key)
        return None
    line = mapping.key_lines[key]
    value, problems = interpolate_all(mapping[key], source.environ)
    for problem in problems:
        source.problem(line, problem)
    if problems:
        return None
    if not valid(value):
        source.problem(line, f"'{key}' {wrong}")
        return None
    return value
