"""The package layers, written once: which part of the gateway may import which.

Every ``import`` in every module (at the top, inside functions, under ``TYPE_CHECKING``) is read
with `ast` and checked against the rules below. Adding ``import aiohttp`` to a module under
``gateway/core/`` makes this test fail, naming the file and line.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "gateway"

# The layers, bottom first: a layer may import its own modules and those of the layers below it.
LAYERS = ("core", "config", "jwks", "server", "tools", "cli")

# What a layer may not import from outside the gateway, whatever the layer order says.
# The core is pure: no sockets, no event loop, no server, no log handlers, no metrics, no files
# watched, no processes.
_IO = frozenset({
    "aiohttp", "asyncio", "socket", "ssl", "selectors", "http", "urllib.request",
    "logging", "structlog", "prometheus_client", "watchfiles", "subprocess", "signal",
    "orjson", "uvloop", "multiprocessing", "threading", "opentelemetry",
})  # fmt: skip
FORBIDDEN_EXTERNAL: dict[str, frozenset[str]] = {
    "core": _IO,
    # Config reads files and builds TLS contexts (that is how `check` validates them), but it
    # serves nothing and logs nothing.
    "config": _IO - {"ssl"},
    # Remote key sets fetch over HTTP; metrics and logging are injected by the server.
    "jwks": frozenset({"logging", "structlog", "prometheus_client", "watchfiles"}),
}

# Imports across layers that the order forbids but the design wants, each with its reason.
ALLOWED_UPWARD: dict[str, frozenset[str]] = {
    # The demo runs the real server in-process; no other tool does.
    "gateway/tools/demo.py": frozenset({"server"}),
}


@dataclass(frozen=True)
class Violation:
    file: str
    line: int
    imported: str
    rule: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: imports {self.imported} ({self.rule})"


def _layer_of(path: Path, root: Path) -> str:
    relative = path.relative_to(root)
    if len(relative.parts) == 1:
        return "cli" if relative.stem in {"cli", "__main__"} else "core"
    return relative.parts[0]


def _imports(tree: ast.AST) -> list[tuple[int, str]]:
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module is not None:
            if node.module == "gateway":
                found.extend((node.lineno, f"gateway.{alias.name}") for alias in node.names)
            else:
                found.append((node.lineno, node.module))
    return found


def violations(root: Path = PACKAGE) -> list[Violation]:
    """Every import in ``root`` that breaks a layering rule."""
    found: list[Violation] = []
    for path in sorted(root.rglob("*.py")):
        layer = _layer_of(path, root)
        shown = str(path.relative_to(root.parent))
        allowed_up = ALLOWED_UPWARD.get(shown, frozenset())
        forbidden = FORBIDDEN_EXTERNAL.get(layer, frozenset())
        for line, module in _imports(ast.parse(path.read_text(), str(path))):
            parts = module.split(".")
            if parts[0] == "gateway":
                if len(parts) == 1 or parts[1] == "__version__":
                    continue
                target = parts[1] if parts[1] in LAYERS else "core"
                if target in allowed_up:
                    continue
                if LAYERS.index(target) > LAYERS.index(layer):
                    rule = f"{layer} may not import the {target} layer above it"
                    found.append(Violation(shown, line, module, rule))
            elif any(module == name or module.startswith(name + ".") for name in forbidden):
                rule = f"{layer} may not import {parts[0]}: it is I/O"
                found.append(Violation(shown, line, module, rule))
    return found


def test_every_module_keeps_to_its_layer() -> None:
    """No module imports a layer above its own or an I/O library its layer forbids."""
    assert [str(v) for v in violations()] == []


def test_the_layer_list_covers_every_package() -> None:
    """A new subpackage must be given a place in the layers before it can be used."""
    packages = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").exists()}
    assert packages <= set(LAYERS)


@pytest.mark.parametrize(
    ("module", "source", "expected"),
    [
        ("core/x.py", "import aiohttp\n", "core may not import aiohttp: it is I/O"),
        ("core/x.py", "def f():\n    import asyncio\n", "core may not import asyncio: it is I/O"),
        ("core/x.py", "from logging import getLogger\n", "core may not import logging: it is I/O"),
        ("core/x.py", "from gateway.server import app\n", "core may not import the server layer"),
        ("config/x.py", "from gateway.jwks.remote import R\n", "config may not import the jwks"),
        ("jwks/x.py", "from gateway.server.metrics import M\n", "jwks may not import the server"),
        ("jwks/x.py", "import prometheus_client\n", "jwks may not import prometheus_client"),
        ("server/x.py", "from gateway.tools import lint\n", "server may not import the tools"),
    ],
)
def test_a_violation_is_caught(tmp_path: Path, module: str, source: str, expected: str) -> None:
    """The checker itself fails on each kind of violation (so the main test can fail)."""
    root = tmp_path / "gateway"
    target = root / module
    target.parent.mkdir(parents=True)
    (target.parent / "__init__.py").write_text("")
    target.write_text(source)
    (found,) = violations(root)
    assert found.rule.startswith(expected)
    assert found.file == f"gateway/{module}"
