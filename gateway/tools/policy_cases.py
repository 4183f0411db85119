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
    expect:
      status: 200            # 200 = forwarded (the upstream's answer is not simulated)
      reason: null           # optional: the access log's auth.reason
      result: allowed        # optional: auth.result (allowed, public, denied, would_deny)
      upstream: orders       # optional: the upstream's name
      upstream_path: /orders/7?x=1   # optional: path and query the upstream receives
```

`${NAME}` in any string is read from the environment, as in the config files. Every problem is
reported at once, as ``file:line: what``, like the config's.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateway.config import ConfigIssue
from gateway.config.convert import did_you_mean
from gateway.config.interpolate import MissingVariable, interpolate
from gateway.config.yamlfile import YamlError, YamlList, YamlMap, load_yaml
from gateway.core.decision import AuthResult
from gateway.tools.explain import shown_target

__all__ = ["Case", "CasesError", "Expect", "PolicyFile", "load_cases"]

_TOP = {"defaults", "cases"}
_DEFAULTS = {"issuer", "claims"}
_CASE = {"name", "method", "path", "claims", "token", "issuer", "headers", "expect"}
_EXPECT = {"status", "reason", "result", "upstream", "upstream_path"}
_RESULTS = {result.value for result in AuthResult}


class CasesError(Exception):
    """The policy-test file is not usable; ``issues`` lists every problem."""

    def __init__(self, issues: list[ConfigIssue]) -> None:
        super().__init__("\n".join(str(issue) for issue in issues))
        self.issues = tuple(issues)


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


@dataclass(frozen=True, slots=True, kw_only=True)
class PolicyFile:
    """A parsed policy-test file."""

    file: Path
    cases: tuple[Case, ...]
    issuer: str | None = None
    claims: Mapping[str, Any] = field(default_factory=dict)


def load_cases(path: Path, environ: Mapping[str, str]) -> PolicyFile:
    """Read and validate a policy-test file, or raise `CasesError` with every problem."""
    parser = _Parser(path, environ)
    result = parser.parse()
    if parser.issues or result is None:
        raise CasesError(parser.issues)
    return result


class _Parser:
    def __init__(self, path: Path, environ: Mapping[str, str]) -> None:
        self.path = path
        self.environ = environ
        self.issues: list[ConfigIssue] = []

    def problem(self, line: int, message: str) -> None:
        self.issues.append(ConfigIssue(str(self.path), line, message))

    def parse(self) -> PolicyFile | None:
        try:
            document = load_yaml(self.path.read_text(encoding="utf-8"))
        except OSError as exc:
            self.problem(0, f"cannot read file: {exc.strerror or exc}")
            return None
        except UnicodeDecodeError:
            self.problem(0, "file is not UTF-8 text")
            return None
        except YamlError as exc:
            self.problem(exc.line, exc.message)
            return None
        if not isinstance(document, YamlMap):
            self.problem(1, "expected a mapping with 'cases' at the top level")
            return None
        self.unknown(document, _TOP, "at the top level")
        issuer, claims = None, {}
        defaults = document.get("defaults")
        if defaults is not None:
            if isinstance(defaults, YamlMap):
                self.unknown(defaults, _DEFAULTS, "in 'defaults'")
                issuer = self.string(defaults, "issuer")
                claims = self.mapping(defaults, "claims") or {}
            else:
                self.problem(document.key_lines["defaults"], "'defaults' must be a mapping")
        entries = document.get("cases")
        if not isinstance(entries, YamlList) or not entries:
            line = document.key_lines.get("cases", document.line)
            self.problem(line, "'cases' must be a list with at least one case")
            return None
        cases = []
        for entry, line in zip(entries, entries.item_lines, strict=True):
            case = self.case(entry, line)
            if case is not None:
                cases.append(case)
        return PolicyFile(file=self.path, cases=tuple(cases), issuer=issuer, claims=claims)

    def case(self, entry: object, line: int) -> Case | None:
        if not isinstance(entry, YamlMap):
            self.problem(line, "each case must be a mapping")
            return None
        before = len(self.issues)
        self.unknown(entry, _CASE, "in case")
        method = self.string(entry, "method", required=True)
        target = self.string(entry, "path", required=True)
        if target is not None and not target.startswith("/"):
            self.problem(entry.key_lines["path"], "'path' must start with '/'")
        if "claims" in entry and "token" in entry:
            self.problem(entry.key_lines["token"], "give 'claims' or 'token', not both")
        headers = self.mapping(entry, "headers") or {}
        if not all(isinstance(value, str) for value in headers.values()):
            self.problem(entry.key_lines["headers"], "header values must be strings")
        expect = self.expect(entry)
        if len(self.issues) > before or expect is None:
            return None
        assert method is not None
        assert target is not None
        return Case(
            name=self.string(entry, "name") or f"{method} {shown_target(target)}",
            line=line, method=method, path=target, expect=expect,
            claims=self.mapping(entry, "claims"), token=self.string(entry, "token"),
            issuer=self.string(entry, "issuer"),
            headers=tuple((str(k), str(v)) for k, v in headers.items()),
        )  # fmt: skip

    def expect(self, entry: YamlMap) -> Expect | None:
        section = entry.get("expect")
        if "expect" not in entry:
            self.problem(entry.line, "missing required key 'expect'")
            return None
        if not isinstance(section, YamlMap):
            self.problem(entry.key_lines["expect"], "'expect' must be a mapping")
            return None
        self.unknown(section, _EXPECT, "in 'expect'")
        status = section.get("status")
        if isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 599:
            line = section.key_lines.get("status", section.line)
            self.problem(line, "'status' must be an HTTP status (200 means forwarded)")
            return None
        result = self.string(section, "result")
        if result is not None and result not in _RESULTS:
            hint = did_you_mean(result, _RESULTS)
            self.problem(
                section.key_lines["result"],
                f"'result' must be one of {', '.join(sorted(_RESULTS))}{hint}",
            )
            return None
        reason = section.get("reason")
        if reason is not None and not isinstance(reason, str):
            self.problem(section.key_lines["reason"], "'reason' must be a reason code or null")
            return None
        return Expect(
            status=status, reason=reason, check_reason="reason" in section,
            result=AuthResult(result) if result is not None else None,
            upstream=self.string(section, "upstream"),
            upstream_path=self.string(section, "upstream_path"),
        )  # fmt: skip

    def unknown(self, mapping: YamlMap, allowed: set[str], where: str) -> None:
        for key in mapping:
            if key not in allowed:
                hint = did_you_mean(key, allowed)
                self.problem(mapping.key_lines[key], f"unknown key '{key}' {where}{hint}")

    def string(self, mapping: YamlMap, key: str, *, required: bool = False) -> str | None:
        if key not in mapping:
            if required:
                self.problem(mapping.line, f"missing required key '{key}'")
            return None
        before = len(self.issues)
        value = self.interpolated(mapping[key], mapping.key_lines[key])
        if len(self.issues) > before:
            return None
        if not isinstance(value, str) or not value:
            self.problem(mapping.key_lines[key], f"'{key}' must be a non-empty string")
            return None
        return value

    def mapping(self, mapping: YamlMap, key: str) -> dict[str, Any] | None:
        if key not in mapping:
            return None
        before = len(self.issues)
        value = self.interpolated(mapping[key], mapping.key_lines[key])
        if len(self.issues) > before:
            return None
        if not isinstance(value, dict):
            self.problem(mapping.key_lines[key], f"'{key}' must be a mapping")
            return None
        return value

    def interpolated(self, value: Any, line: int) -> Any:
        if isinstance(value, str):
            try:
                return interpolate(value, self.environ)
            except MissingVariable as exc:
                self.problem(line, f"environment variable {exc.name} is not set")
            except ValueError as exc:
                self.problem(line, str(exc))
            return None
        if isinstance(value, list):
            return [self.interpolated(item, line) for item in value]
        if isinstance(value, dict):
            return {key: self.interpolated(item, line) for key, item in value.items()}
        return value
