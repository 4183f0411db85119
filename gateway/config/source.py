"""One file being read: where it is, what it says, and where its problems go.

A `Source` is made per file (``gateway.yaml``, the ``routes.yaml`` it names, a policy-test file)
and handed to the functions that read it, so every problem is recorded against the file it is in
without any reader keeping track of a "current file". The files of one load share the issue list
(and the digest the config version is computed from), so `load` reports every problem at once.
"""

from __future__ import annotations

import enum
import errno
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal, Protocol, TypeVar

from gateway.config.convert import did_you_mean
from gateway.config.interpolate import interpolate_all
from gateway.config.models import ConfigIssue
from gateway.config.yamlfile import YamlError, YamlMap, load_yaml

__all__ = ["Converters", "Digest", "Source"]

_T = TypeVar("_T")

Converters = Mapping[str, Callable[[Any], Any]]
"""Keys of a mapping and the converter of each (a `gateway.config.convert` function)."""


class Digest(Protocol):
    """What the config version is computed with (a `hashlib` object)."""

    def update(self, data: bytes, /) -> None:
        """Fold ``data`` in."""

    def hexdigest(self) -> str:
        """The digest of everything folded in so far."""


class _Bad(enum.Enum):
    VALUE = enum.auto()  # a value that was present and reported as wrong


@dataclass(frozen=True, slots=True, eq=False)
class Source:
    """A file being read, with typed lookups that report each problem at its line."""

    path: Path
    environ: Mapping[str, str]
    issues: list[ConfigIssue] = field(default_factory=list)
    digest: Digest | None = None  # every byte read, for the config version; None: not tracked

    def sibling(self, path: Path) -> Source:
        """The source of another file of the same load (same environment, issues and digest)."""
        return replace(self, path=path)

    def problem(self, line: int, message: str) -> None:
        """Record a problem at ``line`` of this file."""
        self.issues.append(ConfigIssue(str(self.path), line, message))

    def read_bytes(self, path: Path) -> bytes:
        """The bytes of a file the config is made of, folded into the digest; raises `OSError`."""
        try:
            data = path.read_bytes()
        except ValueError as exc:  # a NUL in the path: no such file can exist
            raise OSError(errno.EINVAL, f"not a usable file name ({exc})") from None
        if self.digest is not None:
            self.digest.update(str(path).encode() + b"\0" + data + b"\0")
        return data

    def fingerprint(self, line: int, *paths: Path | None) -> None:
        """Fold certificate files into the config version, so that a rotation is a config change;
        each one that cannot be read is a problem at ``line``."""
        for path in paths:
            if path is None:
                continue
            try:
                self.read_bytes(path)
            except OSError as exc:
                self.problem(line, f"cannot read {path}: {exc.strerror or exc}")

    def document(self, expected: str = "a mapping") -> YamlMap | None:
        """The parsed file, or None once the reason it cannot be read has been reported."""
        try:
            text = self.read_bytes(self.path).decode("utf-8")
        except OSError as exc:
            self.problem(0, f"cannot read file: {exc.strerror or exc}")
            return None
        except UnicodeDecodeError:
            self.problem(0, "file is not UTF-8 text")
            return None
        try:
            document = load_yaml(text)
        except YamlError as exc:
            self.problem(exc.line, exc.message)
            return None
        if not isinstance(document, YamlMap):
            self.problem(1, f"expected {expected} at the top level")
            return None
        return document

    def unknown_keys(self, mapping: YamlMap, allowed: Collection[str], where: str) -> None:
        """Report each key of ``mapping`` that is not ``allowed``, with the nearest allowed one."""
        for key in mapping:
            if key not in allowed:
                hint = did_you_mean(key, allowed)
                self.problem(mapping.key_lines[key], f"unknown key '{key}' {where}{hint}")

    def missing(self, mapping: YamlMap, key: str) -> None:
        """Report that ``mapping`` lacks the required ``key``."""
        self.problem(mapping.line, f"missing required key '{key}'")

    def section(
        self, parent: YamlMap, key: str, allowed: Collection[str], *, required: bool = False
    ) -> YamlMap | None:
        """The mapping under ``key`` (its unknown keys reported), or None if absent or not one.

        An optional section written empty (``listen:``) counts as absent: its defaults apply.
        """
        if key not in parent:
            if required:
                self.missing(parent, key)
            return None
        value = parent[key]
        if value is None and not required:
            return None
        if not isinstance(value, YamlMap):
            self.problem(parent.key_lines[key], f"'{key}' must be a mapping")
            return None
        self.unknown_keys(value, allowed, f"in '{key}'")
        return value

    def fields(
        self, mapping: YamlMap, converters: Converters, *, required: Collection[str] = ()
    ) -> dict[str, Any]:
        """The converted value of each key of ``converters`` that ``mapping`` holds, in order.

        A missing required key or a bad value is reported and left out, so that a model built
        from the result takes its own default (or is not built at all).
        """
        values: dict[str, Any] = {}
        for key, convert in converters.items():
            if key not in mapping:
                if key in required:
                    self.missing(mapping, key)
                continue
            value = self._converted(mapping, key, convert)
            if value is not _Bad.VALUE:
                values[key] = value
        return values

    def value(
        self, mapping: YamlMap, key: str, convert: Callable[[Any], _T], *, required: bool = False
    ) -> _T | None:
        """The converted value of one key; None if it is absent or bad (a bad one is reported)."""
        if key not in mapping:
            if required:
                self.missing(mapping, key)
            return None
        value = self._converted(mapping, key, convert)
        return None if value is _Bad.VALUE else value

    def _converted(
        self, mapping: YamlMap, key: str, convert: Callable[[Any], _T]
    ) -> _T | Literal[_Bad.VALUE]:
        line = mapping.key_lines[key]
        value, problems = interpolate_all(mapping[key], self.environ)
        try:
            if problems:  # the first is enough: the value cannot be judged until it is fixed
                raise ValueError(problems[0])
            return convert(value)
        except (ValueError, TypeError) as exc:
            self.problem(line, f"'{key}': {exc}")
            return _Bad.VALUE
