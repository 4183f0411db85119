"""Pure ``${VAR}`` substitution for config string values.

``${NAME}`` takes the environment variable NAME (unset is an error naming it), ``${NAME:-text}``
falls back to ``text`` when NAME is unset or empty, and ``$${`` writes a literal ``${``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

__all__ = ["MalformedReference", "MissingVariable", "interpolate", "interpolate_all"]

_PATTERN = re.compile(r"\$\$\{|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}|\$\{")


class MissingVariable(Exception):
    """A ``${NAME}`` names a variable that is not set."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


class MalformedReference(ValueError):
    """A ``${`` that does not form ``${NAME}`` or ``${NAME:-default}``."""


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
            raise MalformedReference(
                "malformed '${' reference: write ${NAME} or ${NAME:-default} ($${ for a literal)"
            )
        value = environ.get(name)
        if default is not None and not value:
            return default  # as in POSIX shells: ':-' covers unset and empty
        if value is None:
            raise MissingVariable(name)
        return value

    return _PATTERN.sub(replace, value)


def interpolate_all(value: Any, environ: Mapping[str, str]) -> tuple[Any, list[str]]:
    """``value`` with every string in it interpolated (lists and mappings walked), and one message
    per string that could not be, in document order; such a string becomes None."""
    problems: list[str] = []

    def walk(item: Any) -> Any:
        if isinstance(item, str):
            try:
                return interpolate(item, environ)
            except MissingVariable as exc:
                problems.append(f"environment variable {exc.name} is not set")
            except MalformedReference as exc:
                problems.append(str(exc))
            return None
        if isinstance(item, list):
            return [walk(element) for element in item]
        if isinstance(item, dict):
            return {key: walk(element) for key, element in item.items()}
        return item

    return walk(value), problems
