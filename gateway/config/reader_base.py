"""The plumbing every config reader shares: reading YAML with lines, typed lookups, problems."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from gateway.config import convert
from gateway.config.interpolate import MissingVariable, interpolate
from gateway.config.models import ConfigIssue
from gateway.config.yamlfile import YamlError, YamlList, YamlMap, load_yaml

__all__ = ["ReaderBase"]

_T = TypeVar("_T")


class ReaderBase:
    """Walks parsed YAML, collecting every problem instead of stopping at the first."""

    def __init__(self, path: Path, environ: Mapping[str, str]) -> None:
        self.path = path
        self.environ = environ
        self.issues: list[ConfigIssue] = []
        self._file = str(path)
        # Names declared in the files, valid or not: a refused entry must not make every
        # reference to it a second, misleading problem.
        self._declared_issuers: set[str] = set()
        self._declared_upstreams: set[str] = set()
        self._referenced_upstreams: set[str] = set()
        # Every byte the config is made of (YAML and key files), for the config version.
        self._digest = hashlib.sha256()

    # -- plumbing -------------------------------------------------------------------------

    def _problem(self, line: int, message: str) -> None:
        self.issues.append(ConfigIssue(self._file, line, message))

    def _read_document(self, path: Path) -> YamlMap | None:
        self._file = str(path)
        try:
            raw = path.read_bytes()
            text = raw.decode("utf-8")
        except OSError as exc:
            self._problem(0, f"cannot read file: {exc.strerror or exc}")
            return None
        except UnicodeDecodeError:
            self._problem(0, "file is not UTF-8 text")
            return None
        self._digest.update(str(path).encode() + b"\0" + raw + b"\0")
        try:
            document = load_yaml(text)
        except YamlError as exc:
            self._problem(exc.line, exc.message)
            return None
        if not isinstance(document, YamlMap):
            self._problem(1, "expected a mapping at the top level")
            return None
        return document

    def _mapping(
        self, parent: YamlMap, key: str, allowed: set[str], *, required: bool = False
    ) -> YamlMap | None:
        value = parent.get(key)
        line = parent.key_lines.get(key, parent.line)
        if value is None:
            if required:
                self._problem(parent.line, f"missing required key '{key}'")
            return None
        if not isinstance(value, YamlMap):
            self._problem(line, f"'{key}' must be a mapping")
            return None
        self._unknown_keys(value, allowed, f"in '{key}'")
        return value

    def _unknown_keys(self, mapping: YamlMap, allowed: set[str], where: str) -> None:
        for key in mapping:
            if key not in allowed:
                hint = convert.did_you_mean(key, allowed)
                self._problem(mapping.key_lines[key], f"unknown key '{key}' {where}{hint}")

    def _get(
        self,
        mapping: YamlMap,
        key: str,
        convert: Callable[[Any], _T],
        default: _T,
        *,
        required: bool = False,
    ) -> _T:
        if key not in mapping:
            if required:
                self._problem(mapping.line, f"missing required key '{key}'")
            return default
        line = mapping.key_lines[key]
        try:
            return convert(self._interpolated(mapping[key], line))
        except (ValueError, TypeError) as exc:
            self._problem(line, f"'{key}': {exc}")
            return default

    def _interpolated(self, value: Any, line: int) -> Any:
        if isinstance(value, str):
            try:
                return interpolate(value, self.environ)
            except MissingVariable as exc:
                raise ValueError(f"environment variable {exc.name} is not set") from None
        if isinstance(value, YamlList):
            return [self._interpolated(item, line) for item in value]
        if isinstance(value, YamlMap):
            return {key: self._interpolated(item, line) for key, item in value.items()}
        return value

    def _read_tls_files(self, line: int, *paths: Path | None) -> None:
        """Fold certificate files into the config version, so a rotation is a config change."""
        for path in paths:
            if path is None:
                continue
            try:
                self._digest.update(str(path).encode() + b"\0" + path.read_bytes() + b"\0")
            except OSError as exc:
                self._problem(line, f"cannot read {path}: {exc.strerror or exc}")
