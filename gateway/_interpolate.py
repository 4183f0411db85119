"""Pure ``${VAR}`` substitution for config string values.

``${NAME}`` takes the environment variable NAME (unset is an error naming it), ``${NAME:-text}``
falls back to ``text``, and ``$${`` writes a literal ``${``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

__all__ = ["MissingVariable", "interpolate"]

_PATTERN = re.compile(r"\$\$\{|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}|\$\{")


class MissingVariable(Exception):
    """A ``${NAME}`` names a variable that is not set (or the syntax is broken)."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


def interpolate(value: str, environ: Mapping[str, str]) -> str:
    """Return ``value`` with every ``${NAME}`` replaced from ``environ``."""
    if "$" not in value:
        return value

    def replace(match: re.Match[str]) -> str:
        text = match.group(0)
        if text == "$${":
            return "${"
        name, default = match.group(1), match.group(2)
        if name is None:
            raise MissingVariable("${ without a valid NAME}")
        if name in environ:
            return environ[name]
        if default is not None:
            return default
        raise MissingVariable(name)

    return _PATTERN.sub(replace, value)
