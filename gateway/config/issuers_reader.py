"""Reading gateway.yaml's ``issuers``: names, algorithm allowlists, and their keys (local files,
an HMAC secret, or a remote key set)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yarl

from gateway.config import convert, options
from gateway.config.source import Converters, Source
from gateway.config.yamlfile import YamlList, YamlMap
from gateway.core.keys import (
    HMAC_ALGORITHMS,
    HMAC_MIN_BYTES,
    KeyLoadError,
    VerificationKey,
    build_key_set,
    hmac_key,
    keys_from_jwks,
    keys_from_pem,
)
from gateway.core.models import IssuerConfig
from gateway.core.urls import https_or_loopback

__all__ = ["read_issuers"]

_ISSUER: Converters = {
    "name": convert.string, "issuer": convert.string, "algorithms": convert.algorithms,
    "audiences": convert.string_list, "require_typ": convert.string,
    "allow_insecure_http": convert.boolean, "jwks_uri": convert.http_url,
    "discovery": convert.boolean, "scope_claim": convert.claim_name,
    "scope_format": convert.scope_format, "claims_to_headers": options.claims_to_headers,
}  # fmt: skip
_REQUIRED = ("name", "issuer", "algorithms")
_ALLOWED = {*_ISSUER, "keys", "secret"}


def read_issuers(source: Source, document: YamlMap) -> tuple[tuple[IssuerConfig, ...], set[str]]:
    """The usable issuers, and the name of every issuer the file declares, usable or not (a
    refused issuer must not make each route naming it a second, misleading problem)."""
    entries = document.get("issuers")
    if entries is None:
        return (), set()
    if not isinstance(entries, YamlList):
        source.problem(document.key_lines["issuers"], "'issuers' must be a list")
        return (), set()
    issuers: list[IssuerConfig] = []
    declared: set[str] = set()
    first_lines: dict[str, dict[str, int]] = {"name": {}, "issuer": {}}
    for entry, line in zip(entries, entries.item_lines, strict=True):
        if not isinstance(entry, YamlMap):
            source.problem(line, "each issuer must be a mapping")
            continue
        if isinstance(entry.get("name"), str):
            declared.add(entry["name"])
        issuer = _issuer(source, entry)
        if issuer is None:
            continue
        for what, seen in first_lines.items():
            value = getattr(issuer, what)
            if value in seen:
                source.problem(
                    line, f"duplicate issuer {what} '{value}' (first at line {seen[value]})"
                )
            seen.setdefault(value, line)
        issuers.append(issuer)
    return tuple(issuers), declared


def _issuer(source: Source, entry: YamlMap) -> IssuerConfig | None:
    source.unknown_keys(entry, _ALLOWED, "in issuer")
    values = source.fields(entry, _ISSUER, required=_REQUIRED)
    algorithms: frozenset[str] = values.get("algorithms", frozenset())
    keys: list[VerificationKey] = []
    if values.get("jwks_uri") is not None or values.get("discovery"):
        _check_remote(source, entry, values, algorithms)
    else:
        key_names = source.value(entry, "keys", convert.file_names) or ()
        values["key_files"] = tuple(source.path.parent / name for name in key_names)
        if "keys" not in entry and "secret" not in entry:
            source.problem(
                entry.line,
                f"issuer '{values.get('name', '')}' has no keys: give 'keys' files, a 'secret', "
                "a 'jwks_uri' or 'discovery: true'",
            )
        elif algorithms:  # without a valid allowlist, judging keys would only add noise
            keys = _local_keys(source, entry, values["key_files"], algorithms)
    if any(name not in values for name in _REQUIRED):
        return None
    key_set, ambiguous = build_key_set(keys)
    for skipped in ambiguous:
        source.problem(
            entry.key_lines.get("keys", entry.line),
            f"kid '{skipped.kid}' names two different keys; no token naming it verifies",
        )
    return IssuerConfig(keys=key_set, **values)


def _check_remote(
    source: Source, entry: YamlMap, values: dict[str, Any], algorithms: frozenset[str]
) -> None:
    for local in ("keys", "secret"):
        if local in entry:
            source.problem(
                entry.key_lines[local],
                f"'{local}' cannot be combined with 'jwks_uri' or 'discovery'",
            )
    jwks_uri: yarl.URL | None = values.get("jwks_uri")
    if jwks_uri is not None and entry.get("discovery") is True:
        source.problem(entry.key_lines["discovery"], "give either 'jwks_uri' or 'discovery'")
    if algorithms & HMAC_ALGORITHMS:
        source.problem(
            entry.key_lines["algorithms"],
            "HMAC algorithms need a 'secret'; remote key sets are never used as HMAC keys",
        )
    checked = jwks_uri
    line = entry.key_lines.get("jwks_uri", entry.line)
    if checked is None and values.get("issuer"):
        line = entry.key_lines.get("issuer", entry.line)
        try:
            checked = convert.http_url(values["issuer"])
        except ValueError:
            source.problem(line, "'discovery' needs an issuer that is an http(s) URL")
            return
    allow_http = values.get("allow_insecure_http") is True
    if checked is not None and not https_or_loopback(checked, allow_insecure_http=allow_http):
        source.problem(
            line,
            f"'{checked}' is plain http: keys must come over https "
            "(or set 'allow_insecure_http: true', which is logged as a warning)",
        )


def _local_keys(
    source: Source, entry: YamlMap, key_files: tuple[Path, ...], algorithms: frozenset[str]
) -> list[VerificationKey]:
    problems_before = len(source.issues)
    keys = _load_keys(source, entry, key_files, algorithms)
    secret = source.value(entry, "secret", convert.string)
    if secret is not None:
        keys = _add_secret(source, entry, secret, algorithms, keys)
    if len(source.issues) == problems_before and keys:
        covered = frozenset().union(*(key.algorithms for key in keys))
        for algorithm in sorted(algorithms - covered):
            source.problem(
                entry.key_lines.get("algorithms", entry.line),
                f"algorithm {algorithm} is allowed but no configured key can verify it",
            )
    return keys


def _load_keys(
    source: Source, entry: YamlMap, files: tuple[Path, ...], algorithms: frozenset[str]
) -> list[VerificationKey]:
    line = entry.key_lines.get("keys", entry.line)
    keys: list[VerificationKey] = []
    asymmetric = algorithms - HMAC_ALGORITHMS
    for path in files:
        try:
            data = source.read_bytes(path)
        except OSError as exc:
            source.problem(line, f"cannot read key file {path}: {exc.strerror or exc}")
            continue
        try:
            if path.suffix == ".json":
                key_set, skipped = keys_from_jwks(json.loads(data), asymmetric, str(path))
                keys.extend(key_set.keys)
                for skip in skipped:
                    source.problem(line, f"{path}: key '{skip.kid}' is unusable ({skip.reason})")
            else:
                keys.append(keys_from_pem(data, asymmetric, str(path)))
        except (KeyLoadError, ValueError) as exc:
            source.problem(line, str(exc))
        except RecursionError:
            source.problem(line, f"{path} is not a JWKS document (nested too deeply)")
    return keys


def _add_secret(
    source: Source,
    entry: YamlMap,
    secret: str,
    algorithms: frozenset[str],
    keys: list[VerificationKey],
) -> list[VerificationKey]:
    line = entry.key_lines["secret"]
    hmac_algorithms = algorithms & HMAC_ALGORITHMS
    if not hmac_algorithms:
        source.problem(line, "'secret' is set but no HS256/HS384/HS512 algorithm is allowed")
        return keys
    needed = max(HMAC_MIN_BYTES[alg] for alg in hmac_algorithms)
    if len(secret.encode()) < needed:
        source.problem(
            line,
            f"'secret' is {len(secret.encode())} bytes; "
            f"{'/'.join(sorted(hmac_algorithms))} needs at least {needed}",
        )
        return keys
    return [*keys, hmac_key(secret, algorithms, "secret")]
